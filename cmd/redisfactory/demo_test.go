package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

func TestDemo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		server string
	}{
		{"redis-server from PATH", nil, "started redis-server from PATH"},
		{"embedded server", []string{"--embedded"}, "using an embedded server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.args == nil {
				redistest.Require(t)
			}
			r := runCLI(t, nil, append([]string{"demo"}, tc.args...)...)
			require.Equal(t, 0, r.code, r)
			assert.Contains(t, r.stdout, tc.server)
			assert.Contains(t, r.stdout, "sessions       SET+GET \"hello from sessions\"")
			assert.Contains(t, r.stdout, "env DEMO__DEFAULTS__ADDR (via defaults)")
			assert.Contains(t, r.stdout, "reload.applied")
			assert.Contains(t, r.stdout, "changed [sessions], unchanged [cache, cache-reports]")
			assert.Contains(t, r.stdout, "sessions now: pool.size=30 timeouts.socket=1s; the handle the code holds still works: true")
			assert.Contains(t, r.stdout, "webapp.yaml:41: profiles.sessions.timeouts.socket: a duration needs a unit")
			assert.Contains(t, r.stdout, `GET demo:sessions = "hello from sessions" (err <nil>)`)
			assert.Contains(t, r.stdout, "reloads: 1 applied, 1 rejected")
			assert.Empty(t, r.stderr)
		})
	}
}
