// Package metrics exports redisfactory's operational signals as
// OpenTelemetry instruments, through the go.opentelemetry.io/otel/metric
// API only: the application chooses the SDK and the exporter (Prometheus,
// OTLP, …) and passes its MeterProvider; without one, the global provider
// is used, which records nothing until the application installs an SDK.
//
// Two sources feed the instruments:
//
//   - the runtime's event bus ([New] subscribes to it): reloads, retries
//     and handoffs, counted as they happen;
//   - the clients of the factories given to [Metrics.Observe], read when
//     the SDK collects: go-redis's pool statistics, the client-side cache's
//     statistics, the factory's pipelining engine's statistics
//     (pipeline.auto) and the factory's health checks.
//
// Instrument names start with "redisfactory."; a Prometheus exporter turns
// them into redisfactory_… metrics (dots become underscores, counters get
// _total and units a suffix), for example redisfactory_reloads_total
// {result="rejected"}, redisfactory_reload_last_successful and
// redisfactory_cache_hits_total{profile="cache"}. The table of every
// instrument is in the README ("Metrics").
//
// The statistics read from clients belong to the profile's current client:
// a reload that rebuilds a profile's client starts them from zero again,
// which Prometheus's rate() and increase() treat as a counter reset.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/runtime"
)

// ScopeName is the instrumentation scope of every instrument.
const ScopeName = "github.com/redisfactory/redisfactory/metrics"

// DefaultEventBuffer is the number of events buffered for the metrics
// subscriber when Options.EventBuffer is zero: enough for a burst of
// retries while the collector is busy. Events that do not fit are dropped
// from the counts and counted in redisfactory.metrics.events_dropped.
const DefaultEventBuffer = 16384

// Options configure [New]. The zero value is ready to use.
type Options struct {
	// MeterProvider creates the meter. Nil: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// EventBuffer is the subscriber's buffer; zero or less:
	// DefaultEventBuffer.
	EventBuffer int
}

// Metrics holds the instruments of one runtime. Create it with [New] and
// stop it with [Metrics.Close].
type Metrics struct {
	rt  *runtime.Runtime
	sub *runtime.Subscription
	reg metric.Registration
	wg  sync.WaitGroup

	reloads                         metric.Int64Counter
	retryAttempted, retryExhausted  metric.Int64Counter
	retryThrottled                  metric.Int64Counter
	handoffStarted, handoffComplete metric.Int64Counter
	handoffFailed                   metric.Int64Counter
	handoffDuration                 metric.Float64Histogram

	// The last reload's outcome, as Prometheus and Caddy expose theirs.
	lastOK          atomic.Bool
	lastTime        atomic.Int64 // unix nanoseconds; 0: no reload yet
	lastSuccessTime atomic.Int64 // unix nanoseconds

	mu        sync.Mutex
	factories []Source
	closed    bool
}

// New creates the instruments on opts.MeterProvider's meter and subscribes
// to rt's event bus. Call Close to stop; closing the runtime stops the
// subscription too.
func New(rt *runtime.Runtime, opts Options) (*Metrics, error) {
	if rt == nil {
		return nil, errors.New("metrics: New needs a runtime")
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{rt: rt}
	m.lastOK.Store(true) // the configuration the service started with loaded
	m.lastSuccessTime.Store(rt.Clock().Now().UnixNano())

	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := meter.Int64Counter(name, metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	m.reloads = counter("redisfactory.reloads", "Configuration reloads, by result: applied, rejected (invalid configuration) or failed (a client could not be built or verified).")
	m.retryAttempted = counter("redisfactory.retries.attempted", "Commands retried by the profile's retry policy, by profile and error class.")
	m.retryExhausted = counter("redisfactory.retries.exhausted", "Commands that failed after the retry policy gave up, by profile and error class.")
	m.retryThrottled = counter("redisfactory.retries.throttled", "Retries refused by the profile's retry budget, by profile and error class.")
	m.handoffStarted = counter("redisfactory.handoffs.started", "Connection handoffs started after a MOVING notification, by profile.")
	m.handoffComplete = counter("redisfactory.handoffs.completed", "Connection handoffs completed, by profile.")
	m.handoffFailed = counter("redisfactory.handoffs.failed", "Connection handoffs failed, by profile.")
	var err error
	m.handoffDuration, err = meter.Float64Histogram("redisfactory.handoff.duration", metric.WithUnit("s"),
		metric.WithDescription("Time a connection handoff took to dial the new endpoint and complete the handshake, by profile."),
		metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	errs = append(errs, err)

	obs := &observables{}
	errs = append(errs, obs.create(meter))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("metrics: creating instruments: %w", err)
	}
	m.reg, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		m.observe(o, obs)
		return nil
	}, obs.all()...)
	if err != nil {
		return nil, fmt.Errorf("metrics: registering the callback: %w", err)
	}

	buf := opts.EventBuffer
	if buf <= 0 {
		buf = DefaultEventBuffer
	}
	m.sub = rt.Events().Subscribe(runtime.WithBuffer(buf), runtime.WithKinds(
		runtime.ReloadApplied, runtime.ReloadRejected, runtime.ReloadFailed,
		runtime.RetryAttempted, runtime.RetryExhausted, runtime.RetryThrottled,
		runtime.HandoffStarted, runtime.HandoffCompleted, runtime.HandoffFailed))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for e := range m.sub.C() {
			m.record(&e)
		}
	}()
	return m, nil
}

// Source is where observable statistics come from: the current client of
// each profile. A *factory.Factory is one.
type Source interface {
	// Profiles returns the names of the current profiles.
	Profiles() []string
	// Lookup returns the current client of a profile.
	Lookup(profile string) (*factory.Client, error)
}

var _ Source = (*factory.Factory)(nil)

// Observe makes the statistics of src's clients observable (pool, cache,
// pipelining engine, health checks), per profile, until the returned function is called (it
// is idempotent) or the Metrics is closed.
func (m *Metrics) Observe(f Source) (remove func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.factories = append(m.factories, f)
	var once sync.Once
	return func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			for i, x := range m.factories {
				if x == f {
					m.factories = append(m.factories[:i:i], m.factories[i+1:]...)
					return
				}
			}
		})
	}
}

// Close unsubscribes from the event bus, waits for the events already
// received to be counted and unregisters the observable instruments'
// callback. It is idempotent.
func (m *Metrics) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.factories = nil
	m.mu.Unlock()
	m.sub.Close()
	m.wg.Wait()
	return m.reg.Unregister()
}

func profileClass(e *runtime.Event) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("profile", e.Profile), attribute.String("class", e.Class))
}

// record counts one event.
func (m *Metrics) record(e *runtime.Event) {
	ctx := context.Background()
	switch e.Kind {
	case runtime.ReloadApplied:
		m.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("result", "applied")))
		m.lastOK.Store(true)
		m.lastTime.Store(e.Time.UnixNano())
		m.lastSuccessTime.Store(e.Time.UnixNano())
	case runtime.ReloadRejected, runtime.ReloadFailed:
		result := "rejected"
		if e.Kind == runtime.ReloadFailed {
			result = "failed"
		}
		m.reloads.Add(ctx, 1, metric.WithAttributes(attribute.String("result", result)))
		m.lastOK.Store(false)
		m.lastTime.Store(e.Time.UnixNano())
	case runtime.RetryAttempted:
		m.retryAttempted.Add(ctx, 1, profileClass(e))
	case runtime.RetryExhausted:
		m.retryExhausted.Add(ctx, 1, profileClass(e))
	case runtime.RetryThrottled:
		m.retryThrottled.Add(ctx, 1, profileClass(e))
	case runtime.HandoffStarted:
		m.handoffStarted.Add(ctx, 1, metric.WithAttributes(attribute.String("profile", e.Profile)))
	case runtime.HandoffCompleted:
		attrs := metric.WithAttributes(attribute.String("profile", e.Profile))
		m.handoffComplete.Add(ctx, 1, attrs)
		if took, ok := durationAttr(e.Attrs, "took"); ok {
			m.handoffDuration.Record(ctx, took.Seconds(), attrs)
		}
	case runtime.HandoffFailed:
		m.handoffFailed.Add(ctx, 1, metric.WithAttributes(attribute.String("profile", e.Profile)))
	}
}

func durationAttr(attrs []slog.Attr, key string) (time.Duration, bool) {
	for _, a := range attrs {
		if a.Key == key && a.Value.Kind() == slog.KindDuration {
			return a.Value.Duration(), true
		}
	}
	return 0, false
}

// observables are the instruments read at collection time.
type observables struct {
	lastOK                      metric.Int64ObservableGauge
	lastTimeSec, lastSuccessSec metric.Float64ObservableGauge
	dropped                     metric.Int64ObservableCounter

	healthChecks, healthFailures metric.Int64ObservableCounter

	poolHits, poolMisses, poolTimeouts metric.Int64ObservableCounter
	poolTotal, poolIdle                metric.Int64ObservableGauge

	cacheHits, cacheMisses, cacheEvictions metric.Int64ObservableCounter
	cacheInvalidations, cacheFlushes       metric.Int64ObservableCounter
	cacheEntries, cacheBytes               metric.Int64ObservableGauge

	pipelineSockets                                  metric.Int64ObservableGauge
	pipelineWrites, pipelineCommands, pipelineDirect metric.Int64ObservableCounter
}

func (o *observables) create(meter metric.Meter) error {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		opts := []metric.Int64ObservableCounterOption{metric.WithDescription(desc)}
		if unit != "" {
			opts = append(opts, metric.WithUnit(unit))
		}
		c, err := meter.Int64ObservableCounter(name, opts...)
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		opts := []metric.Int64ObservableGaugeOption{metric.WithDescription(desc)}
		if unit != "" {
			opts = append(opts, metric.WithUnit(unit))
		}
		g, err := meter.Int64ObservableGauge(name, opts...)
		errs = append(errs, err)
		return g
	}
	fgauge := func(name, desc string) metric.Float64ObservableGauge {
		g, err := meter.Float64ObservableGauge(name, metric.WithUnit("s"), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	o.lastOK = gauge("redisfactory.reload.last_successful", "", "1 when the last configuration reload was applied (or none has been tried yet), 0 when it was rejected or failed.")
	o.lastTimeSec = fgauge("redisfactory.reload.last_time", "Unix time of the last configuration reload, whatever its result (0: none yet).")
	o.lastSuccessSec = fgauge("redisfactory.reload.last_success_time", "Unix time of the last successful configuration load (the start, or the last applied reload).")
	o.dropped = counter("redisfactory.metrics.events_dropped", "", "Events the metrics subscriber could not keep up with, missing from the event-fed counters.")
	o.healthChecks = counter("redisfactory.health.checks", "", "Health checks (PING) of idle pooled connections, by profile.")
	o.healthFailures = counter("redisfactory.health.check_failures", "", "Health checks that failed (the connection was replaced), by profile.")
	o.poolHits = counter("redisfactory.pool.hits", "", "Times a free connection was found in the pool, by profile (go-redis PoolStats.Hits).")
	o.poolMisses = counter("redisfactory.pool.misses", "", "Times no free connection was found in the pool, by profile (PoolStats.Misses).")
	o.poolTimeouts = counter("redisfactory.pool.timeouts", "", "Times a command gave up waiting for a pooled connection, by profile (PoolStats.Timeouts).")
	o.poolTotal = gauge("redisfactory.pool.connections", "", "Connections in the pool, by profile (PoolStats.TotalConns).")
	o.poolIdle = gauge("redisfactory.pool.idle_connections", "", "Idle connections in the pool, by profile (PoolStats.IdleConns).")
	o.cacheHits = counter("redisfactory.cache.hits", "", "Reads answered from the client-side cache, by profile.")
	o.cacheMisses = counter("redisfactory.cache.misses", "", "Cacheable reads that went to the server, by profile.")
	o.cacheEvictions = counter("redisfactory.cache.evictions", "", "Entries evicted to stay within max_entries / max_bytes, by profile.")
	o.cacheInvalidations = counter("redisfactory.cache.invalidations", "", "Invalidation messages applied, by profile.")
	o.cacheFlushes = counter("redisfactory.cache.flushes", "", "Whole-cache flushes (lost invalidation channel, FLUSHDB/FLUSHALL), by profile.")
	o.cacheEntries = gauge("redisfactory.cache.entries", "", "Entries in the client-side cache, by profile.")
	o.cacheBytes = gauge("redisfactory.cache.size", "By", "Memory held by the client-side cache, by profile.")
	o.pipelineSockets = gauge("redisfactory.pipeline.sockets", "", "Sockets open of the factory's pipelining engine (pipeline.auto), by profile.")
	o.pipelineWrites = counter("redisfactory.pipeline.writes", "", "Batches the factory's pipelining engine wrote, by profile.")
	o.pipelineCommands = counter("redisfactory.pipeline.commands", "", "Commands the factory's pipelining engine wrote, by profile; commands / writes is the mean batch size.")
	o.pipelineDirect = counter("redisfactory.pipeline.direct", "", "Of the commands the factory's pipelining engine wrote, those its direct path sent (no virtual connection), by profile.")
	return errors.Join(errs...)
}

func (o *observables) all() []metric.Observable {
	return []metric.Observable{
		o.lastOK, o.lastTimeSec, o.lastSuccessSec, o.dropped,
		o.healthChecks, o.healthFailures,
		o.poolHits, o.poolMisses, o.poolTimeouts, o.poolTotal, o.poolIdle,
		o.cacheHits, o.cacheMisses, o.cacheEvictions, o.cacheInvalidations, o.cacheFlushes, o.cacheEntries, o.cacheBytes,
		o.pipelineSockets, o.pipelineWrites, o.pipelineCommands, o.pipelineDirect,
	}
}

func toInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// observe reports the observable instruments.
func (m *Metrics) observe(o metric.Observer, obs *observables) {
	ok := int64(0)
	if m.lastOK.Load() {
		ok = 1
	}
	o.ObserveInt64(obs.lastOK, ok)
	o.ObserveFloat64(obs.lastTimeSec, float64(m.lastTime.Load())/1e9)
	o.ObserveFloat64(obs.lastSuccessSec, float64(m.lastSuccessTime.Load())/1e9)
	o.ObserveInt64(obs.dropped, toInt64(m.sub.Dropped()))

	m.mu.Lock()
	factories := append([]Source(nil), m.factories...)
	m.mu.Unlock()
	for _, f := range factories {
		for _, name := range f.Profiles() {
			c, err := f.Lookup(name)
			if err != nil {
				continue // removed or closed since Profiles
			}
			attrs := metric.WithAttributes(attribute.String("profile", name))
			checks, failed := c.HealthChecks()
			o.ObserveInt64(obs.healthChecks, toInt64(checks), attrs)
			o.ObserveInt64(obs.healthFailures, toInt64(failed), attrs)
			if ps := c.PoolStats(); ps != nil {
				o.ObserveInt64(obs.poolHits, int64(ps.Hits), attrs)
				o.ObserveInt64(obs.poolMisses, int64(ps.Misses), attrs)
				o.ObserveInt64(obs.poolTimeouts, int64(ps.Timeouts), attrs)
				o.ObserveInt64(obs.poolTotal, int64(ps.TotalConns), attrs)
				o.ObserveInt64(obs.poolIdle, int64(ps.IdleConns), attrs)
			}
			if cs, ok := c.CacheStats(); ok {
				o.ObserveInt64(obs.cacheHits, toInt64(cs.Hits), attrs)
				o.ObserveInt64(obs.cacheMisses, toInt64(cs.Misses), attrs)
				o.ObserveInt64(obs.cacheEvictions, toInt64(cs.Evictions), attrs)
				o.ObserveInt64(obs.cacheInvalidations, toInt64(cs.Invalidations), attrs)
				o.ObserveInt64(obs.cacheFlushes, toInt64(cs.Flushes), attrs)
				o.ObserveInt64(obs.cacheEntries, cs.Entries, attrs)
				o.ObserveInt64(obs.cacheBytes, cs.Bytes, attrs)
			}
			if ps, ok := c.PipelineStats(); ok {
				o.ObserveInt64(obs.pipelineSockets, int64(ps.Sockets), attrs)
				o.ObserveInt64(obs.pipelineWrites, toInt64(ps.Writes), attrs)
				o.ObserveInt64(obs.pipelineCommands, toInt64(ps.Commands), attrs)
				o.ObserveInt64(obs.pipelineDirect, toInt64(ps.Direct), attrs)
			}
		}
	}
}
