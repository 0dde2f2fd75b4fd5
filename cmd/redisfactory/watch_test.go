package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

func TestWatchPrintsReloadsAndRejections(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	path := write(t, dir, "redis.yaml", fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    password: s3cr3t-value\n", srv.Addr()))
	require.NoError(t, srv.Client(t).ConfigSet(context.Background(), "requirepass", "s3cr3t-value").Err())

	ctx, cancel := context.WithCancel(context.Background())
	saved := watchSignals
	watchSignals = func(context.Context) (context.Context, context.CancelFunc) { return ctx, cancel }
	t.Cleanup(func() { watchSignals = saved })

	var out, errb redistest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"watch", "--debounce", "30ms", "--probe", "50ms", path}, &out, &errb, nil)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watching ") }, 10*time.Second, 5*time.Millisecond)

	save := func(doc string) {
		tmp := filepath.Join(dir, ".redis.yaml.tmp")
		require.NoError(t, os.WriteFile(tmp, []byte(doc), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	save(fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    password: s3cr3t-value\n    pool:\n      size: 3\n", srv.Addr()))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "reload.applied") }, 10*time.Second, 5*time.Millisecond)
	save(fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    password: s3cr3t-value\n    timeouts:\n      socket: 5\n", srv.Addr()))
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "reload.rejected") }, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "health.changed") }, 10*time.Second, 5*time.Millisecond)
	cancel()

	select {
	case code := <-done:
		assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("watch did not stop")
	}
	o := out.String()
	assert.Contains(t, o, "changed [app]")
	assert.Contains(t, o, "redis.yaml:6: profiles.app.timeouts.socket: a duration needs a unit")
	assert.Contains(t, o, "unknown -> up")
	assert.Contains(t, o, "stopped: 1 reloads applied, 1 rejected, 0 failed")
	assert.NotContains(t, o+errb.String(), "s3cr3t-value")
}

func TestWatchUsage(t *testing.T) {
	r := runCLI(t, nil, "watch")
	assert.Equal(t, 2, r.code)
	dir := t.TempDir()
	bad := write(t, dir, "bad.yaml", "profiles:\n  a:\n    db: x\n")
	r = runCLI(t, nil, "watch", bad)
	assert.Equal(t, 1, r.code)
	assert.Contains(t, r.stdout, "profiles.a.db: must be a whole number")
}

// A cache statistics line is printed when the numbers changed, not on
// every tick of --stats: an idle cache gives no line after the first (the
// probes bring its invalidation connection up); a cache that changes (that
// connection is killed, so it is flushed) gives a new line with the new
// numbers.
func TestWatchPrintsCacheStatsOnlyWhenChanged(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	path := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf("profiles:\n  cached:\n    addr: %s\n    cache: {enabled: true}\n", srv.Addr()))

	ctx, cancel := context.WithCancel(context.Background())
	saved := watchSignals
	watchSignals = func(context.Context) (context.Context, context.CancelFunc) { return ctx, cancel }
	t.Cleanup(func() { watchSignals = saved })
	var out, errb redistest.SyncBuffer
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- run([]string{"watch", "--stats", "20ms", "--probe", "30ms", path}, &out, &errb, nil)
	}()
	statLines := func() []string {
		var ls []string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.Contains(l, " cache profile=cached ") {
				ls = append(ls, l)
			}
		}
		return ls
	}

	// Idle: at most the first line (and one more while the invalidation
	// connection comes up) in 30 ticks.
	time.Sleep(600 * time.Millisecond)
	ticks := int(time.Since(start) / (20 * time.Millisecond))
	idle := statLines()
	require.GreaterOrEqual(t, ticks, 20)
	assert.LessOrEqual(t, len(idle), 2, "an idle cache printed %d lines in %d ticks:\n%s", len(idle), ticks, out.String())
	require.NotEmpty(t, idle, "the first statistics line")

	// Changed: killing the server's connections drops the cache's
	// invalidation connection, so the cache is flushed (it can no longer
	// know what changed on the server).
	require.NoError(t, srv.Client(t).Do(context.Background(), "CLIENT", "KILL", "SKIPME", "yes").Err())
	require.Eventually(t, func() bool { return len(statLines()) > len(idle) }, 10*time.Second, 5*time.Millisecond,
		"a changed cache printed no line:\n%s", out.String())
	changed := statLines()[len(idle)]
	assert.Contains(t, changed, " flushes=1 ", "the new line shows the flush")
	assert.NotEqual(t, idle[len(idle)-1][strings.Index(idle[len(idle)-1], " cache "):], changed[strings.Index(changed, " cache "):])

	cancel()
	select {
	case code := <-done:
		require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("watch did not stop")
	}
}
