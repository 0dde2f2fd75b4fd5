package profiles

import (
	"os"
	"path/filepath"
	"strings"
)

// kubernetesData is the symbolic link Kubernetes swaps atomically in
// ConfigMap and Secret volumes (name -> ..data/name, ..data -> ..<time>).
const kubernetesData = "..data"

// watchSet maps each directory to watch (a real path, symbolic links
// resolved, as fsnotify names its events) to the names in it that matter.
type watchSet map[string]*dirRule

type dirRule struct {
	names map[string]bool
	yaml  bool // any visible *.yaml / *.yml (a configured directory)
}

func (s watchSet) rule(dir string) *dirRule {
	r, ok := s[dir]
	if !ok {
		r = &dirRule{names: map[string]bool{}}
		s[dir] = r
	}
	return r
}

// relevant reports whether an event on the absolute path name can change
// the configuration.
func (s watchSet) relevant(name string) bool {
	if _, ok := s[name]; ok {
		return true // a watched directory itself
	}
	r, ok := s[filepath.Dir(name)]
	if !ok {
		return false
	}
	base := filepath.Base(name)
	return r.names[base] || r.yaml && isConfigName(base)
}

// isConfigName reports whether a directory's file is one ExpandPaths reads.
func isConfigName(base string) bool {
	if strings.HasPrefix(base, ".") {
		return false
	}
	ext := filepath.Ext(base)
	return ext == ".yaml" || ext == ".yml"
}

// buildWatchSet computes the watch set of the configured paths (files or
// directories) and of the further files the configuration was read from.
func buildWatchSet(paths, files []string) watchSet {
	s := watchSet{}
	for _, p := range paths {
		s.addPath(p)
		if real, err := filepath.EvalSymlinks(p); err == nil {
			if st, err := os.Stat(real); err == nil && st.IsDir() {
				r := s.rule(real)
				r.yaml = true
				r.names[kubernetesData] = true
			}
		}
	}
	for _, f := range files {
		s.addPath(f)
	}
	return s
}

// addPath watches the absolute path p: its own name, the name of every
// symbolic link met while resolving it, and the name of the file it
// resolves to, each in its directory.
func (s watchSet) addPath(p string) {
	links, final := symlinkChain(p)
	s.addName(p)
	for _, l := range links {
		s.addName(l)
	}
	s.addName(final)
}

// addName watches for changes of the entry p in its directory. When the
// directory does not exist, its closest existing ancestor is watched for
// the name leading to it, so that its creation is an event.
func (s watchSet) addName(p string) {
	dir, base := filepath.Dir(p), filepath.Base(p)
	for {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			if st, err := os.Stat(real); err == nil && st.IsDir() {
				s.rule(real).names[base] = true
				return
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir, base = parent, filepath.Base(dir)
	}
}

// symlinkChain resolves p one link at a time and returns every symbolic
// link met (by the path it was met at) and the path p resolves to (as far
// as it exists). Links directly under the root (macOS's /tmp and /var)
// are followed but not returned: they are system aliases, not something
// a deployment swaps.
func symlinkChain(p string) (links []string, final string) {
	p = filepath.Clean(p)
	for hops := 0; hops < 40; hops++ {
		vol := filepath.VolumeName(p)
		rest := strings.TrimPrefix(p[len(vol):], string(filepath.Separator))
		if rest == "" {
			return links, p
		}
		parts := strings.Split(rest, string(filepath.Separator))
		cur := vol + string(filepath.Separator)
		followed := false
		for i, part := range parts {
			next := filepath.Join(cur, part)
			st, err := os.Lstat(next)
			if err != nil {
				return links, p
			}
			if st.Mode()&os.ModeSymlink == 0 {
				cur = next
				continue
			}
			target, err := os.Readlink(next)
			if err != nil {
				return links, p
			}
			if i > 0 {
				links = append(links, next)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			p = filepath.Join(append([]string{target}, parts[i+1:]...)...)
			followed = true
			break
		}
		if !followed {
			return links, p
		}
	}
	return links, p
}

// cleanAbs makes p absolute (relative to the working directory) and clean.
func cleanAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

func absPaths(ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = cleanAbs(p)
	}
	return out
}
