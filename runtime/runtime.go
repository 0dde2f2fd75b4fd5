package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a [Runtime]. The zero value is ready to use.
type Options struct {
	// Logger receives the runtime's logs, including every published event
	// at its [Kind.Level] (see [Bus.Publish]): failures — rejected and
	// failed reloads, failed handoffs and health checks, exhausted and
	// throttled retries — at Warn, everything else at Debug. If nil, logs
	// go to [slog.Default], looked up at each line, so a later
	// [slog.SetDefault] is followed: with the standard library's default
	// handler, failures reach stderr and the Debug lines are dropped.
	Logger *slog.Logger
	// DiscardLogs turns the runtime's logs off, whatever Logger says.
	// Events are still published, counted and delivered to subscribers.
	DiscardLogs bool
	// Clock is the source of time for the runtime and everything built on
	// it. If nil, [RealClock] is used; tests pass a [ManualClock].
	Clock Clock
	// EventBuffer is the number of events buffered per subscriber before
	// further events are dropped for it. If zero or negative,
	// [DefaultEventBuffer] is used.
	EventBuffer int
}

// Runtime is the shared runtime that redisfactory clients are built from:
// logger, clock, event bus, background scheduler and ordered shutdown.
// Several factories may share one Runtime.
//
// A Runtime is safe for concurrent use. Create one with [New] and release it
// with [Runtime.Close].
type Runtime struct {
	logger *slog.Logger
	clock  Clock
	bus    *Bus
	ctx    context.Context
	cancel context.CancelFunc

	jobs       tracker // Every
	goroutines tracker // Go

	closed atomic.Bool

	mu        sync.Mutex
	closing   bool
	closers   []*closer
	closeDone chan struct{}
	closeErr  error // set before closeDone is closed
}

type closer struct {
	name string
	fn   func(ctx context.Context) error
}

// New returns a Runtime configured by opts.
func New(opts Options) *Runtime {
	logger := opts.Logger
	switch {
	case opts.DiscardLogs:
		logger = slog.New(slog.DiscardHandler)
	case logger == nil:
		logger = slog.New(defaultHandler{})
	}
	clock := opts.Clock
	if clock == nil {
		clock = RealClock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Runtime{
		logger:    logger,
		clock:     clock,
		bus:       newBus(clock, logger, opts.EventBuffer),
		ctx:       ctx,
		cancel:    cancel,
		closeDone: make(chan struct{}),
	}
}

// Logger returns the runtime's logger. It is never nil.
func (r *Runtime) Logger() *slog.Logger { return r.logger }

// Clock returns the runtime's clock. It is never nil.
func (r *Runtime) Clock() Clock { return r.clock }

// Events returns the runtime's event bus.
func (r *Runtime) Events() *Bus { return r.bus }

// Context returns a context that is cancelled when [Runtime.Close] is
// called. Long-lived work belonging to the runtime should derive from it.
func (r *Runtime) Context() context.Context { return r.ctx }

// Closed reports whether [Runtime.Close] has been called.
func (r *Runtime) Closed() bool { return r.closed.Load() }

// Go runs fn in a new goroutine tracked by the runtime. fn is passed the
// runtime's context, which is cancelled when the runtime is closed, and
// should return promptly after that; [Runtime.Close] waits for it, and names
// it in its error if it does not return in time.
//
// After Close has been called, Go does nothing.
func (r *Runtime) Go(name string, fn func(ctx context.Context)) {
	_, finish, ok := r.goroutines.start(name)
	if !ok {
		return
	}
	go func() {
		defer finish()
		fn(r.ctx)
	}()
}

// Every runs fn every interval, as measured by the runtime's clock, until
// the returned stop function is called or the runtime is closed. The first
// run happens one interval after the call. Runs never overlap: ticks that
// fall due while fn is still running are dropped, except for one that starts
// the next run as soon as fn returns.
//
// fn is passed a context that is cancelled when stop is called or the
// runtime is closed. stop is idempotent; it waits for a run in progress to
// return, so it must not be called from fn. [Runtime.Close] stops every job
// and waits for it, naming it in its error if it does not return in time.
//
// After Close has been called, Every does nothing and returns a stop
// function that does nothing. Every panics if interval <= 0.
func (r *Runtime) Every(name string, interval time.Duration, fn func(ctx context.Context)) (stop func()) {
	if interval <= 0 {
		panic("runtime: non-positive interval for Every")
	}
	tk, finish, ok := r.jobs.start(name)
	if !ok {
		return func() {}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	ticker := r.clock.NewTicker(interval)
	go func() {
		defer finish()
		defer cancel()
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C():
				if ctx.Err() != nil {
					return
				}
				fn(ctx)
			}
		}
	}()
	return func() {
		cancel()
		<-tk.done
	}
}

// OnClose registers fn to be called by [Runtime.Close], under name. Closers
// run one after the other in reverse registration order, so something
// registered later (and possibly depending on what was registered before)
// is closed first. Each is passed the context given to Close and should
// give up when it is done. Closers must not call Close.
//
// The returned unregister function removes fn if it has not run yet; it is
// idempotent. After Close has been called, OnClose does nothing and returns
// an unregister function that does nothing.
func (r *Runtime) OnClose(name string, fn func(ctx context.Context) error) (unregister func()) {
	c := &closer{name: name, fn: fn}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return func() {}
	}
	r.closers = append(r.closers, c)
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		for i, x := range r.closers {
			if x == c {
				r.closers = append(r.closers[:i:i], r.closers[i+1:]...)
				return
			}
		}
	}
}

// Close shuts the runtime down, in this order:
//
//  1. it cancels the runtime's context ([Runtime.Context]);
//  2. it stops every [Runtime.Every] job and waits for runs in progress;
//  3. it runs the closers registered with [Runtime.OnClose], one at a time,
//     in reverse registration order, each given ctx;
//  4. it waits for the goroutines started with [Runtime.Go];
//  5. it closes the event bus: subscription channels are closed and
//     [Bus.SubscribeFunc] callbacks are waited for once they have handled
//     the events still buffered.
//
// If ctx ends before all of that has finished, Close stops waiting, does not
// start the closers whose turn has not come (to preserve the shutdown order),
// and returns a [*NotStoppedError] naming everything that did not stop in
// time; it wraps ctx.Err(), so errors.Is(err, context.DeadlineExceeded)
// reports whether the deadline was the cause. Errors returned by closers are
// joined to it with [errors.Join], each prefixed with the closer's name.
//
// Close is idempotent: later calls wait for the first one to finish (or for
// their own ctx to end) and return its result. After Close, [Bus.Publish]
// still works (events are counted and logged), and Go, Every and OnClose do
// nothing.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		select {
		case <-r.closeDone:
			return r.closeErr
		case <-ctx.Done():
			return fmt.Errorf("runtime: close: waiting for concurrent close: %w", ctx.Err())
		}
	}
	r.closing = true
	r.closed.Store(true)
	closers := r.closers
	r.closers = nil
	r.mu.Unlock()

	r.cancel()
	jobs := r.jobs.close()
	goroutines := r.goroutines.close()

	var errs []error
	pending := wait(ctx, jobs)
	for i := len(closers) - 1; i >= 0; i-- {
		c := closers[i]
		if len(pending) > 0 || ctx.Err() != nil {
			pending = append(pending, c.name)
			continue
		}
		if done, err := runCloser(ctx, c); !done {
			pending = append(pending, c.name)
		} else if err != nil {
			errs = append(errs, fmt.Errorf("runtime: close %s: %w", c.name, err))
		}
	}
	pending = append(pending, wait(ctx, goroutines)...)
	r.bus.close()
	pending = append(pending, wait(ctx, r.bus.deliveries.close())...)

	if len(pending) > 0 {
		errs = append([]error{&NotStoppedError{Names: pending, Err: ctx.Err()}}, errs...)
	}
	r.closeErr = errors.Join(errs...)
	close(r.closeDone)
	return r.closeErr
}

// runCloser runs c and waits for it or for ctx to end; done is false if c
// did not return in time.
func runCloser(ctx context.Context, c *closer) (done bool, err error) {
	result := make(chan error, 1)
	go func() { result <- c.fn(ctx) }()
	select {
	case err = <-result:
		return true, err
	case <-ctx.Done():
		select {
		case err = <-result:
			return true, err
		default:
			return false, nil
		}
	}
}

// NotStoppedError is returned by [Runtime.Close] when its context ended
// before everything had stopped.
type NotStoppedError struct {
	// Names lists, in shutdown order, the jobs, closers and goroutines that
	// had not stopped (or, for closers, not started) when the context ended.
	Names []string
	// Err is the context's error, typically [context.DeadlineExceeded].
	Err error
}

// Error returns a message naming what did not stop, for example
// "runtime: close: not stopped in time: health-probe(sessions), factory:
// context deadline exceeded".
func (e *NotStoppedError) Error() string {
	msg := "runtime: close: not stopped in time: " + strings.Join(e.Names, ", ")
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the context's error.
func (e *NotStoppedError) Unwrap() error { return e.Err }
