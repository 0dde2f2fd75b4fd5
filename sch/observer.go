package sch

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/go-redis/v9/push"

	"github.com/redisfactory/redisfactory/runtime"
)

// Notification types, as go-redis names them.
var notificationTypes = [...]string{
	maintnotifications.NotificationMoving,
	maintnotifications.NotificationMigrating,
	maintnotifications.NotificationMigrated,
	maintnotifications.NotificationFailingOver,
	maintnotifications.NotificationFailedOver,
	maintnotifications.NotificationSMigrating,
	maintnotifications.NotificationSMigrated,
}

// Stats counts what an [Engine] (or an [Observer]) saw and did.
type Stats struct {
	// Notifications counts the notifications received, by type (MOVING,
	// MIGRATING, …), over all connections: a maintenance announced to ten
	// connections counts ten.
	Notifications map[string]uint64
	// Negotiated counts the connections that asked for notifications and
	// got them (CLIENT MAINT_NOTIFICATIONS ON answered OK); Engine only.
	Negotiated uint64
	// Retired counts the connections a MOVING took out of service: each
	// finished the command it was running, if any, and was closed before
	// another command was written to it; Engine only.
	Retired uint64
	// HandoffsStarted counts handoff attempts (dials to the new endpoint),
	// HandoffsCompleted the connections whose handshake completed there,
	// HandoffsFailed the attempts that failed (an Engine then dials the
	// profile's address instead; go-redis retries a failed dial up to
	// max_handoff_retries times before it drops the connection).
	HandoffsStarted, HandoffsCompleted, HandoffsFailed uint64
}

// Observer publishes what go-redis does with maintenance notifications as
// runtime events carrying the profile's name, and counts it:
//
//   - every notification received, as a [runtime.MaintenanceNotification]
//     event (Message: what it announces and what the client does; Attrs:
//     type, seq, conn, node and, for MOVING, endpoint and seconds; Err: set
//     when go-redis could not process it);
//   - every handoff attempt, as [runtime.HandoffStarted] (Attrs: endpoint),
//     then [runtime.HandoffCompleted] (Delay: time since the MOVING the
//     handoff follows; Attrs: took, the dial and handshake time) or
//     [runtime.HandoffFailed] (Err).
//
// An Observer is for go-redis clients that use go-redis's own maintenance
// notifications (a rehearsal of a plain go-redis client through the
// maintenance proxy, for example); the factory's clients use an [Engine].
// It is installed on a client with [Observer.Attach] (a cluster client: on
// every node, from OnNewNode), and its [Observer.OnConnect] must run in the
// client's OnConnect: a handoff ends with the new connection's handshake,
// which is where the observer sees it complete.
type Observer struct {
	profile string
	bus     *runtime.Bus

	counts                     [len(notificationTypes)]atomic.Uint64
	started, completed, failed atomic.Uint64
	handoffs                   sync.Map // context.Context → *attempt
	movingMu                   sync.Mutex
	movingSince                map[string]time.Time // endpoint → first MOVING to it
	lastMoving                 atomic.Int64         // unix nanos of the last MOVING
	isHandoffDial              func() bool
}

type attempt struct {
	endpoint string
	start    time.Time
	since    time.Time // the MOVING it follows (zero when unknown)
	done     atomic.Bool
}

// NewObserver returns an observer publishing on bus under profile's name.
func NewObserver(profile string, bus *runtime.Bus) *Observer {
	return &Observer{profile: profile, bus: bus, movingSince: make(map[string]time.Time), isHandoffDial: calledFromHandoffWorker}
}

// Attach installs the observer on a go-redis client (a standalone client or
// a cluster node): a notification hook on its maintenance manager and a
// dial hook that sees handoff dials. It reports false when the client has
// no maintenance manager (sch disabled, or RESP2).
func (o *Observer) Attach(c *redis.Client) bool {
	m := c.GetMaintNotificationsManager()
	if m == nil {
		return false
	}
	m.AddNotificationHook(o)
	c.AddHook(dialHook{o})
	return true
}

// Stats returns the counters.
func (o *Observer) Stats() Stats {
	s := Stats{Notifications: make(map[string]uint64)}
	for i, t := range notificationTypes {
		if n := o.counts[i].Load(); n > 0 {
			s.Notifications[t] = n
		}
	}
	s.HandoffsStarted, s.HandoffsCompleted, s.HandoffsFailed = o.started.Load(), o.completed.Load(), o.failed.Load()
	return s
}

// PreHook implements maintnotifications.NotificationHook; it lets every
// notification through unchanged.
func (o *Observer) PreHook(_ context.Context, _ push.NotificationHandlerContext, _ string, n []interface{}) ([]interface{}, bool) {
	return n, true
}

// PostHook implements maintnotifications.NotificationHook: it counts the
// notification and publishes it.
func (o *Observer) PostHook(_ context.Context, nctx push.NotificationHandlerContext, typ string, n []interface{}, result error) {
	for i, t := range notificationTypes {
		if t == typ {
			o.counts[i].Add(1)
		}
	}
	seq := element[int64](n, 1)
	attrs := []slog.Attr{slog.String("type", typ), slog.Int64("seq", seq)}
	if c, ok := nctx.Conn.(interface{ GetID() uint64 }); ok {
		attrs = append(attrs, slog.Uint64("conn", c.GetID()))
	}
	node := ""
	if c, ok := nctx.Conn.(interface{ RemoteAddr() net.Addr }); ok && c.RemoteAddr() != nil {
		node = c.RemoteAddr().String()
		attrs = append(attrs, slog.String("node", node))
	}
	var msg string
	switch typ {
	case maintnotifications.NotificationMoving:
		secs := element[int64](n, 2)
		endpoint := element[string](n, 3)
		now := time.Now()
		o.lastMoving.Store(now.UnixNano())
		key := endpoint
		if key == "" {
			key = node
		}
		o.movingMu.Lock()
		if _, ok := o.movingSince[key]; !ok {
			o.movingSince[key] = now
		}
		o.movingMu.Unlock()
		if endpoint == "" {
			msg = fmt.Sprintf("MOVING: the endpoint is moving within %ds; the connection reconnects to the same address after %ds", secs, secs/2)
			attrs = append(attrs, slog.String("endpoint", "null"))
		} else {
			msg = fmt.Sprintf("MOVING: the endpoint moves to %s within %ds; the connection is handed off after its current command", endpoint, secs)
			attrs = append(attrs, slog.String("endpoint", endpoint))
		}
		attrs = append(attrs, slog.Int64("seconds", secs))
	case maintnotifications.NotificationMigrating, maintnotifications.NotificationFailingOver, maintnotifications.NotificationSMigrating:
		msg = typ + ": maintenance under way; the connection's timeouts are relaxed"
	case maintnotifications.NotificationMigrated, maintnotifications.NotificationFailedOver:
		msg = typ + ": maintenance over; the connection's timeouts are back to normal"
	case maintnotifications.NotificationSMigrated:
		msg = typ + ": slots moved; timeouts back to normal and the slot map is reloaded"
	default:
		msg = typ
	}
	o.bus.Publish(runtime.Event{Kind: runtime.MaintenanceNotification, Profile: o.profile, Message: msg, Err: result, Attrs: attrs})
}

// OnConnect must run in the client's OnConnect callback: when a handoff's
// new connection has finished its handshake, the handoff is complete.
func (o *Observer) OnConnect(ctx context.Context, _ *redis.Conn) error {
	v, ok := o.handoffs.LoadAndDelete(ctx)
	if !ok {
		return nil
	}
	a := v.(*attempt)
	a.done.Store(true)
	o.completed.Add(1)
	now := time.Now()
	e := runtime.Event{Kind: runtime.HandoffCompleted, Profile: o.profile,
		Message: "connection handed off to " + a.endpoint,
		Attrs:   []slog.Attr{slog.String("endpoint", a.endpoint), slog.Duration("took", now.Sub(a.start))}}
	if !a.since.IsZero() {
		e.Delay = now.Sub(a.since)
	}
	o.bus.Publish(e)
	return nil
}

// dial observes a dial; handoff dials (made by go-redis's handoff worker)
// are published and followed until the new connection's handshake ends.
func (o *Observer) dial(ctx context.Context, network, addr string, next redis.DialHook) (net.Conn, error) {
	if !o.isHandoffDial() {
		return next(ctx, network, addr)
	}
	a := &attempt{endpoint: addr, start: time.Now(), since: o.since(addr)}
	o.started.Add(1)
	o.bus.Publish(runtime.Event{Kind: runtime.HandoffStarted, Profile: o.profile,
		Message: "handing a connection off to " + addr, Attrs: []slog.Attr{slog.String("endpoint", addr)}})
	conn, err := next(ctx, network, addr)
	if err != nil {
		o.fail(a, fmt.Errorf("dial %s: %w", addr, err))
		return nil, err
	}
	o.handoffs.Store(ctx, a)
	context.AfterFunc(ctx, func() {
		if _, ok := o.handoffs.LoadAndDelete(ctx); ok && !a.done.Load() {
			o.fail(a, fmt.Errorf("the new connection's handshake did not complete: %w", context.Cause(ctx)))
		}
	})
	return conn, nil
}

func (o *Observer) fail(a *attempt, err error) {
	o.failed.Add(1)
	o.bus.Publish(runtime.Event{Kind: runtime.HandoffFailed, Profile: o.profile, Err: err,
		Message: "handoff to " + a.endpoint + " failed; go-redis retries it up to max_handoff_retries times, then drops the connection",
		Attrs:   []slog.Attr{slog.String("endpoint", a.endpoint)}})
}

// since returns when the MOVING to endpoint was first received.
func (o *Observer) since(endpoint string) time.Time {
	o.movingMu.Lock()
	t, ok := o.movingSince[endpoint]
	o.movingMu.Unlock()
	if ok {
		return t
	}
	if n := o.lastMoving.Load(); n > 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// calledFromHandoffWorker reports whether the current goroutine is
// go-redis's handoff worker. Dials are rare, so looking at the stack costs
// nothing measurable; it is the only way to tell a handoff dial from a pool
// dial to the same address (a MOVING with a null endpoint). The factory's
// tests fail if a go-redis upgrade renames the worker.
func calledFromHandoffWorker() bool {
	var pcs [48]uintptr
	n := goruntime.Callers(3, pcs[:])
	frames := goruntime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if strings.Contains(f.Function, "maintnotifications.(*handoffWorkerManager)") {
			return true
		}
		if !more {
			return false
		}
	}
}

// element returns n[i] as a T, or T's zero value.
func element[T any](n []interface{}, i int) T {
	var zero T
	if i >= len(n) {
		return zero
	}
	v, _ := n[i].(T)
	return v
}

// dialHook is the go-redis hook through which the observer sees dials.
type dialHook struct{ o *Observer }

func (h dialHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return h.o.dial(ctx, network, addr, next)
	}
}
func (dialHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (dialHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
