package docs

import (
	"bytes"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goBlocks returns the ```go blocks of a Markdown file with the line each
// starts on.
func goBlocks(t *testing.T, path string) (blocks []string, lines []int) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	re := regexp.MustCompile("(?ms)^```go\n(.*?)^```")
	for _, m := range re.FindAllSubmatchIndex(b, -1) {
		blocks = append(blocks, string(b[m[2]:m[3]]))
		lines = append(lines, bytes.Count(b[:m[0]], []byte("\n"))+1)
	}
	return blocks, lines
}

// TestREADMEGoCompiles: every ```go block of README.md is a complete,
// gofmt-formatted program (or package) that `go vet` accepts, so no
// snippet a reader copies has placeholders, missing imports or a stale API.
func TestREADMEGoCompiles(t *testing.T) {
	_, pkgs, lines := writeBlocks(t)
	cmd := exec.Command("go", append([]string{"vet"}, pkgs...)...)
	out, err := cmd.CombinedOutput()
	require.NoErrorf(t, err, "go vet of the README's Go blocks (block a is the first, at README.md:%d):\n%s", lines[0], out)
}

// writeBlocks writes each ```go block of README.md as the package
// testdata/readme-*/blockX (block a is the first) and returns them.
func writeBlocks(t *testing.T) (blocks, pkgs []string, lines []int) {
	t.Helper()
	blocks, lines = goBlocks(t, "../../README.md")
	require.NotEmpty(t, blocks)
	// The blocks are built inside the module (testdata is left out of
	// ./... patterns) so that they import its packages and dependencies.
	dir, err := os.MkdirTemp("testdata", "readme-")
	if os.IsNotExist(err) {
		_ = os.Mkdir("testdata", 0o755) // another test may create it too
		dir, err = os.MkdirTemp("testdata", "readme-")
	}
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = os.RemoveAll(dir)
		_ = os.Remove("testdata") // only when empty
	})
	for i, src := range blocks {
		require.Truef(t, strings.HasPrefix(src, "package "),
			"README.md:%d: a Go block must be a complete file starting with its package clause", lines[i])
		formatted, err := format.Source([]byte(src))
		require.NoErrorf(t, err, "README.md:%d", lines[i])
		require.Equalf(t, src, string(formatted), "README.md:%d: the block is not gofmt-formatted", lines[i])
		pkg := filepath.Join(dir, "block"+string(rune('a'+i)))
		require.NoError(t, os.Mkdir(pkg, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(pkg, "main.go"), []byte(src), 0o644))
		pkgs = append(pkgs, "./"+filepath.ToSlash(pkg))
	}
	return blocks, pkgs, lines
}
