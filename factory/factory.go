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
	"slices"
	"sort"
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

// Factory builds and owns the clients of one configuration.
type Factory struct {
	rt         *runtime.Runtime
	ownRT      bool
	opts       Options
	unregister func()

	mu      sync.RWMutex
	clients map[string]*Client
	closed  bool
}

// New builds a client for every profile of cfg. Clients connect lazily: New
// fails only when a profile cannot be turned into a client (for example an
// unreadable TLS certificate), not when a server is down.
func New(cfg *schema.Config, opts Options) (*Factory, error) {
	f := &Factory{rt: opts.Runtime, opts: opts, clients: map[string]*Client{}}
	if f.rt == nil {
		f.rt = runtime.New(runtime.Options{})
		f.ownRT = true
	}
	names := make([]string, 0, len(cfg.Profiles))
	for n := range cfg.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c, err := Build(n, cfg.Profiles[n], f.rt, BuildOptions{OnBuild: opts.OnBuild})
		if err != nil {
			_ = f.closeClients(context.Background())
			if f.ownRT {
				_ = f.rt.Close(context.Background())
			}
			return nil, err
		}
		f.clients[n] = c
		if opts.ProbeInterval > 0 {
			c.startProbe(opts.ProbeInterval, opts.ProbeTimeout)
		}
	}
	f.unregister = f.rt.OnClose("factory", f.closeClients)
	return f, nil
}

// Runtime returns the runtime the factory builds clients from.
func (f *Factory) Runtime() *runtime.Runtime { return f.rt }

// Profiles returns the names of the factory's profiles, sorted.
func (f *Factory) Profiles() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]string, 0, len(f.clients))
	for n := range f.clients {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Client returns the client of a profile.
func (f *Factory) Client(profile string) (redis.UniversalClient, error) {
	c, err := f.lookup(profile)
	if err != nil {
		return nil, err
	}
	return c.UniversalClient, nil
}

// Lookup returns the factory's Client of a profile: the go-redis client
// with its profile, retry policy, health and checks.
func (f *Factory) Lookup(profile string) (*Client, error) { return f.lookup(profile) }

// Health returns the health of a profile's client as last seen by the
// background probe (Options.ProbeInterval) or by Check.
func (f *Factory) Health(profile string) (Health, error) {
	c, err := f.lookup(profile)
	if err != nil {
		return Health{}, err
	}
	return c.Health(), nil
}

func (f *Factory) lookup(profile string) (*Client, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.closed {
		return nil, ErrClosed
	}
	c, ok := f.clients[profile]
	if !ok {
		names := make([]string, 0, len(f.clients))
		for n := range f.clients {
			names = append(names, n)
		}
		msg := fmt.Sprintf("%q", profile)
		if s := suggest.Closest(profile, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return nil, fmt.Errorf("%w %s", ErrUnknownProfile, msg)
	}
	return c, nil
}

// Close closes every client and, when the factory made its own runtime,
// the runtime. It is safe to call more than once.
func (f *Factory) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.mu.Unlock()
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
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	clients := f.clients
	f.clients = map[string]*Client{}
	f.mu.Unlock()
	var errs []error
	for _, n := range slices.Sorted(mapsKeys(clients)) {
		if err := clients[n].Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
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
