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
	// Severity is "" for an error, which makes a configuration invalid,
	// and "warning" for a weakness reported beside a valid configuration
	// (see profiles.Warnings).
	Severity string `json:"severity,omitempty"`
}

// Error renders the issue as one line: "source: path: message (got value)"
// (without the path for an issue about a whole file). Every part is
// redacted (RedactText) and escaped (EscapeText; the value is quoted), so
// that a key, a file name or a value holding a newline or an ANSI escape
// can neither forge a line nor reach a terminal raw.
func (i Issue) Error() string {
	i = i.Redacted()
	var b strings.Builder
	if i.Source != "" {
		b.WriteString(EscapeText(i.Source))
		b.WriteString(": ")
	}
	if i.Path != "" {
		b.WriteString(EscapeText(i.Path))
		b.WriteString(": ")
	}
	b.WriteString(EscapeText(i.Message))
	if i.HasValue {
		fmt.Fprintf(&b, " (got %q)", i.Value)
	}
	return b.String()
}

// Redacted returns the issue with RedactText applied to every text field.
// Issues from Validate and from package profiles are already redacted;
// this is for issues built elsewhere.
func (i Issue) Redacted() Issue {
	i.Source, i.Path, i.Message, i.Value = RedactText(i.Source), RedactText(i.Path), RedactText(i.Message), RedactText(i.Value)
	return i
}

// Format renders Error() for every verb (%q quotes it), so that no verb
// prints the fields unredacted or unescaped.
func (i Issue) Format(f fmt.State, verb rune) { formatText(f, verb, i.Error()) }

// formatText writes text for verb: quoted for %q, as it is otherwise.
func formatText(f fmt.State, verb rune, text string) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", text)
		return
	}
	_, _ = f.Write([]byte(text))
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

// Format renders Error() for every verb (%q quotes it).
func (is Issues) Format(f fmt.State, verb rune) { formatText(f, verb, is.Error()) }

// Redacted returns a copy with every issue redacted (Issue.Redacted).
func (is Issues) Redacted() Issues {
	if is == nil {
		return nil
	}
	out := make(Issues, len(is))
	for k, i := range is {
		out[k] = i.Redacted()
	}
	return out
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

// IsSecretFilePath reports whether the key at path names a file whose
// content is a secret (password_file, tls.key_file).
func IsSecretFilePath(path string) bool {
	return strings.HasSuffix(path, "password_file") || strings.HasSuffix(path, "key_file")
}

// DisplayValue renders v for an issue or a printout, redacting secrets: the
// whole value of a secret key, URL credentials in any value, and the value
// of a secret-file key that does not look like a path (DisplayPath).
func DisplayValue(path string, v any) string {
	s := fmt.Sprint(v)
	switch {
	case IsSecretPath(path):
		return RedactString(s)
	case IsSecretFilePath(path):
		return DisplayPath(s)
	}
	return RedactText(s)
}

// DisplayPath renders the value of a key that names a secret file
// (password_file, tls.key_file) for an error message. A value that does
// not look like a file path is more likely the secret itself typed into
// the wrong key, so it is not shown: a value without a '/' (write ./NAME
// for a file in the working directory), and a PEM block.
func DisplayPath(p string) string {
	if p == "" {
		return ""
	}
	if !strings.Contains(p, "/") || strings.Contains(p, "-----BEGIN") || strings.ContainsAny(p, "\n\r") {
		return Redacted
	}
	return RedactText(p)
}
