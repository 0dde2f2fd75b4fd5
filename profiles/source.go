package profiles

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/redisfactory/redisfactory/internal/safefile"
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

// Read reads the file if it is a regular file no larger than the default
// MaxFileSize (see Limits); Load reads it under its own limits.
func (f fileSource) Read() ([]byte, error) {
	return safefile.Read(string(f), DefaultLimits().MaxFileSize)
}

// Bytes is a Source holding data in memory under a name.
func Bytes(name string, data []byte) Source { return bytesSource{name, data} }

type bytesSource struct {
	name string
	data []byte
}

func (b bytesSource) Name() string          { return b.name }
func (b bytesSource) Read() ([]byte, error) { return b.data, nil }

// errTooManyFiles is wrapped by expandPaths' error when the paths hold
// more configuration files than allowed.
var errTooManyFiles = errors.New("too many configuration files")

// ExpandPaths turns the configured paths into files: a file stays itself, a
// directory becomes its *.yaml and *.yml files in name order (not recursive;
// hidden files, such as Kubernetes' ..data entries, are skipped, and so are
// subdirectories). Entries that are not regular files (a FIFO, a device)
// are kept, so that reading them reports why they are refused. At most the
// default MaxFiles files are listed.
func ExpandPaths(paths []string) ([]string, error) {
	return expandPaths(paths, DefaultLimits().MaxFiles)
}

func expandPaths(paths []string, maxFiles int) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p) // stat never blocks, whatever p is
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !st.IsDir() {
			if len(out) >= maxFiles {
				return nil, fmt.Errorf("%s: %w", p, errTooManyFiles)
			}
			out = append(out, p)
			continue
		}
		files, err := dirFiles(p, maxFiles-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, files...)
	}
	return out, nil
}

// dirFiles lists the configuration files of the directory dir, at most
// limit of them, reading the directory in batches so that a directory of
// millions of entries is not held in memory at once.
func dirFiles(dir string, limit int) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	defer d.Close()
	var files []string
	for {
		entries, err := d.ReadDir(1024)
		for _, e := range entries {
			n := e.Name()
			if !isConfigName(n) {
				continue
			}
			full := filepath.Join(dir, n)
			if st, err := os.Stat(full); err != nil || st.IsDir() {
				continue
			}
			if len(files) >= limit {
				return nil, fmt.Errorf("%s: %w", dir, errTooManyFiles)
			}
			files = append(files, full)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	sort.Strings(files)
	return files, nil
}

// Format prints the name and size of the document, never its bytes (a
// document may hold passwords).
func (b bytesSource) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "Bytes(%q, %d bytes)", b.name, len(b.data))
}
