package factory

import (
	"go/ast"
	"go/parser"
	"go/token"
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
