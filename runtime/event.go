package runtime

import (
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Kind identifies what an [Event] reports. Kinds are dotted, lower-case
// strings grouped by the feature that publishes them. Producers may define
// their own kinds; the constants below are the ones redisfactory publishes.
type Kind string

// Event kinds published by redisfactory.
const (
	// ClientBuilt is published when a factory has built a client from a
	// profile. Profile names the profile.
	ClientBuilt Kind = "client.built"
	// ClientClosed is published when a client has been closed. Err is set
	// if closing it failed.
	ClientClosed Kind = "client.closed"

	// RetryAttempted is published before a command is retried. Attempt is
	// the number of the upcoming attempt (the first retry is attempt 2),
	// Delay the backoff before it, Class the error class that made the
	// command retryable, Command the command name and Err the error of the
	// previous attempt.
	RetryAttempted Kind = "retry.attempted"
	// RetryExhausted is published when a command failed and no attempts are
	// left. Attempt is the number of attempts made; Err the last error.
	RetryExhausted Kind = "retry.exhausted"
	// RetryThrottled is published when a retry was refused by the retry
	// budget; the command fails with its last error (Err).
	RetryThrottled Kind = "retry.throttled"

	// HealthCheckFailed is published when a health probe failed. Err holds
	// the probe error.
	HealthCheckFailed Kind = "health.check_failed"
	// ConnReplaced is published when an unhealthy pooled connection was
	// replaced by a fresh one.
	ConnReplaced Kind = "health.conn_replaced"
	// HealthChanged is published when a client's overall health changed;
	// Message describes the transition (for example "healthy -> degraded").
	HealthChanged Kind = "health.changed"

	// ReloadApplied is published when a changed profile was applied and its
	// client rebuilt or reconfigured.
	ReloadApplied Kind = "reload.applied"
	// ReloadRejected is published when a changed profile was rejected by
	// validation; the previous configuration stays in effect. Err explains
	// why.
	ReloadRejected Kind = "reload.rejected"
	// ReloadFailed is published when a valid changed profile could not be
	// applied (for example, the new client could not connect); the previous
	// client stays in service. Err holds the cause.
	ReloadFailed Kind = "reload.failed"

	// CacheFlushed is published when a client-side cache was flushed, for
	// example after an invalidation channel was lost.
	CacheFlushed Kind = "cache.flushed"
	// CacheChannelDown is published when a client-side cache lost an
	// invalidation connection (Message names the server, Err the cause);
	// the cache is flushed and stops storing until it is back.
	CacheChannelDown Kind = "cache.channel_down"
	// CacheChannelUp is published when a client-side cache's invalidation
	// connection to a server (Message) is up; caching resumes.
	CacheChannelUp Kind = "cache.channel_up"

	// HandoffStarted is published when a connection hand-off to another
	// endpoint (for example during server maintenance) has started.
	HandoffStarted Kind = "handoff.started"
	// HandoffCompleted is published when a connection hand-off succeeded.
	HandoffCompleted Kind = "handoff.completed"
	// HandoffFailed is published when a connection hand-off failed. Err
	// holds the cause.
	HandoffFailed Kind = "handoff.failed"

	// MaintenanceNotification is published when the server announced
	// maintenance (for example a MOVING or MIGRATING push notification).
	// Message carries the notification.
	MaintenanceNotification Kind = "maint.notification"

	// ConfigWarning is published when a factory builds a client whose
	// profile weakens security without being invalid: TLS certificate
	// verification off, a secret file readable by group or others.
	// Profile names the profile, Message says what and why, and the
	// attribute "rule" names the check (insecure_skip_verify,
	// file_permissions). It is logged at warning level.
	ConfigWarning Kind = "config.warning"
)

// knownKinds lists the kinds above; their counters live in a fixed array
// indexed by knownIndex.
var knownKinds = [...]Kind{
	ClientBuilt, ClientClosed,
	RetryAttempted, RetryExhausted, RetryThrottled,
	HealthCheckFailed, ConnReplaced, HealthChanged,
	ReloadApplied, ReloadRejected, ReloadFailed,
	CacheFlushed,
	HandoffStarted, HandoffCompleted, HandoffFailed,
	MaintenanceNotification,
	CacheChannelDown, CacheChannelUp,
	ConfigWarning,
}

// knownIndex returns the index of k in knownKinds, or -1. It is a switch
// rather than a map lookup because it sits on the publish path.
func knownIndex(k Kind) int {
	switch k {
	case ClientBuilt:
		return 0
	case ClientClosed:
		return 1
	case RetryAttempted:
		return 2
	case RetryExhausted:
		return 3
	case RetryThrottled:
		return 4
	case HealthCheckFailed:
		return 5
	case ConnReplaced:
		return 6
	case HealthChanged:
		return 7
	case ReloadApplied:
		return 8
	case ReloadRejected:
		return 9
	case ReloadFailed:
		return 10
	case CacheFlushed:
		return 11
	case HandoffStarted:
		return 12
	case HandoffCompleted:
		return 13
	case HandoffFailed:
		return 14
	case MaintenanceNotification:
		return 15
	case CacheChannelDown:
		return 16
	case CacheChannelUp:
		return 17
	case ConfigWarning:
		return 18
	}
	return -1
}

// Level returns the log level at which events of kind k are logged:
// [slog.LevelWarn] for kinds that report a failure or a warning (kinds
// ending in "failed", "exhausted", "rejected" or "warning") and
// [slog.LevelDebug] otherwise.
func (k Kind) Level() slog.Level {
	s := string(k)
	if strings.HasSuffix(s, "failed") || strings.HasSuffix(s, "exhausted") || strings.HasSuffix(s, "rejected") || strings.HasSuffix(s, "warning") {
		return slog.LevelWarn
	}
	return slog.LevelDebug
}

// Event is something that happened in a client, a factory or the runtime.
// Fields that do not apply to a kind are left at their zero value.
//
// Events are observed by subscribers and written to logs, and errors are
// rendered with Err.Error(): producers must never put secrets (passwords,
// tokens, full connection URLs with credentials, command arguments) into
// any field, including Err.
type Event struct {
	// Kind says what happened.
	Kind Kind
	// Time is when it happened. [Bus.Publish] fills it from the runtime's
	// clock when it is zero.
	Time time.Time
	// Profile names the profile of the client concerned, if any.
	Profile string
	// Message is an optional human-readable detail.
	Message string
	// Err is the error involved, if any.
	Err error
	// Attempt is the attempt number, for retry events.
	Attempt int
	// Delay is the backoff or wait involved, for retry events.
	Delay time.Duration
	// Class is the error class (for example "connection" or "timeout").
	Class string
	// Command is the Redis command name (never its arguments).
	Command string
	// Attrs holds additional structured attributes.
	Attrs []slog.Attr
}

// String renders e as one human-readable line, for example
//
//	12:00:01.234 retry.attempted profile=sessions attempt=2 delay=20ms class=connection cmd=get err="i/o timeout"
//
// Fields at their zero value are omitted.
func (e Event) String() string {
	var b strings.Builder
	if !e.Time.IsZero() {
		b.WriteString(e.Time.Format("15:04:05.000"))
		b.WriteByte(' ')
	}
	b.WriteString(string(e.Kind))
	field := func(key, val string) {
		b.WriteByte(' ')
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(val))
	}
	if e.Profile != "" {
		field("profile", e.Profile)
	}
	if e.Attempt != 0 {
		field("attempt", strconv.Itoa(e.Attempt))
	}
	if e.Delay != 0 {
		field("delay", e.Delay.String())
	}
	if e.Class != "" {
		field("class", e.Class)
	}
	if e.Command != "" {
		field("cmd", e.Command)
	}
	if e.Message != "" {
		b.WriteString(" msg=")
		b.WriteString(strconv.Quote(e.Message))
	}
	if e.Err != nil {
		b.WriteString(" err=")
		b.WriteString(strconv.Quote(e.Err.Error()))
	}
	for _, a := range e.Attrs {
		if a.Equal(slog.Attr{}) {
			continue
		}
		field(a.Key, a.Value.Resolve().String())
	}
	return b.String()
}

// quoteIfNeeded quotes s when it is empty or would not read as one
// key=value token.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == 0x7f || !strconv.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// logAttrs returns the attributes under which e is logged.
func (e *Event) logAttrs() []slog.Attr {
	attrs := make([]slog.Attr, 0, 8+len(e.Attrs))
	attrs = append(attrs, slog.String("kind", string(e.Kind)))
	if e.Profile != "" {
		attrs = append(attrs, slog.String("profile", e.Profile))
	}
	if e.Attempt != 0 {
		attrs = append(attrs, slog.Int("attempt", e.Attempt))
	}
	if e.Delay != 0 {
		attrs = append(attrs, slog.Duration("delay", e.Delay))
	}
	if e.Class != "" {
		attrs = append(attrs, slog.String("class", e.Class))
	}
	if e.Command != "" {
		attrs = append(attrs, slog.String("cmd", e.Command))
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("err", e.Err.Error()))
	}
	return append(attrs, e.Attrs...)
}
