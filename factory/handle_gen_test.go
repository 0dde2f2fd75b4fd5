package factory

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The generated Handle methods keep go-redis's parameter names, so that
// `go doc` and editors show `Set(ctx, key, value, expiration)` rather than
// positional placeholders.
func TestHandleGenKeepsGoRedisParamNames(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "handle_gen.go", nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	positional := regexp.MustCompile(`^a[0-9]+$`)
	params := map[string][]string{}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Recv == nil {
			continue
		}
		for _, p := range fd.Type.Params.List {
			for _, n := range p.Names {
				assert.Falsef(t, positional.MatchString(n.Name), "%s has a positional parameter %s", fd.Name.Name, n.Name)
				params[fd.Name.Name] = append(params[fd.Name.Name], n.Name)
			}
		}
	}
	require.Greater(t, len(params), 300, "handle_gen.go should hold the whole UniversalClient")
	assert.Equal(t, []string{"ctx", "key", "value", "expiration"}, params["Set"])
	assert.Equal(t, []string{"ctx", "keys"}, params["MGet"])
	assert.Equal(t, []string{"ctx", "fn", "keys"}, params["Watch"])
}

// handle_gen.go is what its generator writes today: a go-redis upgrade or
// a change of the generator without `go generate ./factory` fails here.
func TestHandleGenIsUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the generator")
	}
	out := filepath.Join(t.TempDir(), "handle_gen.go")
	cmd := exec.Command("go", "run", "./internal/genhandle", "-o", out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "go run ./internal/genhandle: %s", msg)
	want, err := os.ReadFile(out)
	require.NoError(t, err)
	got, err := os.ReadFile("handle_gen.go")
	require.NoError(t, err)
	if !bytes.Equal(want, got) {
		t.Fatal("factory/handle_gen.go is stale: its generator writes something else; regenerate it with: go generate ./factory")
	}
}
