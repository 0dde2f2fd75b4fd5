package schema_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redisfactory/redisfactory/schema"
)

func TestRedactText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"no url here: hunter2", "no url here: hunter2"},
		{"dial redis://h:6379/0 failed", "dial redis://h:6379/0 failed"},
		{`has a host "redis://:pw@host"`, `has a host "redis://:<redacted>@host"`},
		{"redis://user:pw@h:1 and rediss://u2:pw2@h2:2", "redis://user:<redacted>@h:1 and rediss://u2:<redacted>@h2:2"},
		{"redis://lone@h:1", "redis://<redacted>@h:1"},
		// Unescaped reserved characters: the whole user-info goes.
		{"redis://:pa#ss@h:1", "redis://:<redacted>@h:1"},
		{"redis://:pa/ss@h:1/0", "redis://:<redacted>@h:1/0"},
		{"redis://u:p@ss@h:1", "redis://u:<redacted>@h:1"},
		{"redis://s:26379?master_name=m&password=pw&sentinel_password=spw", "redis://s:26379?master_name=m&password=<redacted>&sentinel_password=<redacted>"},
		{"redis://:<redacted>@h:1", "redis://:<redacted>@h:1"},
	} {
		assert.Equal(t, tc.want, schema.RedactText(tc.in), tc.in)
	}
}

func TestEscapeText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text, spaces kept: é ü 日本", "plain text, spaces kept: é ü 日本"},
		{"a\x1b]0;pwned\x07b", `a\x1b]0;pwned\x07b`},
		{"x\nbuilt-in default: forged", `x\nbuilt-in default: forged`},
		{"cr\rtab\tdel\x7f", `cr\rtab\tdel\x7f`},
		{"c1\u009b31m", `c1\x9b31m`},
		{"bidi\u202eevil", `bidi\u202eevil`},
		{"bad\xffutf8", `bad\xffutf8`},
	} {
		assert.Equal(t, tc.want, schema.EscapeText(tc.in), "%q", tc.in)
	}
}

// TestIssueEscapesAndRedacts: an issue's text can neither forge a line nor
// show a credential, whatever its fields hold; JSON keeps the exact text.
func TestIssueEscapesAndRedacts(t *testing.T) {
	is := schema.Issue{Source: "a\nb.yaml:1", Path: "profiles.x\x1b[2J", Rule: "r", Message: `has a host "redis://:S3CRET@h"`, Value: "redis://:S3CRET@h", HasValue: true}
	s := is.Error()
	assert.NotContains(t, s, "\n")
	assert.NotContains(t, s, "\x1b")
	assert.NotContains(t, s, "S3CRET")
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%d", "%t"} {
		assert.NotContains(t, fmt.Sprintf(verb, is), "S3CRET", verb)
		assert.NotContains(t, fmt.Sprintf(verb, schema.Issues{is}), "S3CRET", verb)
	}
	j, err := json.Marshal(schema.Issue{Path: "profiles.x\x1b", Message: "m"})
	assert.NoError(t, err)
	assert.Contains(t, string(j), `profiles.x\u001b`)
}

// TestConfigTypesNeverPrintSecrets: every fmt verb, slog and JSON on the
// configuration types, with a marker secret wherever one can hide.
func TestConfigTypesNeverPrintSecrets(t *testing.T) {
	const marker = "S3CRETmarker"
	p := schema.Profile{
		URL: "redis://" + marker + "@h:1", Addr: "redis://:" + marker + "@h:1", Addrs: []string{"rediss://u:" + marker + "@h:2"},
		Username: marker, Password: marker,
		Sentinel: schema.SentinelConfig{Addrs: []string{"redis://:" + marker + "@s:1"}, Password: marker, Username: marker},
	}
	c := schema.Config{Defaults: p, Profiles: map[string]*schema.Profile{"a": &p}}
	// A sentinel block alone does not know the URL its user name came
	// from; its addresses are what it must redact.
	s := p.Sentinel
	s.Username = "app"
	values := []any{p, &p, c, &c, s, &s, p.Password, p.URL}
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%t", "%T", "%10.3s"} {
		for _, v := range values {
			out := fmt.Sprintf(verb, v)
			assert.NotContains(t, out, marker, "%s on %T", verb, v)
			assert.NotContains(t, out, fmt.Sprintf("%x", marker), "%s on %T", verb, v)
		}
	}
	var b strings.Builder
	for _, h := range []slog.Handler{slog.NewTextHandler(&b, nil), slog.NewJSONHandler(&b, nil)} {
		slog.New(h).Info("cfg", "profile", p, "ptr", &p, "config", c, "sentinel", s)
	}
	assert.NotContains(t, b.String(), marker)
	for _, v := range values {
		j, err := json.Marshal(v)
		assert.NoError(t, err)
		assert.NotContains(t, string(j), marker, "%T", v)
	}
	for _, ptr := range []any{&p, &c, &s, &p.Password} {
		assert.NotContains(t, fmt.Sprintf("%p", ptr), marker)
	}
	tree := fmt.Sprint(p.Tree())
	assert.NotContains(t, tree, marker)
	// The real values are still there for the client.
	assert.Equal(t, marker, p.Password.Reveal())
	assert.Equal(t, "redis://:"+marker+"@h:1", p.Addr)
}
