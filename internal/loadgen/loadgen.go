// Package loadgen drives a workload of Redis commands through a client with
// a number of concurrent workers and reports what happened: operations,
// failures by error class, the retries the client's policy made (counted
// from the runtime's events) and latency quantiles from a fixed-size
// histogram.
//
// The runner (Run) knows nothing about which commands are sent: a Workload
// hands each worker a function that performs one operation and says what it
// was. Mix, the default workload, GETs and SETs random keys of a key space.
// Other workloads (per-worker keys that detect stale reads, say) plug in
// without touching the runner, and report their own failures with a class of
// their own through ClassError.
package loadgen

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/runtime"
)

// OpKind says what an operation was.
type OpKind uint8

// The operation kinds.
const (
	Read  OpKind = iota + 1 // a read (GET)
	Write                   // a write (SET)
)

// Outcome is what one operation did.
type Outcome struct {
	Kind OpKind
	// Hit is true for a read that found its key.
	Hit bool
	// Err is the error the operation failed with; nil on success. A
	// missing key (redis.Nil) is not a failure: report it as a read
	// without Hit.
	Err error
}

// OpFunc performs one operation with c. ctx is cancelled when the run is
// interrupted.
type OpFunc func(ctx context.Context, c redis.UniversalClient) Outcome

// Workload makes the operations of a run.
type Workload interface {
	// Worker returns the function worker i (0-based) calls for each of its
	// operations. Run calls it once per worker, from one goroutine, before
	// any operation runs; the function returned is only ever called by
	// that worker's goroutine.
	Worker(i int) OpFunc
}

// ClassError gives an error the class it is reported under, for failures
// that are not Redis errors (a stale read, say).
type ClassError struct {
	Class string
	Err   error
}

func (e *ClassError) Error() string { return e.Err.Error() }
func (e *ClassError) Unwrap() error { return e.Err }

// Progress is a snapshot of a run in progress.
type Progress struct {
	Elapsed  time.Duration
	Ops      uint64  // operations completed so far, failed ones included
	Failures uint64  // failed operations so far
	Rate     float64 // operations per second since the previous snapshot
	Retries  uint64  // retries attempted so far
}

// Options configure Run. The zero value runs Mix's defaults with 8 workers
// until ctx is done.
type Options struct {
	// Duration ends the run: no operation starts after it, and those in
	// flight finish. Zero: run until ctx is done.
	Duration time.Duration
	// Concurrency is the number of workers; default 8.
	Concurrency int
	// Workload makes the operations; nil means Mix{} (its defaults).
	Workload Workload
	// Events is the event bus of the runtime the client was built from;
	// the retry events published on it during the run are counted in the
	// report (every client of that runtime counts). Nil: not counted.
	Events *runtime.Bus
	// Progress, if set, is called every ProgressInterval (default 1s)
	// while the run lasts, from a goroutine of its own.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Classify names the class of a failed operation's error; nil means
	// errclass.Of (a ClassError's class always wins).
	Classify func(error) string
}

// Retries counts the retry events published during a run.
type Retries struct {
	Attempted uint64 `json:"attempted"`
	Exhausted uint64 `json:"exhausted"`
	Throttled uint64 `json:"throttled"`
}

// Latency summarizes the latencies of the completed operations (failed
// ones included, retries and backoff included). Quantiles are accurate to
// about 3%; Max and Mean are exact.
type Latency struct {
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	Max  time.Duration `json:"max_ns"`
	Mean time.Duration `json:"mean_ns"`
}

// Report is the outcome of a run.
type Report struct {
	// Elapsed is the wall time from the start of the run to the end of
	// the last operation.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Interrupted is true when ctx ended the run (rather than Duration).
	Interrupted bool `json:"interrupted"`
	// Ops counts the completed operations, failed ones included.
	Ops    uint64 `json:"ops"`
	Reads  uint64 `json:"reads"`
	Writes uint64 `json:"writes"`
	// Hits and Misses split the successful reads.
	Hits   uint64 `json:"hits"`
	Misses uint64 `json:"misses"`
	// Failures counts the operations that failed, and FailuresByClass
	// by error class; Errors holds the first error seen of each class.
	Failures        uint64            `json:"failures"`
	FailuresByClass map[string]uint64 `json:"failures_by_class"`
	Errors          map[string]string `json:"errors,omitempty"`
	// Cut counts operations that were in flight when ctx ended the run;
	// they are not in Ops.
	Cut     uint64  `json:"cut_short"`
	Retries Retries `json:"retries"`
	Latency Latency `json:"latency"`
	// Histogram holds every latency recorded.
	Histogram *Histogram `json:"-"`
}

// Rate returns the operations per second.
func (r Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// Classes returns the failure classes, most frequent first.
func (r Report) Classes() []string {
	out := make([]string, 0, len(r.FailuresByClass))
	for c := range r.FailuresByClass {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := r.FailuresByClass[out[i]], r.FailuresByClass[out[j]]
		if a != b {
			return a > b
		}
		return out[i] < out[j]
	})
	return out
}

// worker holds one worker's tallies. ops and failures are read by the
// progress reporter while the run lasts; the rest only after it.
type worker struct {
	op       OpFunc
	ops      atomic.Uint64
	failures atomic.Uint64

	reads, writes, hits, misses, cut uint64
	byClass                          map[string]uint64
	errors                           map[string]string
	hist                             Histogram
	_                                [64]byte // keep the next worker's counters off this cache line
}

// Run drives o's workload through c until o.Duration has passed or ctx is
// done, whichever comes first, and reports what was done. It returns once
// every worker has stopped.
func Run(ctx context.Context, c redis.UniversalClient, o Options) Report {
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Workload == nil {
		o.Workload = Mix{}
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = time.Second
	}
	classify := o.Classify
	if classify == nil {
		classify = func(err error) string { return string(errclass.Of(err)) }
	}
	workers := make([]*worker, o.Concurrency)
	for i := range workers {
		workers[i] = &worker{op: o.Workload.Worker(i), byClass: map[string]uint64{}, errors: map[string]string{}}
	}
	before := retryCounts(o.Events)

	// stop closes when the duration is over: workers start no new
	// operation but finish the one in flight. ctx ending cancels those.
	stop := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx, c, stop, classify)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var bg sync.WaitGroup
	if o.Duration > 0 {
		bg.Add(1)
		go func() {
			defer bg.Done()
			t := time.NewTimer(o.Duration)
			defer t.Stop()
			select {
			case <-t.C:
				close(stop)
			case <-done:
			}
		}()
	}
	if o.Progress != nil {
		bg.Add(1)
		go func() {
			defer bg.Done()
			t := time.NewTicker(o.ProgressInterval)
			defer t.Stop()
			var lastOps uint64
			last := start
			for {
				select {
				case <-done:
					return
				case now := <-t.C:
					p := Progress{Elapsed: now.Sub(start)}
					for _, w := range workers {
						p.Ops += w.ops.Load()
						p.Failures += w.failures.Load()
					}
					if dt := now.Sub(last).Seconds(); dt > 0 {
						p.Rate = float64(p.Ops-lastOps) / dt
					}
					if o.Events != nil {
						p.Retries = o.Events.Count(runtime.RetryAttempted) - before.Attempted
					}
					lastOps, last = p.Ops, now
					o.Progress(p)
				}
			}
		}()
	}
	<-done
	elapsed := time.Since(start)
	bg.Wait()

	after := retryCounts(o.Events)
	r := Report{
		Elapsed:         elapsed,
		Interrupted:     ctx.Err() != nil,
		FailuresByClass: map[string]uint64{},
		Errors:          map[string]string{},
		Retries: Retries{
			Attempted: after.Attempted - before.Attempted,
			Exhausted: after.Exhausted - before.Exhausted,
			Throttled: after.Throttled - before.Throttled,
		},
		Histogram: &Histogram{},
	}
	for _, w := range workers {
		r.Ops += w.ops.Load()
		r.Failures += w.failures.Load()
		r.Reads += w.reads
		r.Writes += w.writes
		r.Hits += w.hits
		r.Misses += w.misses
		r.Cut += w.cut
		for c, n := range w.byClass {
			r.FailuresByClass[c] += n
		}
		for c, e := range w.errors {
			if _, ok := r.Errors[c]; !ok {
				r.Errors[c] = e
			}
		}
		r.Histogram.Merge(&w.hist)
	}
	h := r.Histogram
	r.Latency = Latency{P50: h.Quantile(0.50), P90: h.Quantile(0.90), P99: h.Quantile(0.99), Max: h.Max(), Mean: h.Mean()}
	return r
}

func (w *worker) loop(ctx context.Context, c redis.UniversalClient, stop <-chan struct{}, classify func(error) string) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		t0 := time.Now()
		out := w.op(ctx, c)
		lat := time.Since(t0)
		if out.Err != nil && ctx.Err() != nil {
			// Cut short by the interruption: neither a success nor a
			// failure of the client.
			w.cut++
			return
		}
		w.hist.Record(lat)
		switch out.Kind {
		case Read:
			w.reads++
			if out.Err == nil {
				if out.Hit {
					w.hits++
				} else {
					w.misses++
				}
			}
		case Write:
			w.writes++
		}
		if out.Err != nil {
			class := classify(out.Err)
			var ce *ClassError
			if errors.As(out.Err, &ce) {
				class = ce.Class
			}
			if class == "" {
				class = string(errclass.Unknown)
			}
			w.byClass[class]++
			if _, ok := w.errors[class]; !ok {
				w.errors[class] = out.Err.Error()
			}
			w.failures.Add(1)
		}
		w.ops.Add(1)
	}
}

func retryCounts(b *runtime.Bus) Retries {
	if b == nil {
		return Retries{}
	}
	return Retries{
		Attempted: b.Count(runtime.RetryAttempted),
		Exhausted: b.Count(runtime.RetryExhausted),
		Throttled: b.Count(runtime.RetryThrottled),
	}
}
