package runtime

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// defaultHandler forwards every call to the handler of [slog.Default] at
// the time of the call, so that a runtime built before the application's
// slog.SetDefault still logs where the application wants.
type defaultHandler struct {
	attrs  []slog.Attr
	groups []string
}

func (h defaultHandler) current() slog.Handler {
	d := slog.Default().Handler()
	if len(h.attrs) > 0 {
		d = d.WithAttrs(h.attrs)
	}
	for _, g := range h.groups {
		d = d.WithGroup(g)
	}
	return d
}

func (h defaultHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return slog.Default().Handler().Enabled(ctx, l)
}

func (h defaultHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h defaultHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(h.groups) > 0 {
		// Attributes after a group belong to it: keep the order by
		// resolving the chain on the current default handler.
		return h.current().WithAttrs(attrs)
	}
	return defaultHandler{attrs: append(h.attrs[:len(h.attrs):len(h.attrs)], attrs...)}
}

func (h defaultHandler) WithGroup(name string) slog.Handler {
	return defaultHandler{attrs: h.attrs, groups: append(h.groups[:len(h.groups):len(h.groups)], name)}
}

// LogInterval is how often, at most, a high-volume failure kind
// (retry.exhausted, retry.throttled, health.check_failed) is logged per
// kind and profile. During an outage every command can fail; the log gets
// one line per second per profile carrying how many similar events were
// left out (attribute "suppressed"), while subscribers and counters still
// see every event.
const LogInterval = time.Second

// sampled reports whether events of kind k are rate-limited in the log.
func sampled(k Kind) bool {
	return k == RetryExhausted || k == RetryThrottled || k == HealthCheckFailed
}

// logLimiter decides which events of sampled kinds are logged.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]*limitState // by kind + "\x00" + profile
}

type limitState struct {
	at         time.Time
	suppressed uint64
}

// allow reports whether an event of kind k for profile at now is logged,
// and how many were suppressed since the last one that was.
func (l *logLimiter) allow(k Kind, profile string, now time.Time) (ok bool, suppressed uint64) {
	key := string(k) + "\x00" + profile
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last = map[string]*limitState{}
	}
	st := l.last[key]
	if st == nil {
		if len(l.last) >= 4096 {
			// Bounded memory with unbounded profile names: start over
			// rather than grow.
			clear(l.last)
		}
		l.last[key] = &limitState{at: now}
		return true, 0
	}
	if now.Sub(st.at) < LogInterval && !now.Before(st.at) {
		st.suppressed++
		return false, 0
	}
	suppressed = st.suppressed
	st.at, st.suppressed = now, 0
	return true, suppressed
}
