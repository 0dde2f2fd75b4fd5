//go:build unix

package profiles_test

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

// TestWatchSIGHUP: with NotifyOnSignal, SIGHUP reloads (here, to apply a
// changed environment variable, which no file event shows).
func TestWatchSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	env := &envVar{}
	env.set("APP__PROFILES__A__DB=1")
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}, EnvPrefix: "APP", Environ: env.get}})
	stop := h.w.NotifyOnSignal()
	defer stop()

	env.set("APP__PROFILES__A__DB=3")
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	c := h.next()
	require.NoError(t, c.Err)
	assert.Equal(t, "signal SIGHUP", c.Trigger)
	assert.Equal(t, 3, c.Result.Config.Profiles["a"].DB)

	// Unchanged: a SIGHUP is not reported; the file change after it is
	// the next callback.
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGHUP))
	h.waitLog("unchanged", "trigger", "signal SIGHUP")
	h.noCallback()
	stop()
	plainLayout.update(t, dir, cfg("v2"))
	h.nextUser("v2")
}
