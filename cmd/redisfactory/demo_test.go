package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
		{"embedded server", []string{"--embedded"}, "using an embedded server at 127.0.0.1:"},
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
			assert.Contains(t, r.stdout, "redis.yaml:41: profiles.sessions.timeouts.socket: a duration needs a unit")
			assert.Contains(t, r.stdout, `GET demo:sessions = "hello from sessions" (err <nil>)`)
			assert.Contains(t, r.stdout, "reloads: 1 applied, 1 rejected")
			assert.Empty(t, r.stderr)
			if tc.args == nil {
				// Three GETs of a cached key, counted for this step alone.
				m := regexp.MustCompile(`3 more GETs: (\d+) from the client-side cache, (\d+) from the server`).FindStringSubmatch(r.stdout)
				require.NotNil(t, m, r.stdout)
				hits, _ := strconv.Atoi(m[1])
				misses, _ := strconv.Atoi(m[2])
				assert.Equal(t, 3, hits+misses, "the counts are this step's, not running totals")
				assert.GreaterOrEqual(t, hits, 2)
			} else {
				assert.Contains(t, r.stdout, "(--embedded)", "redis-server may be installed: do not claim it is not")
				assert.Contains(t, r.stdout, "client-side caching is off here")
			}
			for _, hint := range demoHints {
				assert.Contains(t, r.stdout, hint)
			}
		})
	}
}

// Every command the demo suggests exits 0 when run, as the demo says, from
// the repository's root.
func TestDemoHintsWork(t *testing.T) {
	t.Chdir("../..")
	for _, hint := range demoHints {
		args := strings.Fields(strings.SplitN(hint, "#", 2)[0])
		require.Equal(t, "redisfactory", args[0])
		r := runCLI(t, nil, args[1:]...)
		assert.Equal(t, exitOK, r.code, "%s: %v", hint, r)
	}
}

// Every `redisfactory validate examples/…` command the README shows exits
// 0 when run as written, from the repository's root.
func TestREADMEExampleCommandsWork(t *testing.T) {
	t.Chdir("../..")
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	cmds := regexp.MustCompile(`(?m)^redisfactory (validate examples/\S+)`).FindAllStringSubmatch(string(readme), -1)
	require.GreaterOrEqual(t, len(cmds), 4, "the README lists a validate command per example")
	dirs, err := filepath.Glob("examples/configs/*/")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, m := range cmds {
		args := strings.Fields(m[1])
		seen[strings.TrimSuffix(args[len(args)-1], "/")] = true
		r := runCLI(t, nil, args...)
		assert.Equal(t, exitOK, r.code, "redisfactory %s: %v", m[1], r)
	}
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			assert.True(t, seen[strings.TrimSuffix(d, "/")], "the README does not show how to validate %s", d)
		}
	}
}
