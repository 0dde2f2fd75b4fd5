package schema

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
)

// Redacted is what every printed secret looks like.
const Redacted = "<redacted>"

// Secret is a string that never prints itself: fmt, slog, JSON and YAML
// all render it as <redacted> (a URL keeps everything but its password).
// Call Reveal to get the value, and only where it is sent to a server.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// IsSet reports whether the secret is non-empty.
func (s Secret) IsSet() bool { return s != "" }

// String implements fmt.Stringer with the redacted form.
func (s Secret) String() string { return RedactString(string(s)) }

// GoString implements fmt.GoStringer with the redacted form.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format renders the redacted form for every verb, so that even %s and %v
// on a struct holding a Secret leak nothing.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	_, _ = f.Write([]byte(s.String()))
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON renders the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText renders the redacted form (YAML encoders use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// RedactString returns the redacted form of a secret value: empty stays
// empty; a URL with a password keeps its shape with the password replaced;
// anything else becomes <redacted>.
func RedactString(v string) string {
	if v == "" {
		return ""
	}
	if u, err := url.Parse(v); err == nil && u.Scheme != "" && (u.Host != "" || u.Path != "") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
			// url.String escapes < and >; put the marker in afterwards.
			return replaceOnce(u.String(), "REDACTED", Redacted)
		}
		if u.User == nil || u.User.Username() == "" {
			return v
		}
		// redis://secret@host: go-redis reads a lone user-info as the password.
		u.User = url.User("REDACTED")
		return replaceOnce(u.String(), "REDACTED", Redacted)
	}
	return Redacted
}

func replaceOnce(s, old, repl string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + repl + s[i+len(old):]
		}
	}
	return s
}
