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

func TestRedactString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"hunter2", "<redacted>"},
		{"redis://user:hunter2@h:6379/0", "redis://user:<redacted>@h:6379/0"},
		{"rediss://:hunter2@h:6380", "rediss://:<redacted>@h:6380"},
		{"redis://h:6379?dial_timeout=3", "redis://h:6379?dial_timeout=3"},
		{"redis://s1:26379?master_name=m&password=hunter2", "redis://s1:26379?master_name=m&password=<redacted>"},
		{"redis://app@h:6379", "redis://<redacted>@h:6379"},
	} {
		assert.Equal(t, tc.want, schema.RedactString(tc.in), tc.in)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := schema.Secret("hunter2")
	type holder struct{ P schema.Secret }
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "p", s)
	j, _ := json.Marshal(holder{s})
	txt, _ := s.MarshalText()
	for _, out := range []string{
		s.String(), fmt.Sprint(s), fmt.Sprintf("%v %s %q %+v %#v", s, s, s, holder{s}, holder{s}),
		b.String(), string(j), string(txt),
	} {
		assert.NotContains(t, out, "hunter2")
	}
	assert.Equal(t, "hunter2", s.Reveal())
}
