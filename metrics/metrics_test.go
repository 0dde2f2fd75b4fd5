package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/goleak"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/metrics"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a factory on a real server with its metrics read by a manual
// reader, the way an application's SDK would.
type env struct {
	rt     *runtime.Runtime
	f      *factory.Factory
	m      *metrics.Metrics
	reader *sdkmetric.ManualReader
}

func load(t *testing.T, doc string) *schema.Config {
	t.Helper()
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte(doc))}})
	require.NoError(t, err)
	return r.Config
}

func newEnv(t *testing.T, doc string) *env {
	t.Helper()
	rt := runtime.New(runtime.Options{DiscardLogs: true})
	f, err := factory.New(load(t, doc), factory.Options{Runtime: rt})
	require.NoError(t, err)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	m, err := metrics.New(rt, metrics.Options{MeterProvider: mp})
	require.NoError(t, err)
	remove := m.Observe(f)
	t.Cleanup(func() {
		remove()
		require.NoError(t, m.Close())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.Close(ctx))
		require.NoError(t, rt.Close(ctx))
		require.NoError(t, mp.Shutdown(ctx))
	})
	return &env{rt: rt, f: f, m: m, reader: reader}
}

// value returns the value of the data point of metric name whose
// attributes include attrs, and whether there is one.
func (e *env) value(t *testing.T, name string, attrs ...attribute.KeyValue) (float64, bool) {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, e.reader.Collect(context.Background(), &rm))
	match := func(set attribute.Set) bool {
		for _, kv := range attrs {
			if v, ok := set.Value(kv.Key); !ok || v != kv.Value {
				return false
			}
		}
		return true
	}
	for _, sm := range rm.ScopeMetrics {
		for _, md := range sm.Metrics {
			if md.Name != name {
				continue
			}
			switch d := md.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Value), true
					}
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Value), true
					}
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return p.Value, true
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					if match(p.Attributes) {
						return float64(p.Count), true
					}
				}
			}
		}
	}
	return 0, false
}

// eventually waits until metric name (with attrs) has value want: the
// event-fed counters are updated by the metrics subscriber, asynchronously.
func (e *env) eventually(t *testing.T, want float64, name string, attrs ...attribute.KeyValue) {
	t.Helper()
	var got float64
	var ok bool
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got, ok = e.value(t, name, attrs...); ok && got == want {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s%v = %v (present %v), want %v", name, attrs, got, ok, want)
}

func profile(name string) attribute.KeyValue { return attribute.String("profile", name) }

func TestReloadMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	doc := "profiles:\n  app:\n    addr: %s\n    client_name: %s\n"
	e := newEnv(t, fmt.Sprintf(doc, srv.Addr(), "v1"))
	ok, present := e.value(t, "redisfactory.reload.last_successful")
	require.True(t, present)
	assert.Equal(t, 1.0, ok, "the configuration the service started with counts as a successful load")
	start, _ := e.value(t, "redisfactory.reload.last_success_time")
	assert.InDelta(t, float64(time.Now().Unix()), start, 60)

	r := e.f.Apply(context.Background(), load(t, fmt.Sprintf(doc, srv.Addr(), "v2")))
	require.NoError(t, r.Err)
	e.eventually(t, 1, "redisfactory.reloads", attribute.String("result", "applied"))

	_, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte("profiles:\n  app:\n    timeouts: {socket: 5}\n"))}})
	require.Error(t, err)
	e.f.Reject(err)
	e.eventually(t, 1, "redisfactory.reloads", attribute.String("result", "rejected"))
	e.eventually(t, 0, "redisfactory.reload.last_successful")
	last, _ := e.value(t, "redisfactory.reload.last_time")
	lastOK, _ := e.value(t, "redisfactory.reload.last_success_time")
	assert.GreaterOrEqual(t, last, lastOK, "the rejected reload came after the last applied one")

	require.NoError(t, e.f.Apply(context.Background(), load(t, fmt.Sprintf(doc, srv.Addr(), "v3"))).Err)
	e.eventually(t, 2, "redisfactory.reloads", attribute.String("result", "applied"))
	e.eventually(t, 1, "redisfactory.reload.last_successful")
	got, _ := e.value(t, "redisfactory.reloads", attribute.String("result", "rejected"))
	assert.Equal(t, 1.0, got)
}

func TestRetryMetrics(t *testing.T) {
	port := redistest.FreePort(t) // nothing listens there
	e := newEnv(t, fmt.Sprintf("profiles:\n  down:\n    addr: 127.0.0.1:%d\n    timeouts: {connect: 200ms}\n    retry:\n      retries: 2\n      backoff: {strategy: none}\n", port))
	c, err := e.f.Client("down")
	require.NoError(t, err)
	require.Error(t, c.Get(context.Background(), "k").Err())
	e.eventually(t, 2, "redisfactory.retries.attempted", profile("down"), attribute.String("class", "connection"))
	e.eventually(t, 1, "redisfactory.retries.exhausted", profile("down"), attribute.String("class", "connection"))
}

func TestPoolHealthAndCacheMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := newEnv(t, fmt.Sprintf("profiles:\n  app:\n    addr: %[1]s\n    health_check_interval: 1ms\n  cached:\n    addr: %[1]s\n    cache: {enabled: true, max_entries: 100}\n", srv.Addr()))
	ctx := context.Background()
	app, err := e.f.Client("app")
	require.NoError(t, err)
	require.NoError(t, app.Set(ctx, "k", "v", 0).Err())
	// A connection idle for longer than health_check_interval is checked
	// before its next command.
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, app.Get(ctx, "k").Err())
	checks, _ := e.value(t, "redisfactory.health.checks", profile("app"))
	assert.GreaterOrEqual(t, checks, 1.0)
	failures, present := e.value(t, "redisfactory.health.check_failures", profile("app"))
	assert.True(t, present)
	assert.Equal(t, 0.0, failures)
	hits, _ := e.value(t, "redisfactory.pool.hits", profile("app"))
	assert.GreaterOrEqual(t, hits, 1.0, "the second command reused the pooled connection")
	conns, _ := e.value(t, "redisfactory.pool.connections", profile("app"))
	assert.GreaterOrEqual(t, conns, 1.0)
	idle, _ := e.value(t, "redisfactory.pool.idle_connections", profile("app"))
	assert.GreaterOrEqual(t, idle, 1.0)
	_, present = e.value(t, "redisfactory.cache.hits", profile("app"))
	assert.False(t, present, "a profile without a cache has no cache metrics")

	cached, err := e.f.Client("cached")
	require.NoError(t, err)
	// The first reads may pass through while the invalidation connection
	// comes up; once it is, a read is stored and the next ones hit.
	gets := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		require.Equal(t, "v", cached.Get(ctx, "k").Val())
		gets++
		if hits, _ := e.value(t, "redisfactory.cache.hits", profile("cached")); hits >= 2 {
			break
		}
		require.True(t, time.Now().Before(deadline), "no cache hit after %d reads", gets)
	}
	hits, _ = e.value(t, "redisfactory.cache.hits", profile("cached"))
	misses, _ := e.value(t, "redisfactory.cache.misses", profile("cached"))
	assert.GreaterOrEqual(t, misses, 1.0)
	assert.Equal(t, float64(gets), hits+misses, "every cacheable read is a hit or a miss")
	e.eventually(t, 1, "redisfactory.cache.entries", profile("cached"))
	size, _ := e.value(t, "redisfactory.cache.size", profile("cached"))
	assert.Greater(t, size, 0.0)
	// Another client's write invalidates the entry.
	require.NoError(t, app.Set(ctx, "k", "w", 0).Err())
	e.eventually(t, 1, "redisfactory.cache.invalidations", profile("cached"))
	e.eventually(t, 0, "redisfactory.cache.entries", profile("cached"))
}

// Handoff events come from go-redis's handoff worker (tested against the
// maintenance proxy in package factory); here they are published directly
// to check what each one counts.
func TestHandoffMetrics(t *testing.T) {
	e := newEnv(t, "profiles:\n  app:\n    addr: 127.0.0.1:1\n")
	bus := e.rt.Events()
	bus.Publish(runtime.Event{Kind: runtime.HandoffStarted, Profile: "app"})
	bus.Publish(runtime.Event{Kind: runtime.HandoffStarted, Profile: "app"})
	bus.Publish(runtime.Event{Kind: runtime.HandoffCompleted, Profile: "app", Attrs: []slog.Attr{slog.Duration("took", 12*time.Millisecond)}})
	bus.Publish(runtime.Event{Kind: runtime.HandoffFailed, Profile: "app", Err: errors.New("dial: refused")})
	e.eventually(t, 2, "redisfactory.handoffs.started", profile("app"))
	e.eventually(t, 1, "redisfactory.handoffs.completed", profile("app"))
	e.eventually(t, 1, "redisfactory.handoffs.failed", profile("app"))
	e.eventually(t, 1, "redisfactory.handoff.duration", profile("app")) // one observation
}

func TestNewNeedsARuntime(t *testing.T) {
	_, err := metrics.New(nil, metrics.Options{})
	assert.Error(t, err)
}

// A profile with pipeline.auto (standalone: the factory's own engine)
// exposes its engine's sockets, batches and commands once a concurrent
// workload has gone through its handle; a profile without it exposes none
// of them.
func TestPipelineMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := newEnv(t, fmt.Sprintf("profiles:\n  auto:\n    addr: %[1]s\n    pipeline: {auto: true}\n  app:\n    addr: %[1]s\n", srv.Addr()))
	ctx := context.Background()
	for _, name := range []string{"auto", "app"} {
		c, err := e.f.Client(name)
		require.NoError(t, err)
		const callers, rounds = 32, 25
		errs := make(chan error, callers)
		for i := range callers {
			go func() {
				key := fmt.Sprintf("k%d", i)
				for range rounds {
					if err := c.Set(ctx, key, "v", 0).Err(); err != nil {
						errs <- err
						return
					}
					if err := c.Get(ctx, key).Err(); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range callers {
			require.NoError(t, <-errs, name)
		}
		if name != "auto" {
			continue
		}
		sockets, ok := e.value(t, "redisfactory.pipeline.sockets", profile("auto"))
		require.True(t, ok, "the pipeline.auto profile exposes its sockets")
		assert.Equal(t, 1.0, sockets, "one socket by default (pipeline.concurrent_batches: 1)")
		writes, ok := e.value(t, "redisfactory.pipeline.writes", profile("auto"))
		require.True(t, ok)
		commands, ok := e.value(t, "redisfactory.pipeline.commands", profile("auto"))
		require.True(t, ok)
		assert.Positive(t, writes)
		assert.GreaterOrEqual(t, commands, writes, "a batch holds at least one command")
		assert.GreaterOrEqual(t, commands, float64(callers*rounds*2), "every SET and GET of the workload went through the engine")
		t.Logf("pipeline: %v commands in %v writes, mean batch %.1f", commands, writes, commands/writes)
	}
	for _, n := range []string{"redisfactory.pipeline.sockets", "redisfactory.pipeline.writes", "redisfactory.pipeline.commands"} {
		_, ok := e.value(t, n, profile("app"))
		assert.False(t, ok, "a profile without pipeline.auto has no %s", n)
	}
}
