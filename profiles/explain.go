package profiles

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redisfactory/redisfactory/internal/suggest"
)

// KeyOrigin is one effective key of a profile, its value and its origin.
type KeyOrigin struct {
	// Path is relative to the profile, e.g. retry.backoff.cap.
	Path string `json:"path"`
	// Value is the value as a file would write it; secrets are redacted.
	Value string `json:"value"`
	// Origin says which source set it.
	Origin Origin `json:"origin"`
}

// Profiles returns the names of the loaded profiles, sorted.
func (r *Result) Profiles() []string {
	return slices.Sorted(maps.Keys(r.Config.Profiles))
}

// Explain lists every effective key of one profile, sorted by path, with
// the source that set it. Keys derived from others (the retry classes of
// the mode, the default cache allow list) show as built-in defaults.
func (r *Result) Explain(profile string) ([]KeyOrigin, error) {
	p, ok := r.Config.Profiles[profile]
	if !ok {
		msg := fmt.Sprintf("no profile %q", profile)
		if s := suggest.Closest(profile, r.Profiles()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, fmt.Errorf("%s; profiles: %s", msg, strings.Join(r.Profiles(), ", "))
	}
	origins := r.origins[profile]
	var out []KeyOrigin
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for _, k := range sortedKeys(m) {
			path := prefix + k
			if sub, ok := m[k].(map[string]any); ok {
				walk(path+".", sub)
				continue
			}
			out = append(out, KeyOrigin{Path: path, Value: renderLeaf(m[k]), Origin: originFor(origins, path)})
		}
	}
	walk("", p.Tree())
	return out, nil
}

// originFor returns the origin of a leaf: its own, or, for a password read
// from a file, that of the password_file key.
func originFor(origins map[string]Origin, path string) Origin {
	if o, ok := origins[path]; ok {
		return o
	}
	if strings.HasSuffix(path, "password") {
		if o, ok := origins[path+"_file"]; ok {
			o.Via = "password_file"
			return o
		}
	}
	return Origin{Source: BuiltinSource}
}

func renderLeaf(v any) string {
	if l, ok := v.([]string); ok {
		return "[" + strings.Join(l, ", ") + "]"
	}
	return fmt.Sprint(v)
}
