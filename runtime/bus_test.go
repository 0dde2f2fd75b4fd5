package runtime_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/runtime"
)

// newRuntime returns a runtime on a manual clock that is closed when the test
// ends.
func newRuntime(t *testing.T, opts runtime.Options) (*runtime.Runtime, *runtime.ManualClock) {
	t.Helper()
	clk := runtime.NewManualClock(t0)
	if opts.Clock == nil {
		opts.Clock = clk
	}
	rt := runtime.New(opts)
	t.Cleanup(func() { require.NoError(t, rt.Close(context.Background())) })
	return rt, clk
}

func TestSubscribeOrder(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	sub := rt.Events().Subscribe()
	defer sub.Close()

	const n = 100
	for i := range n {
		rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted, Attempt: i})
	}
	for i := range n {
		e := <-sub.C()
		assert.Equal(t, i, e.Attempt)
		assert.Equal(t, runtime.RetryAttempted, e.Kind)
	}
	assert.Zero(t, sub.Dropped())
}

func TestPublishFillsTime(t *testing.T) {
	rt, clk := newRuntime(t, runtime.Options{})
	sub := rt.Events().Subscribe()
	defer sub.Close()

	clk.Advance(time.Second)
	rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt})
	explicit := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt, Time: explicit})

	assert.Equal(t, t0.Add(time.Second), (<-sub.C()).Time)
	assert.Equal(t, explicit, (<-sub.C()).Time)
}

func TestSlowSubscriberDoesNotBlockPublish(t *testing.T) {
	tests := []struct {
		name        string
		eventBuffer int
		opts        []runtime.SubscribeOption
		wantBuffer  int
	}{
		{name: "default buffer", wantBuffer: runtime.DefaultEventBuffer},
		{name: "runtime buffer", eventBuffer: 4, wantBuffer: 4},
		{name: "subscription buffer", eventBuffer: 4, opts: []runtime.SubscribeOption{runtime.WithBuffer(2)}, wantBuffer: 2},
		{name: "invalid subscription buffer ignored", eventBuffer: 3, opts: []runtime.SubscribeOption{runtime.WithBuffer(0)}, wantBuffer: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt, _ := newRuntime(t, runtime.Options{EventBuffer: tt.eventBuffer})
			slow := rt.Events().Subscribe(tt.opts...) // never read until the end
			defer slow.Close()
			fast := rt.Events().Subscribe(runtime.WithBuffer(10_000))
			defer fast.Close()

			const n = 1000
			for i := range n {
				rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted, Attempt: i})
			}
			assert.Equal(t, uint64(n-tt.wantBuffer), slow.Dropped())
			assert.Zero(t, fast.Dropped())
			for i := range tt.wantBuffer {
				assert.Equal(t, i, (<-slow.C()).Attempt, "the oldest events are kept")
			}
			assert.Len(t, fast.C(), n)
		})
	}
}

func TestSubscribeWithKinds(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	sub := rt.Events().Subscribe(runtime.WithKinds(runtime.ReloadApplied, runtime.ReloadFailed), runtime.WithBuffer(1))
	defer sub.Close()

	for _, k := range []runtime.Kind{runtime.ClientBuilt, runtime.ReloadFailed, runtime.RetryAttempted, runtime.ReloadApplied} {
		rt.Events().Publish(runtime.Event{Kind: k})
	}
	assert.Equal(t, runtime.ReloadFailed, (<-sub.C()).Kind)
	assert.Equal(t, uint64(1), sub.Dropped(), "only matching events count as dropped")
}

func TestSubscriptionClose(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	sub := rt.Events().Subscribe()
	rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt})
	sub.Close()
	sub.Close() // idempotent
	rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed})

	e, ok := <-sub.C()
	require.True(t, ok, "buffered event lost at Close")
	assert.Equal(t, runtime.ClientBuilt, e.Kind)
	_, ok = <-sub.C()
	assert.False(t, ok, "channel not closed")
}

func TestCounts(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	bus := rt.Events()
	assert.Empty(t, bus.Counts())

	const custom runtime.Kind = "custom.thing"
	publish := map[runtime.Kind]int{runtime.RetryAttempted: 3, runtime.HealthChanged: 1, custom: 2}
	for k, n := range publish {
		for range n {
			bus.Publish(runtime.Event{Kind: k})
		}
	}
	want := map[runtime.Kind]uint64{}
	for k, n := range publish {
		assert.Equal(t, uint64(n), bus.Count(k), "kind %s", k)
		want[k] = uint64(n)
	}
	assert.Zero(t, bus.Count(runtime.ReloadFailed))
	assert.Zero(t, bus.Count("never.published"))
	assert.Equal(t, want, bus.Counts())
}

func TestCountsConcurrent(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	const goroutines, perG = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range perG {
				rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted})
				rt.Events().Publish(runtime.Event{Kind: runtime.Kind(fmt.Sprintf("custom.%d", g%2))})
			}
		})
	}
	wg.Wait()
	assert.Equal(t, uint64(goroutines*perG), rt.Events().Count(runtime.RetryAttempted))
	assert.Equal(t, uint64(goroutines*perG/2), rt.Events().Count("custom.0"))
	assert.Equal(t, uint64(goroutines*perG/2), rt.Events().Count("custom.1"))
}

func TestSubscribeFunc(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	got := make(chan runtime.Event, 10)
	cancel := rt.Events().SubscribeFunc(func(e runtime.Event) { got <- e })

	for i := range 3 {
		rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted, Attempt: i})
	}
	for i := range 3 {
		assert.Equal(t, i, (<-got).Attempt)
	}

	cancel()
	cancel() // idempotent
	rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted, Attempt: 99})
	require.NoError(t, rt.Close(context.Background())) // waits for the delivery goroutine
	assert.Empty(t, got, "fn called after cancel")
}

func TestSubscribeFuncCancelFromCallback(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	var cancel func()
	calls := 0
	cancel = rt.Events().SubscribeFunc(func(runtime.Event) {
		calls++
		cancel()
	})
	for range 5 {
		rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt})
	}
	require.NoError(t, rt.Close(context.Background()))
	assert.Equal(t, 1, calls)
}

func TestSubscribeFuncDrainsAtClose(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	release := make(chan struct{})
	var got []runtime.Kind
	rt.Events().SubscribeFunc(func(e runtime.Event) {
		<-release
		got = append(got, e.Kind)
	}, runtime.WithName("recorder"))
	// A closer's events are still delivered.
	rt.OnClose("factory", func(context.Context) error {
		rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed})
		return nil
	})

	rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt})
	rt.Events().Publish(runtime.Event{Kind: runtime.ReloadApplied})
	closed := make(chan error)
	go func() { closed <- rt.Close(context.Background()) }()
	close(release)
	require.NoError(t, <-closed)
	assert.Equal(t, []runtime.Kind{runtime.ClientBuilt, runtime.ReloadApplied, runtime.ClientClosed}, got)
}

func TestSubscribeFuncHangingReportedAtClose(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	release, returned := make(chan struct{}), make(chan struct{})
	rt.Events().SubscribeFunc(func(runtime.Event) {
		defer close(returned)
		<-release
	}, runtime.WithName("exporter"))
	rt.Events().Publish(runtime.Event{Kind: runtime.ClientBuilt})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := rt.Close(ctx)
	close(release)
	<-returned
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "not stopped in time: events(exporter)")
}

func TestPublishAfterClose(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	sub := rt.Events().Subscribe()
	require.NoError(t, rt.Close(context.Background()))

	_, ok := <-sub.C()
	assert.False(t, ok, "subscription channel not closed by Close")
	assert.NotPanics(t, func() { rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed}) })
	assert.Equal(t, uint64(1), rt.Events().Count(runtime.ClientClosed))

	late := rt.Events().Subscribe()
	_, ok = <-late.C()
	assert.False(t, ok, "subscription made after Close is open")
	late.Close()
	rt.Events().SubscribeFunc(func(runtime.Event) { t.Error("fn called after Close") })()
	sub.Close()
}

func TestPublishConcurrentWithSubscribeAndClose(t *testing.T) {
	rt := runtime.New(runtime.Options{EventBuffer: 8})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted})
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range 50 {
				sub := rt.Events().Subscribe()
				<-sub.C()
				sub.Close()
				rt.Events().SubscribeFunc(func(runtime.Event) {})()
			}
		})
	}
	// Close while publishing and subscribing are in full swing.
	require.NoError(t, rt.Close(context.Background()))
	close(stop)
	wg.Wait()
}

func TestPublishLogs(t *testing.T) {
	tests := []struct {
		name     string
		level    slog.Level
		event    runtime.Event
		wantLine string // empty: nothing logged
	}{
		{
			name:     "debug kind at debug level",
			level:    slog.LevelDebug,
			event:    runtime.Event{Kind: runtime.RetryAttempted, Profile: "sessions", Attempt: 2, Delay: 20 * time.Millisecond, Command: "get"},
			wantLine: `level=DEBUG msg=retry.attempted kind=retry.attempted profile=sessions attempt=2 delay=20ms cmd=get`,
		},
		{
			name:  "debug kind at info level",
			level: slog.LevelInfo,
			event: runtime.Event{Kind: runtime.ClientBuilt},
		},
		{
			name:     "failure kind at info level",
			level:    slog.LevelInfo,
			event:    runtime.Event{Kind: runtime.ReloadFailed, Profile: "cache", Message: "reload failed", Err: errors.New("dial tcp: refused")},
			wantLine: `level=WARN msg="reload failed" kind=reload.failed profile=cache err="dial tcp: refused"`,
		},
		{
			name:     "attrs",
			level:    slog.LevelDebug,
			event:    runtime.Event{Kind: runtime.HealthChanged, Attrs: []slog.Attr{slog.String("from", "healthy")}},
			wantLine: `level=DEBUG msg=health.changed kind=health.changed from=healthy`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			h := slog.NewTextHandler(&buf, &slog.HandlerOptions{
				Level: tt.level,
				ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey && len(groups) == 0 {
						return slog.Attr{}
					}
					return a
				},
			})
			rt, _ := newRuntime(t, runtime.Options{Logger: slog.New(h)})
			rt.Events().Publish(tt.event)
			if tt.wantLine == "" {
				assert.Empty(t, buf.String())
			} else {
				assert.Equal(t, tt.wantLine+"\n", buf.String())
			}
		})
	}
}

func TestKindLevel(t *testing.T) {
	warn := []runtime.Kind{runtime.RetryExhausted, runtime.RetryThrottled, runtime.HealthCheckFailed, runtime.ReloadRejected, runtime.ReloadFailed, runtime.HandoffFailed, "custom.failed"}
	debug := []runtime.Kind{runtime.ClientBuilt, runtime.ClientClosed, runtime.RetryAttempted, runtime.ConnReplaced,
		runtime.HealthChanged, runtime.ReloadApplied, runtime.CacheFlushed, runtime.HandoffStarted, runtime.HandoffCompleted, runtime.MaintenanceNotification, "custom"}
	for _, k := range warn {
		assert.Equal(t, slog.LevelWarn, k.Level(), "kind %s", k)
	}
	for _, k := range debug {
		assert.Equal(t, slog.LevelDebug, k.Level(), "kind %s", k)
	}
}

func TestEventString(t *testing.T) {
	at := time.Date(2025, 1, 1, 12, 0, 1, 234_000_000, time.UTC)
	tests := []struct {
		name  string
		event runtime.Event
		want  string
	}{
		{
			name: "retry",
			event: runtime.Event{Kind: runtime.RetryAttempted, Time: at, Profile: "sessions", Attempt: 2,
				Delay: 20 * time.Millisecond, Class: "connection", Command: "get", Err: errors.New("read: i/o timeout")},
			want: `12:00:01.234 retry.attempted profile=sessions attempt=2 delay=20ms class=connection cmd=get err="read: i/o timeout"`,
		},
		{
			name:  "kind only, no time",
			event: runtime.Event{Kind: runtime.ClientBuilt},
			want:  `client.built`,
		},
		{
			name:  "message and quoting",
			event: runtime.Event{Kind: runtime.HealthChanged, Time: at, Profile: "my profile", Message: "healthy -> degraded"},
			want:  `12:00:01.234 health.changed profile="my profile" msg="healthy -> degraded"`,
		},
		{
			name: "attrs",
			event: runtime.Event{Kind: runtime.MaintenanceNotification, Time: at,
				Attrs: []slog.Attr{slog.String("type", "MOVING"), slog.Int("slot", 42), {}, slog.String("empty", "")}},
			want: `12:00:01.234 maint.notification type=MOVING slot=42 empty=""`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.event.String())
		})
	}
}

func BenchmarkPublishNoSubscribers(b *testing.B) {
	rt := runtime.New(runtime.Options{})
	defer rt.Close(context.Background())
	bus := rt.Events()
	e := runtime.Event{Kind: runtime.RetryAttempted, Profile: "sessions", Attempt: 2, Delay: 20 * time.Millisecond, Command: "get"}
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
}

func BenchmarkPublishOneSubscriber(b *testing.B) {
	rt := runtime.New(runtime.Options{})
	defer rt.Close(context.Background())
	bus := rt.Events()
	sub := bus.Subscribe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range sub.C() {
		}
	}()
	e := runtime.Event{Kind: runtime.RetryAttempted, Profile: "sessions", Attempt: 2, Delay: 20 * time.Millisecond, Command: "get"}
	b.ReportAllocs()
	for b.Loop() {
		bus.Publish(e)
	}
	b.StopTimer()
	sub.Close()
	<-done
	b.ReportMetric(float64(sub.Dropped())/float64(b.N), "drops/op")
}

func BenchmarkPublishParallelNoSubscribers(b *testing.B) {
	rt := runtime.New(runtime.Options{})
	defer rt.Close(context.Background())
	bus := rt.Events()
	e := runtime.Event{Kind: runtime.RetryAttempted, Profile: "sessions"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bus.Publish(e)
		}
	})
}
