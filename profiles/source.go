package profiles

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/knadh/koanf/providers/file"
)

// Source is one YAML document: a file, or bytes held in memory. It is the
// whole provider interface, as small as koanf's.
type Source interface {
	// Name identifies the source in errors and provenance ("redis.yaml").
	Name() string
	// Read returns the document.
	Read() ([]byte, error)
}

// File is a Source reading the file at path.
func File(path string) Source { return fileSource(path) }

type fileSource string

func (f fileSource) Name() string { return string(f) }

// Read uses koanf's file provider, so that reading follows its rules.
func (f fileSource) Read() ([]byte, error) { return file.Provider(string(f)).ReadBytes() }

// Bytes is a Source holding data in memory under a name.
func Bytes(name string, data []byte) Source { return bytesSource{name, data} }

type bytesSource struct {
	name string
	data []byte
}

func (b bytesSource) Name() string          { return b.name }
func (b bytesSource) Read() ([]byte, error) { return b.data, nil }

// ExpandPaths turns the configured paths into files: a file stays itself, a
// directory becomes its *.yaml and *.yml files in name order (not recursive;
// hidden files, such as Kubernetes' ..data entries, are skipped).
func ExpandPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		var files []string
		for _, e := range entries {
			n := e.Name()
			if strings.HasPrefix(n, ".") {
				continue
			}
			ext := filepath.Ext(n)
			if ext != ".yaml" && ext != ".yml" {
				continue
			}
			full := filepath.Join(p, n)
			if st, err := os.Stat(full); err != nil || st.IsDir() {
				continue
			}
			files = append(files, full)
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out, nil
}

// Format prints the name and size of the document, never its bytes (a
// document may hold passwords).
func (b bytesSource) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Bytes(%q, %d bytes)", b.name, len(b.data))
}
