package schema

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
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
// empty; a redis://, rediss:// or unix:// URL keeps its shape with its
// password and any password-bearing query parameter (go-redis's failover
// URLs accept ?password=) replaced by <redacted> (see RedactText);
// anything else becomes <redacted>. A lone user-info (redis://X@host) is
// redacted too: go-redis v9 reads it as a user name, but other clients and
// older go-redis read it as the password, and people write it both ways.
func RedactString(v string) string {
	if v == "" {
		return ""
	}
	scheme, _, ok := strings.Cut(v, "://")
	if !ok {
		return Redacted
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
	default:
		return Redacted
	}
	if u, err := url.Parse(v); err != nil || (u.Host == "" && u.Path == "") {
		if !strings.Contains(v, "@") {
			return Redacted
		}
	}
	return RedactText(v)
}
