package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/runtime"
)

func TestNewDefaults(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	require.NotNil(t, rt.Logger())
	assert.True(t, rt.Logger().Enabled(context.Background(), slog.LevelWarn), "the default logger follows slog.Default, which logs warnings")
	assert.False(t, rt.Logger().Enabled(context.Background(), slog.LevelDebug), "slog.Default drops debug lines")
	require.NotNil(t, rt.Clock())
	assert.WithinDuration(t, time.Now(), rt.Clock().Now(), time.Minute)
	require.NotNil(t, rt.Events())
	assert.NoError(t, rt.Context().Err())
	assert.False(t, rt.Closed())

	require.NoError(t, rt.Close(context.Background()))
	assert.True(t, rt.Closed())
	assert.ErrorIs(t, rt.Context().Err(), context.Canceled)
}

func TestNewUsesOptions(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	clk := runtime.NewManualClock(t0)
	rt := runtime.New(runtime.Options{Logger: logger, Clock: clk})
	defer rt.Close(context.Background())
	assert.Same(t, logger, rt.Logger())
	assert.Equal(t, runtime.Clock(clk), rt.Clock())
}

func TestEvery(t *testing.T) {
	rt, clk := newRuntime(t, runtime.Options{})
	runs := make(chan time.Time)
	stop := rt.Every("job", time.Second, func(ctx context.Context) { runs <- clk.Now() })

	clk.BlockUntil(1)
	clk.Advance(999 * time.Millisecond)
	select {
	case <-runs:
		t.Fatal("ran before one interval")
	default:
	}
	clk.Advance(time.Millisecond)
	assert.Equal(t, t0.Add(time.Second), <-runs)
	clk.Advance(time.Second)
	assert.Equal(t, t0.Add(2*time.Second), <-runs)

	stop()
	stop() // idempotent
	assert.Equal(t, 0, clk.Waiters(), "ticker not stopped")
	clk.Advance(time.Hour)
	select {
	case <-runs:
		t.Fatal("ran after stop")
	default:
	}
}

func TestEveryNoOverlap(t *testing.T) {
	rt, clk := newRuntime(t, runtime.Options{})
	var active, maxActive, runs atomic.Int32
	started, release := make(chan struct{}), make(chan struct{})
	stop := rt.Every("job", time.Second, func(ctx context.Context) {
		n := active.Add(1)
		if n > maxActive.Load() {
			maxActive.Store(n)
		}
		runs.Add(1)
		started <- struct{}{}
		<-release
		active.Add(-1)
	})

	clk.Advance(time.Second)
	<-started
	// Three more intervals pass while the first run is still going: one
	// tick is kept for when it returns, the others are dropped.
	clk.Advance(3 * time.Second)
	release <- struct{}{}
	<-started
	release <- struct{}{}
	stop()

	assert.Equal(t, int32(2), runs.Load())
	assert.Equal(t, int32(1), maxActive.Load())
}

func TestEveryStopWaitsForRun(t *testing.T) {
	rt, clk := newRuntime(t, runtime.Options{})
	running, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	stop := rt.Every("job", time.Second, func(ctx context.Context) {
		close(running)
		<-ctx.Done() // stop cancels the run's context...
		close(cancelled)
		<-release // ...and waits for it to return.
	})
	clk.Advance(time.Second)
	<-running

	stopped := make(chan struct{})
	go func() {
		stop()
		close(stopped)
	}()
	<-cancelled
	select {
	case <-stopped:
		t.Fatal("stop returned while fn was running")
	default:
	}
	close(release)
	<-stopped
}

func TestEveryStoppedByClose(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	rt := runtime.New(runtime.Options{Clock: clk})
	runs := make(chan struct{}, 10)
	stop := rt.Every("job", time.Second, func(context.Context) { runs <- struct{}{} })
	require.NoError(t, rt.Close(context.Background()))
	assert.Equal(t, 0, clk.Waiters())
	clk.Advance(time.Hour)
	stop() // still fine after Close
	assert.Empty(t, runs)
}

func TestEveryPanicsOnBadInterval(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	assert.Panics(t, func() { rt.Every("job", 0, func(context.Context) {}) })
}

func TestGoCancelledByClose(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	const n = 5
	started := make(chan struct{}, n)
	var stopped atomic.Int32
	for range n {
		rt.Go("worker", func(ctx context.Context) {
			started <- struct{}{}
			<-ctx.Done()
			stopped.Add(1)
		})
	}
	for range n {
		<-started
	}
	require.NoError(t, rt.Close(context.Background()))
	assert.Equal(t, int32(n), stopped.Load(), "Close returned before its goroutines")
}

func TestNoOpsAfterClose(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	require.NoError(t, rt.Close(context.Background()))

	rt.Go("late", func(context.Context) { t.Error("Go ran after Close") })
	rt.Every("late", time.Nanosecond, func(context.Context) { t.Error("Every ran after Close") })()
	rt.OnClose("late", func(context.Context) error { t.Error("closer ran"); return nil })()
	require.NoError(t, rt.Close(context.Background()))
}

func TestCloseRunsClosersInReverseOrder(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	var order []string
	for _, name := range []string{"first", "second", "third", "fourth"} {
		unregister := rt.OnClose(name, func(ctx context.Context) error {
			order = append(order, name)
			return nil
		})
		if name == "third" {
			unregister()
			unregister() // idempotent
		}
	}
	require.NoError(t, rt.Close(context.Background()))
	assert.Equal(t, []string{"fourth", "second", "first"}, order)
}

func TestCloseOrderOfPhases(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	rt := runtime.New(runtime.Options{Clock: clk})
	var (
		mu    sync.Mutex
		order []string
	)
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		order = append(order, s)
	}
	jobStarted := make(chan struct{})
	rt.Every("job", time.Second, func(ctx context.Context) {
		close(jobStarted)
		<-ctx.Done()
		record("job")
	})
	goStarted := make(chan struct{})
	rt.Go("goroutine", func(ctx context.Context) {
		close(goStarted)
		<-ctx.Done()
		record("goroutine") // may come before or after the closer
	})
	rt.OnClose("closer", func(context.Context) error {
		record("closer")
		return nil
	})
	clk.Advance(time.Second)
	<-jobStarted
	<-goStarted
	require.NoError(t, rt.Close(context.Background()))
	// The goroutine is cancelled first thing but only waited for last, so it
	// may record at any point; the job must be done before closers run.
	require.ElementsMatch(t, []string{"job", "closer", "goroutine"}, order)
	assert.Less(t, slices.Index(order, "job"), slices.Index(order, "closer"), "Every jobs stop before closers run: %v", order)
}

func TestCloseReportsWhatDidNotStop(t *testing.T) {
	tests := []struct {
		name string
		// setup registers work on rt; hang is closed by the test to unblock
		// whatever ignores the deadline.
		setup    func(t *testing.T, rt *runtime.Runtime, clk *runtime.ManualClock, hang <-chan struct{}, returned *sync.WaitGroup)
		wantMsg  string
		wantRuns []string
	}{
		{
			name: "hanging closer",
			setup: func(t *testing.T, rt *runtime.Runtime, _ *runtime.ManualClock, hang <-chan struct{}, returned *sync.WaitGroup) {
				rt.OnClose("pool", func(context.Context) error { return nil })
				returned.Add(1)
				rt.OnClose("factory", func(context.Context) error {
					defer returned.Done()
					<-hang // ignores ctx
					return nil
				})
			},
			wantMsg: "runtime: close: not stopped in time: factory, pool: context deadline exceeded",
		},
		{
			name: "hanging job",
			setup: func(t *testing.T, rt *runtime.Runtime, clk *runtime.ManualClock, hang <-chan struct{}, returned *sync.WaitGroup) {
				running := make(chan struct{})
				returned.Add(1)
				rt.Every("health-probe(sessions)", time.Second, func(context.Context) {
					defer returned.Done()
					close(running)
					<-hang
				})
				rt.OnClose("factory", func(context.Context) error { return nil })
				clk.Advance(time.Second)
				<-running
			},
			wantMsg: "runtime: close: not stopped in time: health-probe(sessions), factory: context deadline exceeded",
		},
		{
			name: "hanging goroutine",
			setup: func(t *testing.T, rt *runtime.Runtime, _ *runtime.ManualClock, hang <-chan struct{}, returned *sync.WaitGroup) {
				returned.Add(1)
				rt.Go("watcher", func(context.Context) {
					defer returned.Done()
					<-hang
				})
				rt.OnClose("factory", func(context.Context) error { return nil })
			},
			wantMsg: "runtime: close: not stopped in time: watcher: context deadline exceeded",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := runtime.NewManualClock(t0)
			rt := runtime.New(runtime.Options{Clock: clk})
			hang := make(chan struct{})
			var returned sync.WaitGroup
			tt.setup(t, rt, clk, hang, &returned)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			err := rt.Close(ctx)
			close(hang)
			returned.Wait()

			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.EqualError(t, err, tt.wantMsg)
			var ns *runtime.NotStoppedError
			require.ErrorAs(t, err, &ns)
			assert.NotEmpty(t, ns.Names)

			// Later calls report the same outcome.
			assert.Equal(t, err, rt.Close(context.Background()))
		})
	}
}

func TestCloseJoinsCloserErrors(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	errA, errB := errors.New("a failed"), errors.New("b failed")
	rt.OnClose("a", func(context.Context) error { return errA })
	rt.OnClose("ok", func(context.Context) error { return nil })
	rt.OnClose("b", func(context.Context) error { return errB })

	err := rt.Close(context.Background())
	require.Error(t, err)
	assert.ErrorIs(t, err, errA)
	assert.ErrorIs(t, err, errB)
	assert.NotErrorIs(t, err, context.DeadlineExceeded)
	assert.EqualError(t, err, "runtime: close b: b failed\nruntime: close a: a failed")
}

func TestCloseGivesClosersTheContext(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	var got any
	rt.OnClose("c", func(ctx context.Context) error {
		got = ctx.Value(key{})
		return nil
	})
	require.NoError(t, rt.Close(ctx))
	assert.Equal(t, "v", got)
}

func TestCloseIdempotentAndConcurrent(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	var calls atomic.Int32
	rt.OnClose("c", func(context.Context) error {
		calls.Add(1)
		return errors.New("boom")
	})

	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- rt.Close(context.Background()) }()
	}
	first := <-errs
	require.EqualError(t, first, "runtime: close c: boom")
	for range n - 1 {
		assert.Equal(t, first, <-errs)
	}
	assert.Equal(t, first, rt.Close(context.Background()))
	assert.Equal(t, int32(1), calls.Load())
}

func TestCloseConcurrentCallerContext(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	entered, release := make(chan struct{}), make(chan struct{})
	rt.OnClose("slow", func(context.Context) error {
		close(entered)
		<-release
		return nil
	})
	first := make(chan error)
	go func() { first <- rt.Close(context.Background()) }()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, rt.Close(ctx), context.Canceled)
	close(release)
	assert.NoError(t, <-first)
}

// TestSharedRuntime has two factories share one runtime, each with its own
// background job, event subscription and closer.
func TestSharedRuntime(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	rt := runtime.New(runtime.Options{Clock: clk})

	type factory struct {
		name   string
		sub    *runtime.Subscription
		probes chan string
	}
	var (
		mu     sync.Mutex
		closed []string
	)
	newFactory := func(name string) *factory {
		f := &factory{name: name, sub: rt.Events().Subscribe(), probes: make(chan string, 10)}
		rt.Every("health-probe("+name+")", time.Second, func(context.Context) {
			rt.Events().Publish(runtime.Event{Kind: runtime.HealthChanged, Profile: name})
			f.probes <- name
		})
		rt.OnClose("factory("+name+")", func(context.Context) error {
			rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed, Profile: name})
			mu.Lock()
			defer mu.Unlock()
			closed = append(closed, name)
			return nil
		})
		rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt, Profile: name})
		return f
	}
	sessions, cache := newFactory("sessions"), newFactory("cache")

	clk.Advance(time.Second)
	assert.Equal(t, "sessions", <-sessions.probes)
	assert.Equal(t, "cache", <-cache.probes)
	require.NoError(t, rt.Close(context.Background()))

	assert.Equal(t, []string{"cache", "sessions"}, closed)
	assert.Equal(t, uint64(2), rt.Events().Count(runtime.ClientBuilt))
	assert.Equal(t, uint64(2), rt.Events().Count(runtime.HealthChanged))
	assert.Equal(t, uint64(2), rt.Events().Count(runtime.ClientClosed))
	// Each factory sees the events of both from the time it subscribed; the
	// health events of the two jobs may come in either order.
	common := []string{
		"client.built/cache",
		"health.changed/sessions", "health.changed/cache",
		"client.closed/cache", "client.closed/sessions",
	}
	for _, tt := range []struct {
		f    *factory
		want []string
	}{
		{f: sessions, want: append([]string{"client.built/sessions"}, common...)},
		{f: cache, want: common},
	} {
		var got []string
		for e := range tt.f.sub.C() { // closed by rt.Close
			got = append(got, string(e.Kind)+"/"+e.Profile)
		}
		assert.ElementsMatch(t, tt.want, got, tt.f.name)
		require.GreaterOrEqual(t, len(got), 2)
		assert.Equal(t, []string{"client.closed/cache", "client.closed/sessions"}, got[len(got)-2:], tt.f.name)
	}
}
