// Package factory builds go-redis v9 clients from validated profiles.
//
// A Factory turns each profile of a schema.Config into a
// redis.UniversalClient — *redis.Client for standalone, the Sentinel
// failover *redis.Client for sentinel, *redis.ClusterClient for cluster —
// so that users keep the whole go-redis API and its instrumentation. What
// go-redis does not do the way a profile says, the factory adds through
// go-redis's public extension points:
//
//   - the retry policy (package retry) runs in a hook, with go-redis's own
//     command and dial retries turned off, so a command is tried exactly
//     as the profile's retry block says;
//   - health checks run in the connection wrapper the dialer returns: a
//     pooled connection idle for longer than health_check_interval is
//     checked with PING when go-redis takes it out of the pool (its
//     pre-use check asks the wrapper for the socket), TLS connections
//     included; a failed check makes go-redis drop the connection and use
//     another, so the command neither fails nor spends a retry;
//   - events (client built and closed, retries, failed health checks) go to
//     the shared runtime's event bus.
//
// Users attach their own instrumentation (redisotel, redisprometheus, their
// own hooks) through Options.OnBuild, which is called for every client the
// factory builds.
package factory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/suggest"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// ErrUnknownProfile is wrapped by the error for a profile name the factory
// does not have.
var ErrUnknownProfile = errors.New("redisfactory: unknown profile")

// ErrClosed is returned by a Factory that has been closed (Client, Handle,
// Lookup, Apply). It wraps redis.ErrClosed, so its error class is closed
// (errclass.Closed) and errors.Is(err, redis.ErrClosed) holds.
var ErrClosed = fmt.Errorf("redisfactory: factory closed: %w", redis.ErrClosed)

// Options configure a Factory. The zero value is ready to use.
type Options struct {
	// Runtime is the shared runtime clients are built from. Nil: the
	// factory makes its own and closes it in Close.
	Runtime *runtime.Runtime
	// OnBuild is called for every client the factory builds, with the
	// profile's name, before the client is handed out. Attach
	// instrumentation here (redisotel.InstrumentTracing, AddHook, …). An
	// error fails the build.
	OnBuild func(profile string, client redis.UniversalClient) error
	// ProbeInterval turns on background health probes: every interval each
	// client is PINGed and its Health updated. Zero: no probes.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe. Zero: the profile's read timeout.
	ProbeTimeout time.Duration
}

// Factory builds and owns the clients of one configuration, and applies
// new configurations to them (Apply) without failing a command.
type Factory struct {
	rt         *runtime.Runtime
	ownRT      bool
	opts       Options
	unregister func()

	reloadMu sync.Mutex // one Apply at a time

	mu      sync.RWMutex
	entries map[string]*entry  // the current profiles
	handles map[string]*Handle // every handle given out, removed profiles included
	closed  bool
	// retiring counts the clients replaced or removed by a reload that are
	// still draining (retire); Close waits for them. Added to under mu
	// while !closed, so that Close, which sets closed under mu, sees all.
	retiring sync.WaitGroup
	// stop is closed when Close begins: draining retired clients are
	// closed at once.
	stop chan struct{}
	// cut is closed when Close's context ends before the retired clients
	// finished closing: they stop waiting for auto-pipelined replies.
	cut chan struct{}

	closeMu   sync.Mutex
	closeDone chan struct{} // closed when the first Close has finished
	closeErr  error

	stats reloadCounters
}

// entry is one current profile.
type entry struct {
	client *Client
	tls    [32]byte // digest of the TLS files, to see a rotated certificate
}

// New builds a client for every profile of cfg. Clients connect lazily: New
// fails only when a profile cannot be turned into a client (for example an
// unreadable TLS certificate), not when a server is down.
func New(cfg *schema.Config, opts Options) (*Factory, error) {
	f := &Factory{rt: opts.Runtime, opts: opts, entries: map[string]*entry{}, handles: map[string]*Handle{}, stop: make(chan struct{}), cut: make(chan struct{})}
	if f.rt == nil {
		f.rt = runtime.New(runtime.Options{})
		f.ownRT = true
	}
	for _, n := range sortedNames(cfg.Profiles) {
		e, err := f.build(n, cfg.Profiles[n])
		if err != nil {
			for _, e := range f.entries {
				_ = e.client.Close()
			}
			if f.ownRT {
				_ = f.rt.Close(context.Background())
			}
			return nil, err
		}
		f.entries[n] = e
		f.handles[n] = newHandle(n, e.client)
	}
	f.unregister = f.rt.OnClose("factory", f.closeOnce)
	return f, nil
}

// build builds one profile's client and starts its probe.
func (f *Factory) build(name string, p *schema.Profile) (*entry, error) {
	c, err := Build(name, p, f.rt, BuildOptions{OnBuild: f.opts.OnBuild})
	if err != nil {
		return nil, err
	}
	if f.opts.ProbeInterval > 0 {
		c.startProbe(f.opts.ProbeInterval, f.opts.ProbeTimeout)
	}
	return &entry{client: c, tls: tlsDigest(p)}, nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Runtime returns the runtime the factory builds clients from.
func (f *Factory) Runtime() *runtime.Runtime { return f.rt }

// Profiles returns the names of the current profiles, sorted.
func (f *Factory) Profiles() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return sortedNames(f.entries)
}

// Client returns the handle of a profile: a redis.UniversalClient that
// keeps working across reloads and always uses the profile's current
// settings (see Handle). The same profile always gets the same handle.
func (f *Factory) Client(profile string) (redis.UniversalClient, error) {
	h, err := f.Handle(profile)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// Handle returns the handle of a profile (the same value Client returns,
// with its concrete type).
func (f *Factory) Handle(profile string) (*Handle, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	if _, ok := f.entries[profile]; !ok {
		return nil, f.unknown(profile)
	}
	return f.handles[profile], nil
}

// Lookup returns the factory's current Client of a profile: the go-redis
// client with its profile, retry policy, health and checks. After a reload
// it may be closed; hold a Handle instead.
func (f *Factory) Lookup(profile string) (*Client, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	e, ok := f.entries[profile]
	if !ok {
		return nil, f.unknown(profile)
	}
	return e.client, nil
}

// Health returns the health of a profile's client as last seen by the
// background probe (Options.ProbeInterval) or by Check.
func (f *Factory) Health(profile string) (Health, error) {
	c, err := f.Lookup(profile)
	if err != nil {
		return Health{}, err
	}
	return c.Health(), nil
}

func (f *Factory) unknown(profile string) error {
	msg := fmt.Sprintf("%q", profile)
	if s := suggest.Closest(profile, sortedNames(f.entries)); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	return fmt.Errorf("%w %s", ErrUnknownProfile, msg)
}

// Close shuts the factory down and returns by the time ctx ends:
//
//  1. every handle stops taking new calls at once: commands, pipelines and
//     transactions started through a handle from now on fail with
//     redis.ErrClosed (error class closed), as they would on a closed
//     go-redis client, and Client, Handle, Lookup and Apply return ErrClosed;
//  2. calls already running get until ctx ends, and at most their
//     profile's drain_timeout, to finish (clients replaced by a reload and
//     still draining are closed at once);
//  3. every client is closed — go-redis's Close, which also ends the calls
//     still running — and, when the factory made its own runtime, so is the
//     runtime. With pipeline.auto, go-redis's auto-pipeliner waits in its
//     Close for the replies of the batches it sent; when ctx ends first,
//     its connections are closed under it, so those calls fail and Close
//     still returns by the deadline (plus a few milliseconds).
//
// Close is idempotent and safe to call concurrently: later calls wait for
// the first one (or for their own ctx) and return its result. The error
// says when calls were still running at the deadline (and wraps ctx.Err()
// when ctx was the cause).
func (f *Factory) Close(ctx context.Context) error {
	err := f.closeOnce(ctx)
	if f.ownRT {
		err = errors.Join(err, f.rt.Close(ctx))
	}
	return err
}

// closeOnce runs closeClients once; concurrent callers wait for it.
func (f *Factory) closeOnce(ctx context.Context) error {
	f.closeMu.Lock()
	if done := f.closeDone; done != nil {
		f.closeMu.Unlock()
		select {
		case <-done:
			return f.closeErr
		case <-ctx.Done():
			return fmt.Errorf("redisfactory: close: waiting for a concurrent Close: %w", ctx.Err())
		}
	}
	done := make(chan struct{})
	f.closeDone = done
	f.closeMu.Unlock()
	if f.unregister != nil {
		f.unregister()
	}
	f.closeErr = f.closeClients(ctx)
	close(done)
	return f.closeErr
}

func (f *Factory) closeClients(ctx context.Context) error {
	// No reloadMu: an Apply under way (it may be verifying a new client for
	// seconds) sees closed when it comes to swap, and gives up.
	f.mu.Lock()
	f.closed = true
	entries := f.entries
	f.entries = map[string]*entry{}
	handles := f.handles
	var gens []*generation
	for _, n := range sortedNames(handles) {
		if g := handles[n].swap(closedGeneration()); g.owner != nil {
			gens = append(gens, g)
		} else {
			g.client.Close() // a removed profile's placeholder
		}
	}
	f.mu.Unlock()
	close(f.stop)

	var errs []error
	if n := drainAll(ctx, gens); n > 0 {
		err := fmt.Errorf("redisfactory: close: %d calls still running were cut", n)
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		errs = append(errs, err)
	}
	for _, n := range sortedNames(entries) {
		// Bounded by ctx too: with pipeline.auto, go-redis's Close waits
		// for replies, and ctx's end cuts the connections it waits on.
		if err := entries[n].client.closeWithin(ctx.Done()); err != nil && !errors.Is(err, redis.ErrClosed) {
			if errors.Is(err, errCut) && ctx.Err() != nil {
				err = fmt.Errorf("%w: %w", err, ctx.Err())
			}
			errs = append(errs, fmt.Errorf("close %s: %w", n, err))
		}
	}
	// Retired clients are closing now that stop is closed.
	retired := make(chan struct{})
	go func() { f.retiring.Wait(); close(retired) }()
	select {
	case <-retired:
	case <-ctx.Done():
		// Those still closing wait for auto-pipelined replies: cut them.
		close(f.cut)
		select {
		case <-retired:
		case <-time.After(cutGrace):
			errs = append(errs, fmt.Errorf("redisfactory: close: waiting for clients replaced by a reload: %w", ctx.Err()))
		}
	}
	return errors.Join(errs...)
}

// drainAll waits until no call runs on gens, each for at most its
// profile's drain_timeout, or ctx ends; it returns the number of calls
// still running then.
func drainAll(ctx context.Context, gens []*generation) int64 {
	start := time.Now()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		var running int64
		waiting := false
		for _, g := range gens {
			if n := g.calls(); n > 0 {
				running += n
				if time.Since(start) < g.owner.profile.DrainTimeout {
					waiting = true
				}
			}
		}
		if !waiting {
			return running
		}
		select {
		case <-ctx.Done():
			var n int64
			for _, g := range gens {
				n += max(g.calls(), 0)
			}
			return n
		case <-t.C:
		}
	}
}

// retryEvent turns a retry policy event into a runtime event.
func retryEvent(profile string, e retry.Event) runtime.Event {
	ev := runtime.Event{
		Profile: profile,
		Attempt: e.Attempt,
		Delay:   e.Delay,
		Class:   string(e.Class),
		Command: e.Command,
		Err:     e.Err,
		Message: e.Reason,
	}
	switch e.Kind {
	case retry.Attempted:
		ev.Kind = runtime.RetryAttempted
	case retry.Exhausted:
		ev.Kind = runtime.RetryExhausted
	case retry.Throttled:
		ev.Kind = runtime.RetryThrottled
	}
	return ev
}

// classOf is errclass.Of, named for readability at call sites.
func classOf(err error) errclass.Class { return errclass.Of(err) }

// Format prints the factory's profiles, for every verb: never its fields,
// which hold the profiles and their secrets.
func (f *Factory) Format(s fmt.State, verb rune) {
	if f == nil {
		_, _ = s.Write([]byte("<nil>"))
		return
	}
	out := fmt.Sprintf("factory.Factory{profiles: %v}", f.Profiles())
	if verb == 'q' {
		out = strconv.Quote(out)
	}
	_, _ = s.Write([]byte(out))
}
