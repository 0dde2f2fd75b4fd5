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
//   - health checks run in the dialer: a pooled connection idle for longer
//     than health_check_interval is checked with PING before the next
//     command is written to it, TLS connections included;
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

// ErrClosed is returned by a Factory that has been closed.
var ErrClosed = errors.New("redisfactory: factory closed")

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
	f := &Factory{rt: opts.Runtime, opts: opts, entries: map[string]*entry{}, handles: map[string]*Handle{}}
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
	f.unregister = f.rt.OnClose("factory", f.closeClients)
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

// Close lets in-flight commands finish (until ctx ends), closes every
// client and, when the factory made its own runtime, the runtime. It is
// safe to call more than once.
func (f *Factory) Close(ctx context.Context) error {
	f.mu.RLock()
	closed := f.closed
	f.mu.RUnlock()
	if closed {
		return nil
	}
	if f.unregister != nil {
		f.unregister()
	}
	err := f.closeClients(ctx)
	if f.ownRT {
		err = errors.Join(err, f.rt.Close(ctx))
	}
	return err
}

func (f *Factory) closeClients(ctx context.Context) error {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	entries := f.entries
	f.entries = map[string]*entry{}
	handles := f.handles
	f.mu.Unlock()
	var errs []error
	for _, n := range sortedNames(entries) {
		if h := handles[n]; h != nil {
			h.cur.Load().drain(ctx)
		}
		if err := entries[n].client.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
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
