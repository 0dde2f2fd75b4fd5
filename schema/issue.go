package schema

import (
	"fmt"
	"sort"
	"strings"
)

// Issue is one thing wrong with a configuration. It names where the key
// came from, the key path as the user wrote it, the rule it breaks, what is
// wrong in plain English and the offending value (secrets redacted).
type Issue struct {
	// Source is where the key was set: "redis.yaml:12", "env APP_REDIS__…",
	// "built-in default", or "" when unknown. Package profiles fills it.
	Source string `json:"source,omitempty"`
	// Path is the key path, e.g. profiles.sessions.retry.backoff.cap.
	Path string `json:"path"`
	// Rule is a short, stable name of the broken rule (e.g. "oneof",
	// "cap_gte_base", "unknown_key").
	Rule string `json:"rule"`
	// Message says what is wrong, in plain English.
	Message string `json:"message"`
	// Value is the offending value as text; secrets are "<redacted>".
	Value string `json:"value,omitempty"`
	// HasValue tells an empty Value from no value at all.
	HasValue bool `json:"-"`
}

// Error renders the issue as one line: "source: path: message (got value)"
// (without the path for an issue about a whole file).
func (i Issue) Error() string {
	var b strings.Builder
	if i.Source != "" {
		b.WriteString(i.Source)
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(i.Path)
		b.WriteString(": ")
	}
	b.WriteString(i.Message)
	if i.HasValue {
		fmt.Fprintf(&b, " (got %q)", i.Value)
	}
	return b.String()
}

// Issues is every issue of one configuration. As an error it renders one
// issue per line. errors.As(err, &schema.Issues{}) recovers the list.
type Issues []Issue

// Error renders one issue per line.
func (is Issues) Error() string {
	lines := make([]string, len(is))
	for i, x := range is {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns nil when there are no issues and the list otherwise.
func (is Issues) Err() error {
	if len(is) == 0 {
		return nil
	}
	return is
}

// Sort orders issues by path, then rule, and drops exact duplicates.
func (is Issues) Sort() Issues {
	sort.SliceStable(is, func(a, b int) bool {
		if is[a].Path != is[b].Path {
			return is[a].Path < is[b].Path
		}
		return is[a].Rule < is[b].Rule
	})
	out := is[:0]
	for i, x := range is {
		if i > 0 && x == is[i-1] {
			continue
		}
		out = append(out, x)
	}
	return out
}

// IsSecretPath reports whether the key at path holds a secret whose value
// must never be printed.
func IsSecretPath(path string) bool {
	last := path
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		last = path[i+1:]
	}
	return last == "password" || last == "url"
}

// DisplayValue renders v for an issue or a printout, redacting secrets.
func DisplayValue(path string, v any) string {
	s := fmt.Sprint(v)
	if IsSecretPath(path) {
		return RedactString(s)
	}
	return s
}
