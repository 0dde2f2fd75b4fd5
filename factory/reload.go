package factory

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisfactory/redisfactory/internal/safefile"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// ErrReloadFailed is wrapped by Apply's error when the new configuration
// was valid but a client could not be built or verified.
var ErrReloadFailed = errors.New("redisfactory: reload failed")

// ReloadReport is the outcome of one Apply.
type ReloadReport struct {
	// Added, Changed, Removed and Unchanged name the profiles by what the
	// reload did to them (sorted). On failure nothing was done and they
	// say what would have been done.
	Added, Changed, Removed, Unchanged []string
	// Duration is how long the reload took, up to the swap (draining the
	// old clients continues in the background).
	Duration time.Duration
	// Trigger says what asked for the reload (a file event, a poll, a
	// signal, or "" for a direct call).
	Trigger string
	// Err is nil when the reload was applied; schema.Issues when the
	// configuration was invalid (rejected); wraps ErrReloadFailed when a
	// new client could not be built or verified.
	Err error
}

// Applied reports whether the reload changed anything.
func (r ReloadReport) Applied() bool {
	return r.Err == nil && len(r.Added)+len(r.Changed)+len(r.Removed) > 0
}

// String renders one line, e.g. "applied in 3ms: changed [sessions], unchanged [cache]".
func (r ReloadReport) String() string {
	var parts []string
	for _, p := range []struct {
		name  string
		names []string
	}{{"added", r.Added}, {"changed", r.Changed}, {"removed", r.Removed}, {"unchanged", r.Unchanged}} {
		if len(p.names) > 0 {
			parts = append(parts, p.name+" ["+strings.Join(p.names, ", ")+"]")
		}
	}
	verb := "applied"
	switch {
	case r.Err == nil && !r.Applied():
		verb = "nothing to apply"
	case r.Err != nil && errors.Is(r.Err, ErrReloadFailed):
		verb = "failed"
	case r.Err != nil:
		verb = "rejected"
	}
	return fmt.Sprintf("%s in %s: %s", verb, r.Duration.Round(time.Microsecond), strings.Join(parts, ", "))
}

// ReloadStats counts reloads, as Caddy and Prometheus expose them.
type ReloadStats struct {
	Applied  uint64 // reloads applied (including no-op reloads of a valid config)
	Rejected uint64 // invalid configurations refused
	Failed   uint64 // valid configurations whose clients could not be built or verified
	// LastSuccessful is false after a rejected or failed reload, until the
	// next applied one.
	LastSuccessful bool
	LastTime       time.Time
	LastDuration   time.Duration
}

type reloadCounters struct {
	applied, rejected, failed atomic.Uint64
	mu                        sync.Mutex
	lastOK                    bool
	lastTime                  time.Time
	lastDur                   time.Duration
}

func (r *reloadCounters) record(ok bool, now time.Time, d time.Duration) {
	r.mu.Lock()
	r.lastOK, r.lastTime, r.lastDur = ok, now, d
	r.mu.Unlock()
}

// ReloadStats returns the factory's reload counters.
func (f *Factory) ReloadStats() ReloadStats {
	f.stats.mu.Lock()
	defer f.stats.mu.Unlock()
	return ReloadStats{
		Applied: f.stats.applied.Load(), Rejected: f.stats.rejected.Load(), Failed: f.stats.failed.Load(),
		LastSuccessful: f.stats.lastOK || f.stats.lastTime.IsZero(), LastTime: f.stats.lastTime, LastDuration: f.stats.lastDur,
	}
}

// Reject records a configuration that could not be loaded (for example
// the issues profiles.Load returned for an edited file): nothing changes,
// and the rejection is counted and published like an invalid Apply.
func (f *Factory) Reject(err error) ReloadReport { return f.reject(err, "") }

func (f *Factory) reject(err error, trigger string) ReloadReport {
	r := ReloadReport{Err: err, Trigger: trigger}
	f.stats.rejected.Add(1)
	f.stats.record(false, f.rt.Clock().Now(), 0)
	f.rt.Events().Publish(runtime.Event{Kind: runtime.ReloadRejected, Err: err, Message: withTrigger(issueCount(err), trigger)})
	return r
}

func withTrigger(msg, trigger string) string {
	if trigger == "" {
		return msg
	}
	return msg + " (" + trigger + ")"
}

func issueCount(err error) string {
	var is schema.Issues
	if errors.As(err, &is) {
		noun := "problems"
		if len(is) == 1 {
			noun = "problem"
		}
		return fmt.Sprintf("%d %s; the running clients keep serving", len(is), noun)
	}
	return "the running clients keep serving"
}

// Apply makes cfg the factory's configuration, with the semantics of
// Caddy and Envoy: the whole new configuration is validated first, and if
// it is invalid nothing changes. Otherwise profiles that did not change keep
// their clients untouched; added profiles are built; changed profiles get a
// new client, built and verified with a PING under the new settings before
// it replaces the old one atomically in the profile's Handle; removed
// profiles' handles fail every command with ErrProfileRemoved. Old clients
// are closed once their in-flight calls finish, or when their profile's
// drain_timeout passes. If any new client cannot be built or verified,
// nothing changes and the error wraps ErrReloadFailed.
//
// Every Apply is counted (ReloadStats) and published as a reload.applied,
// reload.rejected or reload.failed event. Applies are serialized. After
// Close, Apply does nothing and its report's Err is ErrClosed.
func (f *Factory) Apply(ctx context.Context, cfg *schema.Config) ReloadReport {
	return f.apply(ctx, cfg, "")
}

func (f *Factory) apply(ctx context.Context, cfg *schema.Config, trigger string) ReloadReport {
	f.reloadMu.Lock()
	defer f.reloadMu.Unlock()
	start := time.Now()
	bus := f.rt.Events()

	f.mu.RLock()
	closed := f.closed
	f.mu.RUnlock()
	if closed {
		return ReloadReport{Err: ErrClosed, Trigger: trigger}
	}
	if is := schema.Validate(cfg); len(is) > 0 {
		r := f.reject(is, trigger)
		r.Duration = time.Since(start)
		return r
	}

	f.mu.RLock()
	if f.closed {
		f.mu.RUnlock()
		return ReloadReport{Err: ErrClosed}
	}
	old := f.entries
	f.mu.RUnlock()

	r := ReloadReport{Trigger: trigger}
	for _, n := range sortedNames(cfg.Profiles) {
		e, ok := old[n]
		switch {
		case !ok:
			r.Added = append(r.Added, n)
		case reflect.DeepEqual(e.client.profile, cfg.Profiles[n]) && e.tls == tlsDigest(cfg.Profiles[n]):
			r.Unchanged = append(r.Unchanged, n)
		default:
			r.Changed = append(r.Changed, n)
		}
	}
	for _, n := range sortedNames(old) {
		if _, ok := cfg.Profiles[n]; !ok {
			r.Removed = append(r.Removed, n)
		}
	}

	// Build and verify every new client before touching anything.
	built := map[string]*entry{}
	fail := func(err error) ReloadReport {
		for _, e := range built {
			_ = e.client.Close()
		}
		r.Err = fmt.Errorf("%w: %w", ErrReloadFailed, err)
		r.Duration = time.Since(start)
		f.stats.failed.Add(1)
		f.stats.record(false, f.rt.Clock().Now(), r.Duration)
		bus.Publish(runtime.Event{Kind: runtime.ReloadFailed, Err: r.Err, Message: withTrigger("the running clients keep serving", trigger)})
		return r
	}
	for _, n := range append(append([]string(nil), r.Added...), r.Changed...) {
		e, err := f.build(n, cfg.Profiles[n])
		if err != nil {
			return fail(err)
		}
		built[n] = e
		if err := verify(ctx, e.client); err != nil {
			return fail(fmt.Errorf("profile %s: verify: %w", n, err))
		}
	}

	// Swap.
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return fail(ErrClosed)
	}
	next := make(map[string]*entry, len(cfg.Profiles))
	for _, n := range r.Unchanged {
		next[n] = old[n]
	}
	var retired []retiredGen
	for n, e := range built {
		next[n] = e
		g := newGeneration(e.client)
		if h, ok := f.handles[n]; ok {
			prev := h.swap(g)
			if o, ok := old[n]; ok {
				retired = append(retired, retiredGen{prev, o.client.profile.DrainTimeout})
			}
		} else {
			f.handles[n] = newHandle(n, e.client)
		}
	}
	for _, n := range r.Removed {
		prev := f.handles[n].swap(removedGeneration(n))
		retired = append(retired, retiredGen{prev, old[n].client.profile.DrainTimeout})
	}
	f.entries = next
	f.retiring.Add(len(retired)) // under mu, !closed: Close waits for them
	f.mu.Unlock()

	for _, rg := range retired {
		f.retire(rg)
	}
	r.Duration = time.Since(start)
	f.stats.applied.Add(1)
	f.stats.record(true, f.rt.Clock().Now(), r.Duration)
	bus.Publish(runtime.Event{Kind: runtime.ReloadApplied, Delay: r.Duration, Message: withTrigger(r.String(), trigger)})
	return r
}

type retiredGen struct {
	g     *generation
	drain time.Duration
}

// retire drains a replaced generation in the background and closes it,
// at once when the factory or the runtime closes.
func (f *Factory) retire(rg retiredGen) {
	// Not rt.Go: that would start nothing once the runtime is closing,
	// and the client would never be closed.
	go func() {
		defer f.retiring.Done()
		dctx, cancel := context.WithTimeout(f.rt.Context(), rg.drain)
		defer cancel()
		go func() {
			select {
			case <-f.stop:
				cancel()
			case <-dctx.Done():
			}
		}()
		if !rg.g.drain(dctx) {
			f.rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed, Profile: rg.g.owner.name,
				Message: fmt.Sprintf("drain_timeout (%s) passed with %d calls in flight; closing", rg.drain, rg.g.calls())})
		}
		_ = rg.g.owner.closeWithin(f.cut)
	}()
}

// verify PINGs a new client under its own settings.
func verify(ctx context.Context, c *Client) error {
	p := c.profile
	timeout := p.Timeouts.Connect + p.Timeouts.EffectiveRead()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.UniversalClient.Ping(ctx).Err()
}

// tlsDigest hashes the TLS files of a profile, so that a rotated
// certificate counts as a change even when the paths stay the same.
func tlsDigest(p *schema.Profile) [32]byte {
	h := sha256.New()
	for _, f := range []string{p.TLS.CAFile, p.TLS.CertFile, p.TLS.KeyFile} {
		if f == "" {
			continue
		}
		data, err := safefile.Read(f, maxTLSFileSize)
		if err != nil {
			// An unreadable file hashes as its error, so that it differs
			// from any content and from another error.
			data = []byte(err.Error())
		}
		h.Write(data)
		h.Write([]byte{0})
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}
