package factory_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// watched is a factory built from a file and kept current by its watcher.
type watched struct {
	f    *factory.Factory
	w    *profiles.Watcher
	path string
	rt   *runtime.Runtime
}

func startWatched(t testing.TB, doc string, debounce time.Duration) *watched {
	t.Helper()
	path := filepath.Join(t.TempDir(), "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	lo := profiles.Options{Paths: []string{path}}
	res, err := profiles.Load(lo)
	require.NoError(t, err)
	rt := runtime.New(runtime.Options{})
	f, err := factory.New(res.Config, factory.Options{Runtime: rt})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	w, err := f.Watch(ctx, profiles.WatchOptions{Load: lo, Current: res, Debounce: debounce, PollInterval: -1})
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, w.Close())
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		require.NoError(t, f.Close(cctx))
		require.NoError(t, rt.Close(cctx))
	})
	return &watched{f: f, w: w, path: path, rt: rt}
}

// write replaces the file the way an editor's atomic save does.
func (w *watched) write(t testing.TB, doc string) {
	t.Helper()
	tmp := w.path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(doc), 0o600))
	require.NoError(t, os.Rename(tmp, w.path))
}

func TestWatchAppliesEditsAndRejectsInvalidOnes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	w := startWatched(t, fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    client_name: v1\n", srv.Addr()), 50*time.Millisecond)
	ev, cancel := collect(w.rt, runtime.ReloadApplied, runtime.ReloadRejected)
	defer cancel()
	h, err := w.f.Handle("app")
	require.NoError(t, err)
	ctx := context.Background()

	w.write(t, fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    client_name: v2\n", srv.Addr()))
	require.Eventually(t, func() bool { return ev.count(runtime.ReloadApplied) == 1 }, 10*time.Second, 2*time.Millisecond)
	info, err := h.ClientInfo(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, "v2", info.Name)

	// An invalid edit: rejected with its precise problem, clients keep serving.
	w.write(t, fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    client_name: v3\n    timeouts:\n      socket: 5\n", srv.Addr()))
	require.Eventually(t, func() bool { return ev.count(runtime.ReloadRejected) == 1 }, 10*time.Second, 2*time.Millisecond)
	var rejected runtime.Event
	for _, e := range ev.list() {
		if e.Kind == runtime.ReloadRejected {
			rejected = e
		}
	}
	var is schema.Issues
	require.ErrorAs(t, rejected.Err, &is)
	assert.Equal(t, "profiles.app.timeouts.socket", is[0].Path)
	assert.Contains(t, is[0].Source, "redis.yaml:6")
	info, err = h.ClientInfo(ctx).Result()
	require.NoError(t, err)
	assert.Equal(t, "v2", info.Name, "the last valid configuration keeps serving")
	st := w.f.ReloadStats()
	assert.Equal(t, uint64(1), st.Rejected)
	assert.False(t, st.LastSuccessful)
}

// BenchmarkReloadLatency measures the time from an atomic save of the
// configuration file to the new client serving through the handle, with a
// 50ms debounce. It reports the median and p90 of the time beyond the
// debounce (target: under 20ms at the median).
//
//	go test -run '^$' -bench ReloadLatency -benchtime 30x ./factory/
func BenchmarkReloadLatency(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	const debounce = 50 * time.Millisecond
	doc := func(i int) string {
		return fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    client_name: gen-%d\n", srv.Addr(), i)
	}
	w := startWatched(b, doc(0), debounce)
	h, err := w.f.Handle("app")
	require.NoError(b, err)
	ctx := context.Background()
	var beyond []time.Duration
	i := 0
	for b.Loop() {
		i++
		want := fmt.Sprintf("gen-%d", i)
		start := time.Now()
		w.write(b, doc(i))
		for {
			info, err := h.ClientInfo(ctx).Result()
			require.NoError(b, err)
			if info.Name == want {
				break
			}
			time.Sleep(200 * time.Microsecond) // polling granularity of the measurement
		}
		beyond = append(beyond, time.Since(start)-debounce)
	}
	sort.Slice(beyond, func(a, c int) bool { return beyond[a] < beyond[c] })
	b.ReportMetric(float64(beyond[len(beyond)/2].Microseconds())/1000, "ms-beyond-debounce-p50")
	b.ReportMetric(float64(beyond[len(beyond)*9/10].Microseconds())/1000, "ms-beyond-debounce-p90")
}
