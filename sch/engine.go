package sch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/go-redis/v9/push"

	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// DialFunc is go-redis's dialer signature.
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// Engine performs smart client handoffs for one client, with go-redis's
// maintenance-notification machinery off (see the package documentation):
//
//   - [Engine.OnConnect] asks each new connection for notifications;
//   - the push handlers installed by [Engine.Attach] act on them: a MOVING
//     redirects the dials of the connection's address to the announced
//     endpoint and retires the connection, MIGRATING and the like relax its
//     timeouts;
//   - [Engine.Dialer] wraps the client's dialer: it dials the announced
//     endpoint instead of a moved address, and wraps every connection so
//     that a retired one refuses the next command before writing a byte of
//     it (the command then runs on a fresh connection, see [Engine.Attach])
//     and a relaxed one takes the larger of its configured and relaxed
//     deadlines; a connection dialed to an endpoint under a maintenance
//     starts relaxed, for relaxed_timeout.
//
// Everything the engine does is published on the runtime's bus with the
// profile's name and counted in [Engine.Stats].
type Engine struct {
	profile      string
	bus          *runtime.Bus
	required     bool   // sch.mode enabled: a refusal fails the connection
	endpointType string // "" (auto): from each address
	tls          bool
	sentinel     bool
	relaxed      time.Duration
	postHandoff  time.Duration
	read, write  time.Duration
	handoffLimit time.Duration
	attempts     int

	refused atomic.Bool // auto mode: the server does not know the command
	// relaxingUntil (unix nanoseconds) is the end of the latest window in
	// which some connection may be relaxed: an announced maintenance, a
	// dial during one, a handoff's post_handoff_relaxed_duration.
	relaxingUntil atomic.Int64

	counts                     [len(notificationTypes)]atomic.Uint64
	negotiated, retired        atomic.Uint64
	started, completed, failed atomic.Uint64

	mu        sync.Mutex
	redirects map[string]redirect // dialed address → announced endpoint
	nullMoves map[string]redirect // address → MOVING without endpoint (endpoint unused)
	// unreachable holds endpoints a handoff could not dial, until the end
	// of the time their MOVING announced: a MOVING to one of them (a
	// server repeats it to every new connection) leaves the connection
	// where it is instead of retiring it again and again.
	unreachable map[string]time.Time
	// maintained holds the endpoints a connection was told are under a
	// maintenance (MIGRATING and the like), until its end is read or the
	// time it announced passes: a connection dialed to one of them starts
	// relaxed (see Dialer).
	maintained map[string]time.Time
	timers     map[*time.Timer]struct{}
	closed     bool
	onSlots    []func()
}

// redirect is what a MOVING announced for an address.
type redirect struct {
	endpoint string
	since    time.Time // when the MOVING arrived
	until    time.Time // the announced time's end
}

// NewEngine returns the engine of a profile whose clients publish on bus
// under name, or nil when [Active] is false.
func NewEngine(name string, p *schema.Profile, bus *runtime.Bus) *Engine {
	if !Active(p) {
		return nil
	}
	read, write := p.Timeouts.EffectiveRead(), p.Timeouts.EffectiveWrite()
	relaxed := p.SCH.RelaxedTimeout
	if relaxed <= 0 {
		relaxed = defaultRelaxed
	}
	post := p.SCH.PostHandoffRelaxedDuration
	if post <= 0 {
		post = 2 * relaxed
	}
	limit := p.SCH.HandoffTimeout
	if limit <= 0 {
		limit = defaultHandoffTimeout
	}
	attempts := p.SCH.MaxHandoffRetries
	if attempts <= 0 {
		attempts = defaultHandoffAttempts
	}
	ep := p.SCH.EndpointType
	if ep == "auto" {
		ep = ""
	}
	return &Engine{
		profile: name, bus: bus,
		required:     p.SCH.Mode == schema.SCHEnabled,
		endpointType: ep,
		tls:          p.TLS.Enabled,
		sentinel:     p.Mode == schema.Sentinel,
		relaxed:      relaxed, postHandoff: post,
		read: read, write: write,
		handoffLimit: limit, attempts: attempts,
		redirects: map[string]redirect{}, nullMoves: map[string]redirect{}, unreachable: map[string]time.Time{}, maintained: map[string]time.Time{},
		timers: map[*time.Timer]struct{}{},
	}
}

// Defaults of the sch keys left at 0.
const (
	defaultRelaxed         = 10 * time.Second
	defaultHandoffTimeout  = 15 * time.Second
	defaultHandoffAttempts = 3
)

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	s := Stats{Notifications: make(map[string]uint64)}
	for i, t := range notificationTypes {
		if n := e.counts[i].Load(); n > 0 {
			s.Notifications[t] = n
		}
	}
	s.Negotiated, s.Retired = e.negotiated.Load(), e.retired.Load()
	s.HandoffsStarted, s.HandoffsCompleted, s.HandoffsFailed = e.started.Load(), e.completed.Load(), e.failed.Load()
	return s
}

// Close stops the engine's timers (MOVING without an endpoint).
func (e *Engine) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	for t := range e.timers {
		t.Stop()
	}
	clear(e.timers)
}

// OnSlotsMoved registers fn, called after an SMIGRATED notification on the
// goroutine that read it, so it must not block: a cluster client asks for
// a reload of its slot map there (ReloadState, which reloads in the
// background).
func (e *Engine) OnSlotsMoved(fn func()) {
	e.mu.Lock()
	e.onSlots = append(e.onSlots, fn)
	e.mu.Unlock()
}

// Attach installs the engine on a go-redis client (a standalone client, a
// Sentinel failover client or a cluster node): its push-notification
// handlers, and a hook that runs a command again when the connection it
// was given was retired before the command was written (nothing of it
// reached a server, so it runs once). Install it after every other hook,
// so that it is the innermost.
func (e *Engine) Attach(c *redis.Client) error {
	for _, t := range notificationTypes {
		if err := c.RegisterPushNotificationHandler(t, handler{e, t}, true); err != nil {
			return fmt.Errorf("sch: handler for %s: %w", t, err)
		}
	}
	c.AddHook(rerunHook{})
	return nil
}

// OnConnect must run last in the client's OnConnect callback: it asks the
// connection for notifications (CLIENT MAINT_NOTIFICATIONS ON
// moving-endpoint-type <type>). In auto mode a refusal turns the request
// off for the client, quietly; in enabled mode it fails the connection.
// Connections to Sentinel processes are left alone.
func (e *Engine) OnConnect(ctx context.Context, cn *redis.Conn) error {
	if e.sentinel && !strings.Contains(cn.String(), "<FailoverClient ") {
		return nil // a connection to a sentinel, not to the master
	}
	if !e.required && e.refused.Load() {
		return nil
	}
	err := cn.ClientMaintNotifications(ctx, true, e.endpointFor(cn)).Err()
	if err == nil {
		e.negotiated.Add(1)
		return nil
	}
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return err // the connection failed: go-redis drops it
	}
	if e.required {
		return fmt.Errorf("sch.mode enabled: the server refused maintenance notifications: %w", err)
	}
	e.refused.Store(true)
	return nil
}

// endpointFor returns the moving-endpoint-type a connection asks for.
func (e *Engine) endpointFor(cn *redis.Conn) string {
	if e.endpointType != "" {
		return e.endpointType
	}
	addr := ""
	if s := cn.String(); strings.HasPrefix(s, "Redis<") {
		addr, _, _ = strings.Cut(strings.TrimPrefix(s, "Redis<"), " ")
	}
	return string(maintnotifications.DetectEndpointType(addr, e.tls))
}

// Dialer wraps a client's dialer: dials of an address a MOVING moved go
// to the announced endpoint (a failed one falls back to the address), and
// every connection is wrapped (see [Engine]), but for those of an auto-mode
// client whose server refused notifications, which cost nothing then.
func (e *Engine) Dialer(next DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !e.required && e.refused.Load() {
			// auto mode, and the server does not know the command: the
			// connection will not ask, so no notification can reach it.
			return next(ctx, network, addr)
		}
		r, handoff := e.route(addr)
		target := addr
		if handoff && r.endpoint != "" {
			target = r.endpoint
		}
		var c net.Conn
		var err error
		if handoff {
			c, err = e.handoffDial(ctx, network, target, r, next)
			if err != nil && target != addr {
				e.dropRedirect(addr, r)
				target = addr
				handoff = false
				c, err = next(ctx, network, addr)
			}
		} else {
			c, err = next(ctx, network, addr)
		}
		if err != nil {
			return nil, err
		}
		w := newConn(e, c, addr, target)
		var until time.Time
		if e.underMaintenance(target) {
			// The server tells a connection about a maintenance once it
			// has negotiated notifications, at the end of its handshake:
			// until then, the handshake and the command that dialed it
			// would have the normal timeout while the server is slow (a
			// virtual connection of the factory's engine even queues them
			// behind the other connections' commands on a shared socket).
			until = time.Now().Add(e.relaxed)
		}
		if handoff {
			w.handoff = &r
			until = later(until, time.Now().Add(e.postHandoff))
		} else if !until.IsZero() {
			w.dialRelaxed.Store(true) // until the maintenance's end, read on w
		}
		if !until.IsZero() {
			w.relaxUntil(until)
			e.noteRelaxing(until)
		}
		return w.exposed(), nil
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// underMaintenance reports whether a connection to endpoint was told of a
// maintenance that has not ended.
func (e *Engine) underMaintenance(endpoint string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	until, ok := e.maintained[endpoint]
	if ok && !time.Now().Before(until) {
		delete(e.maintained, endpoint)
		return false
	}
	return ok
}

// maintenance records that a maintenance of endpoint began (for secs
// seconds, relaxed_timeout when it did not say) or, with on false, ended.
func (e *Engine) maintenance(endpoint string, on bool, secs int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !on {
		delete(e.maintained, endpoint)
		return
	}
	d := e.relaxed
	if secs > 0 {
		d = time.Duration(secs) * time.Second
	}
	until := time.Now().Add(d)
	e.maintained[endpoint] = later(e.maintained[endpoint], until)
	e.noteRelaxing(until.Add(e.relaxed))
}

// noteRelaxing extends the window Relaxing reports to until.
func (e *Engine) noteRelaxing(until time.Time) {
	u := until.UnixNano()
	for {
		cur := e.relaxingUntil.Load()
		if cur >= u || e.relaxingUntil.CompareAndSwap(cur, u) {
			return
		}
	}
}

// Relaxing reports whether, at now, some connection of the engine may
// have relaxed timeouts: a maintenance was announced (until its announced
// end, or relaxed_timeout, plus relaxed_timeout), or a connection was
// dialed during one or for a handoff (until its relaxed window ends). A
// command sent without a connection of the engine's (the factory's
// direct path) takes a connection instead while it does, so that it gets
// the relaxed timeout too. One atomic load.
func (e *Engine) Relaxing(now time.Time) bool {
	return now.UnixNano() < e.relaxingUntil.Load()
}

// handoffDial dials the announced endpoint, up to max_handoff_retries
// times within handoff_timeout.
func (e *Engine) handoffDial(ctx context.Context, network, target string, r redirect, next DialFunc) (net.Conn, error) {
	e.started.Add(1)
	e.bus.Publish(runtime.Event{Kind: runtime.HandoffStarted, Profile: e.profile,
		Message: "opening a connection on " + target + " after a MOVING", Attrs: []slog.Attr{slog.String("endpoint", target)}})
	ctx, cancel := context.WithTimeout(ctx, e.handoffLimit)
	defer cancel()
	var err error
	for range e.attempts {
		var c net.Conn
		if c, err = next(ctx, network, target); err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	e.handoffFailed(target, fmt.Errorf("dial %s: %w", target, err))
	return nil, err
}

func (e *Engine) handoffFailed(endpoint string, err error) {
	e.failed.Add(1)
	e.bus.Publish(runtime.Event{Kind: runtime.HandoffFailed, Profile: e.profile, Err: err,
		Message: "handoff to " + endpoint + " failed; the connection is opened on the profile's address instead",
		Attrs:   []slog.Attr{slog.String("endpoint", endpoint)}})
}

// handshakeDone is called when a connection's handshake ended, with
// whether it negotiated notifications.
func (e *Engine) handshakeDone(w *conn) {
	r := w.handoff
	if r == nil {
		return
	}
	e.completed.Add(1)
	now := time.Now()
	e.bus.Publish(runtime.Event{Kind: runtime.HandoffCompleted, Profile: e.profile, Delay: now.Sub(r.since),
		Message: "connection handed off to " + w.target,
		Attrs:   []slog.Attr{slog.String("endpoint", w.target), slog.Duration("took", now.Sub(w.dialed))}})
}

// route returns where a dial of addr goes and whether it is a handoff.
func (e *Engine) route(addr string) (redirect, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.redirects) == 0 && len(e.nullMoves) == 0 {
		return redirect{}, false
	}
	if r, ok := e.redirects[addr]; ok {
		return r, true
	}
	if r, ok := e.nullMoves[addr]; ok {
		now := time.Now()
		if now.Before(r.until) && !now.Before(r.since.Add(r.until.Sub(r.since)/2)) {
			return r, true
		}
		if !now.Before(r.until) {
			delete(e.nullMoves, addr)
		}
	}
	return redirect{}, false
}

// dropRedirect forgets a redirect whose endpoint could not be dialed.
func (e *Engine) dropRedirect(addr string, failed redirect) {
	e.mu.Lock()
	if r, ok := e.redirects[addr]; ok && r.endpoint == failed.endpoint {
		delete(e.redirects, addr)
	}
	e.unreachable[failed.endpoint] = failed.until
	e.mu.Unlock()
}

// handler is the push handler of one notification type.
type handler struct {
	e   *Engine
	typ string
}

// HandlePushNotification implements push.NotificationHandler. go-redis
// calls it on the goroutine that holds the connection (before a command is
// written, before its reply is read, or when it is returned to the pool).
func (h handler) HandlePushNotification(_ context.Context, nctx push.NotificationHandlerContext, n []interface{}) error {
	h.e.handle(h.typ, nctx.Conn, n)
	return nil
}

// pooled is what the engine uses of go-redis's pooled connection.
type pooled interface {
	GetNetConn() net.Conn
	MarkCloseOnPut(reason string)
}

func (e *Engine) handle(typ string, pc any, n []interface{}) {
	for i, t := range notificationTypes {
		if t == typ {
			e.counts[i].Add(1)
		}
	}
	p, _ := pc.(pooled)
	var w *conn
	if p != nil {
		w = connOf(p.GetNetConn())
	}
	attrs := []slog.Attr{slog.String("type", typ), slog.Int64("seq", element[int64](n, 1))}
	if c, ok := pc.(interface{ GetID() uint64 }); ok {
		attrs = append(attrs, slog.Uint64("conn", c.GetID()))
	}
	if w != nil {
		attrs = append(attrs, slog.String("node", w.target))
	}
	var msg string
	var err error
	switch typ {
	case maintnotifications.NotificationMoving:
		msg, err = e.moving(w, p, n, &attrs)
	case maintnotifications.NotificationMigrating, maintnotifications.NotificationFailingOver, maintnotifications.NotificationSMigrating:
		msg = typ + ": maintenance under way; the connection's timeouts are relaxed"
		if w != nil {
			w.beginMaintenance(element[int64](n, 1))
			// MIGRATING and FAILING_OVER say how long they may last;
			// SMIGRATING names slots instead.
			e.maintenance(w.target, true, element[int64](n, 2))
		}
	case maintnotifications.NotificationMigrated, maintnotifications.NotificationFailedOver:
		msg = typ + ": maintenance over; the connection's timeouts are back to normal"
		if w != nil {
			w.endMaintenance()
			e.maintenance(w.target, false, 0)
		}
	case maintnotifications.NotificationSMigrated:
		msg = typ + ": slots moved; timeouts back to normal and the slot map is reloaded"
		if w != nil {
			w.endMaintenance()
			e.maintenance(w.target, false, 0)
		}
		e.mu.Lock()
		fns := append([]func(){}, e.onSlots...)
		e.mu.Unlock()
		for _, fn := range fns {
			fn()
		}
	}
	if w == nil && err == nil {
		err = errors.New("the connection is not one the factory dialed; nothing done")
	}
	e.bus.Publish(runtime.Event{Kind: runtime.MaintenanceNotification, Profile: e.profile, Message: msg, Err: err, Attrs: attrs})
}

// moving acts on MOVING <seq> <seconds> <endpoint | null>.
func (e *Engine) moving(w *conn, p pooled, n []interface{}, attrs *[]slog.Attr) (string, error) {
	secs := element[int64](n, 2)
	endpoint := element[string](n, 3)
	now := time.Now()
	until := now.Add(time.Duration(secs) * time.Second)
	*attrs = append(*attrs, slog.Int64("seconds", secs))
	if endpoint == "" {
		*attrs = append(*attrs, slog.String("endpoint", "null"))
	} else {
		*attrs = append(*attrs, slog.String("endpoint", endpoint))
	}
	if w == nil {
		return "MOVING", nil
	}
	if endpoint == "" {
		// "This address, later": retire the connection after half the time.
		e.mu.Lock()
		if _, ok := e.nullMoves[w.addr]; !ok {
			e.nullMoves[w.addr] = redirect{since: now, until: until}
		}
		if !e.closed {
			var t *time.Timer
			t = time.AfterFunc(time.Duration(secs)*time.Second/2, func() {
				e.retire(w, p)
				e.mu.Lock()
				delete(e.timers, t)
				e.mu.Unlock()
			})
			e.timers[t] = struct{}{}
		}
		e.mu.Unlock()
		return fmt.Sprintf("MOVING: the endpoint is moving within %ds; the connection reconnects to the same address after %ds", secs, secs/2), nil
	}
	if endpoint == w.target {
		return "MOVING: the connection is already on " + endpoint, nil
	}
	e.mu.Lock()
	if until, ok := e.unreachable[endpoint]; ok {
		if now.Before(until) {
			e.mu.Unlock()
			return "MOVING: " + endpoint + " could not be reached by an earlier handoff; the connection stays", nil
		}
		delete(e.unreachable, endpoint)
	}
	if r, ok := e.redirects[w.addr]; !ok || r.endpoint != endpoint {
		e.redirects[w.addr] = redirect{endpoint: endpoint, since: now, until: until}
	}
	e.mu.Unlock()
	e.retire(w, p)
	return fmt.Sprintf("MOVING: the endpoint moves to %s within %ds; the connection is closed after its current command and new ones open there", endpoint, secs), nil
}

// retire takes a connection out of service: go-redis closes it when it
// comes back to the pool, and the wrapper refuses a new command on it.
func (e *Engine) retire(w *conn, p pooled) {
	if w.retiring.Swap(true) {
		return
	}
	e.retired.Add(1)
	if p != nil {
		p.MarkCloseOnPut("sch: handed off after a MOVING")
	}
}
