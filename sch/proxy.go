package sch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisfactory/redisfactory/internal/respproxy"
)

// Proxy is a maintenance proxy: a RESP-aware TCP proxy that sits in front
// of one real Redis server and plays the part of a server under
// maintenance. It
//
//   - answers the CLIENT MAINT_NOTIFICATIONS handshake itself (open-source
//     Redis does not know it) and remembers which connections negotiated
//     notifications;
//   - forwards every other command to the upstream server and every reply
//     back, in order (pipelines included);
//   - sends RESP3 push notifications, in the wire format Redis servers use,
//     to the connections that negotiated them: [Proxy.Moving],
//     [Proxy.Migrating], [Proxy.Migrated], [Proxy.FailingOver],
//     [Proxy.FailedOver], [Proxy.SMigrating];
//   - replays an active MOVING, MIGRATING, FAILING_OVER or SMIGRATING to
//     connections that negotiate while it lasts, and cuts the connections that are still open when the announced time
//     ends (as a server would), or when told to ([Proxy.Cut]);
//   - reports what every client connection did ([Proxy.Clients]): whether
//     it left for the new endpoint before the time ran out.
//
// It speaks plain TCP only. Use it in staging or in tests: point a profile
// at the proxy's address, drive traffic, and announce a maintenance (the
// redisfactory rehearse command does this from its standard input).
//
// A Proxy is safe for concurrent use.
type Proxy struct {
	listen, upstream string
	opts             ProxyOptions

	ln      net.Listener
	srv     atomic.Pointer[respproxy.Proxy] // the connection engine, set by Start
	seq     atomic.Int64
	started atomic.Bool

	mu     sync.Mutex
	closed bool
	all    []*client // every connection ever accepted, for Clients
	nextID int
	moving *movingState // the active MOVING, or nil
	relax  *relaxState  // the maintenance under way (MIGRATING, …), or nil
	timers []*time.Timer
}

// ProxyOptions configure a Proxy. The zero value is usable.
type ProxyOptions struct {
	// Logger receives one line per event (connection negotiated,
	// notification sent, client moved, connection cut). Nil discards them.
	Logger *slog.Logger
	// NoAutoCut keeps connections open after a MOVING's announced time
	// has passed. By default they are cut, as a server would.
	NoAutoCut bool
	// Rewrite maps upstream node addresses ("host:port") to the addresses
	// clients must use, in replies to CLUSTER SLOTS. Put one proxy in front
	// of every node of a cluster, give each the same map (node address →
	// its proxy's address), and cluster clients stay behind the proxies.
	Rewrite map[string]string
	// DialTimeout bounds dialing the upstream server; 0 means 5s.
	DialTimeout time.Duration
}

type movingState struct {
	seq      int64
	endpoint string // "" for null
	deadline time.Time
}

type relaxState struct {
	typ   string
	frame []byte
}

// ClientInfo is what the proxy knows about one client connection.
type ClientInfo struct {
	// ID numbers connections in the order they were accepted, from 1.
	ID int
	// Addr is the client's address as the proxy sees it.
	Addr string
	// Negotiated reports whether the connection asked for notifications
	// (CLIENT MAINT_NOTIFICATIONS ON), and EndpointType the type it asked for.
	Negotiated   bool
	EndpointType string
	// Open reports whether the connection is still open.
	Open bool
	// Notifications lists the notifications sent to it, by type.
	Notifications []string
	// Moving reports whether it was told to move; if so, Left reports
	// whether the client closed it before the announced time ended (it
	// handed off), LeftAfter how long after the MOVING it did, and Cut
	// whether the proxy cut it.
	Moving    bool
	Left      bool
	LeftAfter time.Duration
	Cut       bool
}

// NewProxy returns a proxy that will listen on listen ("host:port"; port 0
// picks a free port) and forward to upstream. Call [Proxy.Start].
func NewProxy(listen, upstream string) *Proxy {
	return NewProxyWithOptions(listen, upstream, ProxyOptions{})
}

// NewProxyWithOptions is [NewProxy] with options.
func NewProxyWithOptions(listen, upstream string, opts ProxyOptions) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	return &Proxy{listen: listen, upstream: upstream, opts: opts}
}

// Start starts listening and serving. It returns once the listener is
// open, so [Proxy.Addr] is valid.
func (p *Proxy) Start() error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("sch: proxy already started")
	}
	ln, err := net.Listen("tcp", p.listen)
	if err != nil {
		return fmt.Errorf("sch: proxy: %w", err)
	}
	p.ln = ln
	cfg := respproxy.Config{Dial: p.dial, Open: p.open, Handle: p.handle, Closed: p.connClosed}
	if p.opts.Rewrite != nil {
		// Not len > 0: the proxies of a cluster share one map, which is
		// filled as they start.
		cfg.Rewrite = p.rewrite
	}
	p.srv.Store(respproxy.Serve(ln, cfg))
	p.opts.Logger.Info("maintenance proxy listening", "listen", ln.Addr().String(), "upstream", p.upstream)
	return nil
}

// Addr returns the address the proxy listens on, once started.
func (p *Proxy) Addr() string {
	if p.ln == nil {
		return p.listen
	}
	return p.ln.Addr().String()
}

// Upstream returns the upstream server's address.
func (p *Proxy) Upstream() string { return p.upstream }

// Close stops the proxy, closes every connection and waits for its
// goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, t := range p.timers {
		t.Stop()
	}
	p.mu.Unlock()
	srv := p.srv.Load()
	if srv == nil {
		return nil
	}
	for _, c := range p.conns() {
		c.setCut()
	}
	return srv.Close()
}

// Moving announces that the server's endpoint moves to endpoint
// ("host:port"; "" or "none" for a null endpoint: the same address, later)
// within seconds, to every connection that negotiated notifications, and
// returns how many it told. Connections that negotiate while the MOVING is
// active get it too; unless ProxyOptions.NoAutoCut is set, connections still
// open when the time ends are cut.
func (p *Proxy) Moving(endpoint string, seconds int) int {
	if endpoint == "none" {
		endpoint = ""
	}
	if seconds < 0 {
		seconds = 0
	}
	seq := p.seq.Add(1)
	m := &movingState{seq: seq, endpoint: endpoint, deadline: time.Now().Add(time.Duration(seconds) * time.Second)}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0
	}
	p.moving = m
	if !p.opts.NoAutoCut {
		p.timers = append(p.timers, time.AfterFunc(time.Duration(seconds)*time.Second, func() { p.expireMoving(m) }))
	}
	p.mu.Unlock()
	frame := movingFrame(seq, seconds, endpoint)
	n := 0
	for _, c := range p.conns() {
		if c.notify("MOVING", frame, m) {
			n++
		}
	}
	shown := endpoint
	if shown == "" {
		shown = "null (same endpoint)"
	}
	p.opts.Logger.Info("sent MOVING", "seq", seq, "endpoint", shown, "seconds", seconds, "clients", n)
	return n
}

// Migrating announces a shard migration to every connection that negotiated
// notifications (clients relax their timeouts) and returns how many it
// told.
func (p *Proxy) Migrating() int {
	seq := p.seq.Add(1)
	return p.begin("MIGRATING", seq, pushFrame(bulk("MIGRATING"), integer(seq), integer(15), bulk("1")))
}

// Migrated announces the end of a shard migration (clients restore their
// timeouts).
func (p *Proxy) Migrated() int {
	seq := p.seq.Add(1)
	return p.end("MIGRATED", seq, pushFrame(bulk("MIGRATED"), integer(seq), bulk("1")))
}

// FailingOver announces a failover (clients relax their timeouts).
func (p *Proxy) FailingOver() int {
	seq := p.seq.Add(1)
	return p.begin("FAILING_OVER", seq, pushFrame(bulk("FAILING_OVER"), integer(seq), integer(15), bulk("1")))
}

// FailedOver announces the end of a failover (clients restore their
// timeouts).
func (p *Proxy) FailedOver() int {
	seq := p.seq.Add(1)
	return p.end("FAILED_OVER", seq, pushFrame(bulk("FAILED_OVER"), integer(seq), bulk("1")))
}

// SMigrating announces, in the OSS cluster format, that slots ("1000" or
// "1000-2000,3000") are migrating away from this node (cluster clients relax
// their timeouts on the node's connections).
func (p *Proxy) SMigrating(slots string) int {
	seq := p.seq.Add(1)
	return p.begin("SMIGRATING", seq, pushFrame(bulk("SMIGRATING"), integer(seq), bulk(slots)))
}

// Send writes a raw RESP frame (normally a push, ">…") to every connection
// that negotiated notifications and returns how many it reached.
func (p *Proxy) Send(frame []byte) int {
	return p.broadcast("raw", 0, frame)
}

// Cut closes every open client connection now, as a server that has moved
// away would, and returns how many it closed.
func (p *Proxy) Cut() int {
	conns := p.conns()
	for _, c := range conns {
		c.setCut()
		c.conn.Close()
	}
	p.opts.Logger.Info("cut client connections", "count", len(conns))
	return len(conns)
}

// Clients reports every client connection the proxy has accepted, in order.
func (p *Proxy) Clients() []ClientInfo {
	p.mu.Lock()
	all := append([]*client(nil), p.all...)
	p.mu.Unlock()
	out := make([]ClientInfo, 0, len(all))
	for _, c := range all {
		out = append(out, c.info())
	}
	return out
}

// OpenConns returns the number of open client connections.
func (p *Proxy) OpenConns() int {
	if srv := p.srv.Load(); srv != nil {
		return srv.Len()
	}
	return 0
}

// begin announces a maintenance that relaxes timeouts; connections that
// negotiate before it ends get the announcement too, as they would from a
// server under maintenance.
func (p *Proxy) begin(typ string, seq int64, frame []byte) int {
	p.mu.Lock()
	p.relax = &relaxState{typ: typ, frame: frame}
	p.mu.Unlock()
	return p.broadcast(typ, seq, frame)
}

// end announces the end of the maintenance under way.
func (p *Proxy) end(typ string, seq int64, frame []byte) int {
	p.mu.Lock()
	p.relax = nil
	p.mu.Unlock()
	return p.broadcast(typ, seq, frame)
}

func (p *Proxy) broadcast(typ string, seq int64, frame []byte) int {
	n := 0
	for _, c := range p.conns() {
		if c.notify(typ, frame, nil) {
			n++
		}
	}
	p.opts.Logger.Info("sent "+typ, "seq", seq, "clients", n)
	return n
}

// expireMoving runs when a MOVING's time is over: connections told to move
// that are still open are cut.
func (p *Proxy) expireMoving(m *movingState) {
	p.mu.Lock()
	if p.moving == m {
		p.moving = nil
	}
	p.mu.Unlock()
	for _, c := range p.conns() {
		c.mu.Lock()
		told := c.moving == m
		if told {
			c.cut = true
		}
		c.mu.Unlock()
		if told {
			p.opts.Logger.Warn("client did not move before the announced time ended; cutting it", "client", c.id, "addr", c.conn.RemoteAddr().String())
			c.conn.Close()
		}
	}
}

// conns returns the clients whose connections are open.
func (p *Proxy) conns() []*client {
	srv := p.srv.Load()
	if srv == nil {
		return nil
	}
	conns := srv.Conns()
	out := make([]*client, 0, len(conns))
	for _, c := range conns {
		out = append(out, c.State().(*client))
	}
	return out
}

// dial is the engine's Dial: it connects to the upstream server.
func (p *Proxy) dial() (net.Conn, error) {
	up, err := net.DialTimeout("tcp", p.upstream, p.opts.DialTimeout)
	if err != nil {
		p.opts.Logger.Warn("cannot reach upstream; closing client", "upstream", p.upstream, "err", err)
	}
	return up, err
}

// open is the engine's Open: it numbers the connection and starts its
// record.
func (p *Proxy) open(conn *respproxy.Conn) any {
	c := &client{conn: conn}
	p.mu.Lock()
	p.nextID++
	c.id = p.nextID
	p.all = append(p.all, c)
	p.mu.Unlock()
	return c
}

// handle is the engine's Handle: the proxy answers CLIENT
// MAINT_NOTIFICATIONS itself and forwards everything else.
func (p *Proxy) handle(conn *respproxy.Conn, args []string) bool {
	if len(args) < 2 || !strings.EqualFold(args[0], "CLIENT") || !strings.EqualFold(args[1], "MAINT_NOTIFICATIONS") {
		return false
	}
	p.handshake(conn.State().(*client), args)
	return true
}

// rewrite is the engine's Rewrite, set when ProxyOptions.Rewrite is: it
// rewrites the replies to CLUSTER SLOTS.
func (p *Proxy) rewrite(cmd []string, reply []byte) []byte {
	if len(cmd) >= 2 && strings.EqualFold(cmd[0], "CLUSTER") && strings.EqualFold(cmd[1], "SLOTS") && len(p.opts.Rewrite) > 0 {
		return rewriteSlots(reply, p.opts.Rewrite)
	}
	return reply
}

// connClosed is the engine's Closed: a connection told to move that closes
// before the proxy cuts it has handed off.
func (p *Proxy) connClosed(conn *respproxy.Conn) {
	c := conn.State().(*client)
	c.mu.Lock()
	c.closed = true
	if c.moving != nil && !c.cut {
		c.left, c.leftAfter = true, time.Since(c.movingAt)
	}
	left, after := c.left, c.leftAfter
	c.mu.Unlock()
	if left {
		p.opts.Logger.Info("client left after MOVING (handed off)", "client", c.id, "after", after.Round(time.Microsecond).String())
	}
}

// client is what the proxy records about one client connection; it is
// the connection's respproxy state. Lock order: client.mu, then
// Proxy.mu or the engine's.
type client struct {
	id   int
	conn *respproxy.Conn

	mu         sync.Mutex
	closed     bool // set with left, so that Clients never sees one without the other
	negotiated bool
	endpoint   string
	notes      []string
	moving     *movingState
	movingAt   time.Time
	left       bool
	leftAfter  time.Duration
	cut        bool
}

func (c *client) info() ClientInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ClientInfo{
		ID: c.id, Addr: c.conn.RemoteAddr().String(),
		Negotiated: c.negotiated, EndpointType: c.endpoint, Open: !c.closed,
		Notifications: append([]string(nil), c.notes...),
		Moving:        c.moving != nil, Left: c.left, LeftAfter: c.leftAfter, Cut: c.cut,
	}
}

// setCut records that the proxy, not the client, is closing the
// connection. Call it before closing the connection.
func (c *client) setCut() {
	c.mu.Lock()
	c.cut = true
	c.mu.Unlock()
}

// notify sends a notification if the connection negotiated them.
func (c *client) notify(typ string, frame []byte, m *movingState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.negotiated || c.closed || !c.conn.Send(frame) {
		return false
	}
	c.noteLocked(typ, m)
	return true
}

// noteLocked records a notification sent; m is set for a MOVING.
func (c *client) noteLocked(typ string, m *movingState) {
	c.notes = append(c.notes, typ)
	if m != nil && c.moving == nil {
		c.moving, c.movingAt = m, time.Now()
	}
}

// handshake answers CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type T].
// c.mu is held throughout, so that a concurrent broadcast sees the
// connection either before it negotiated or after its answer is queued.
func (p *Proxy) handshake(c *client, args []string) {
	var reply []byte
	var replay *movingState
	var relax *relaxState
	c.mu.Lock()
	switch {
	case len(args) >= 3 && strings.EqualFold(args[2], "ON") && !c.conn.RESP3():
		reply = []byte("-ERR maintenance notifications need RESP3 (HELLO 3)\r\n")
	case len(args) >= 3 && strings.EqualFold(args[2], "ON"):
		c.negotiated = true
		c.endpoint = "auto"
		for i := 3; i+1 < len(args); i += 2 {
			if strings.EqualFold(args[i], "moving-endpoint-type") {
				c.endpoint = args[i+1]
			}
		}
		reply = []byte("+OK\r\n")
		p.mu.Lock()
		// A null endpoint means "this address, later": replaying it to the
		// connections that come back would only make them go round again.
		if m := p.moving; m != nil && m.endpoint != "" && time.Now().Before(m.deadline) {
			replay = m
		}
		relax = p.relax
		p.mu.Unlock()
	case len(args) >= 3 && strings.EqualFold(args[2], "OFF"):
		c.negotiated = false
		reply = []byte("+OK\r\n")
	default:
		reply = []byte("-ERR syntax error: CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type <type>]\r\n")
	}
	c.conn.Reply(reply)
	if relax != nil {
		c.conn.Reply(relax.frame)
		c.noteLocked(relax.typ, nil)
	}
	if replay != nil {
		// A server keeps telling new connections that it is moving.
		left := int(time.Until(replay.deadline).Round(time.Second) / time.Second)
		c.conn.Reply(movingFrame(replay.seq, left, replay.endpoint))
		c.noteLocked("MOVING", replay)
	}
	negotiated, ep := c.negotiated, c.endpoint
	c.mu.Unlock()
	if negotiated {
		p.opts.Logger.Info("client negotiated maintenance notifications", "client", c.id, "addr", c.conn.RemoteAddr().String(), "endpoint_type", ep)
	}
}

// rewriteSlots replaces node addresses in a CLUSTER SLOTS reply, where each
// node is encoded as a host (bulk string) followed by a port (integer).
func rewriteSlots(frame []byte, m map[string]string) []byte {
	s := string(frame)
	for from, to := range m {
		fh, fp, err1 := net.SplitHostPort(from)
		th, tp, err2 := net.SplitHostPort(to)
		if err1 != nil || err2 != nil {
			continue
		}
		s = strings.ReplaceAll(s, string(bulk(fh))+":"+fp+"\r\n", string(bulk(th))+":"+tp+"\r\n")
	}
	return []byte(s)
}

// movingFrame is MOVING <seq> <seconds> <endpoint | null>.
func movingFrame(seq int64, seconds int, endpoint string) []byte {
	ep := []byte("_\r\n")
	if endpoint != "" {
		ep = bulk(endpoint)
	}
	return pushFrame(bulk("MOVING"), integer(seq), integer(int64(seconds)), ep)
}

func pushFrame(elems ...[]byte) []byte {
	b := []byte(">" + strconv.Itoa(len(elems)) + "\r\n")
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

func bulk(s string) []byte { return []byte("$" + strconv.Itoa(len(s)) + "\r\n" + s + "\r\n") }

func integer(n int64) []byte { return []byte(":" + strconv.FormatInt(n, 10) + "\r\n") }

// WaitMoved polls until every connection told to move has left or been
// cut, or ctx ends; it reports whether all of them left on their own.
func (p *Proxy) WaitMoved(ctx context.Context) (bool, error) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		all, done := true, true
		for _, ci := range p.Clients() {
			if !ci.Moving {
				continue
			}
			if ci.Open {
				done = false
			}
			if !ci.Left {
				all = false
			}
		}
		if done {
			return all, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
}
