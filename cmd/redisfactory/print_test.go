package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/profiles"
)

// print writes YAML one profile at a time; what it prints is exactly the
// encoding of the whole configuration's tree (the examples, and many
// profiles with secrets, URLs, lists and nested blocks).
func TestPrintYAMLIsTheTreesEncoding(t *testing.T) {
	var many strings.Builder
	many.WriteString("defaults:\n  timeouts: {socket: 2s}\nprofiles:\n")
	for i := range 300 {
		switch i % 3 {
		case 0:
			fmt.Fprintf(&many, "  p%03d: {addr: 127.0.0.1:%d, password: %s, retry: {also_on: [busy_loading, timeout]}}\n", i, 6000+i, secret)
		case 1:
			fmt.Fprintf(&many, "  p%03d: {url: 'redis://user:%s@10.0.0.%d:6379/2', cache: {enabled: true, max_entries: %d}}\n", i, secret, i%250, 100+i)
		default:
			fmt.Fprintf(&many, "  p%03d: {mode: cluster, addrs: [a:1, b:2], pipeline: {auto: false}}\n", i)
		}
	}
	// Names whose yaml.v3 order is not their byte order (numbers compare
	// as numbers), and a value the encoder writes as a literal block with
	// an empty line.
	many.WriteString("  p9: {addr: 127.0.0.1:1}\n  p10: {addr: 127.0.0.1:1}\n  aB: {addr: 127.0.0.1:1}\n  a_b: {addr: 127.0.0.1:1}\n")
	many.WriteString("  multi: {addr: 127.0.0.1:1, username: \"x\\n\\ny\"}\n")
	dir := t.TempDir()
	paths := map[string]string{"many": write(t, dir, "many.yaml", many.String())}
	for _, ex := range []string{"webapp", "cluster", "sentinel", "kubernetes"} {
		paths[ex] = filepath.Join("..", "..", "examples", "configs", ex)
	}
	for name, path := range paths {
		t.Run(name, func(t *testing.T) {
			res, err := profiles.Load(profiles.Options{Paths: []string{path}})
			require.NoError(t, err)
			var want bytes.Buffer
			enc := yaml.NewEncoder(&want)
			enc.SetIndent(2)
			require.NoError(t, enc.Encode(res.Config.Tree()))
			require.NoError(t, enc.Close())

			r := runCLI(t, nil, "print", path)
			require.Zero(t, r.code, r)
			assert.Equal(t, want.String(), r.stdout)
			assert.NotContains(t, r.stdout, secret)
		})
	}
}

// failingWriter fails every write, as a full disk or a closed pipe does.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A configuration that cannot be written out is not printed: print says
// why and exits 1, in both formats.
func TestPrintFailsWhenItCannotWrite(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "configs", "webapp")
	for _, format := range []string{"yaml", "json"} {
		var errb bytes.Buffer
		code := run([]string{"print", "--format", format, path}, failingWriter{}, &errb, nil)
		assert.Equal(t, exitFailed, code, format)
		assert.Contains(t, errb.String(), "no space left on device", format)
	}
}
