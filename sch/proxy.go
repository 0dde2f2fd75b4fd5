package sch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
//   - reports what every client connection did ([Proxy.Clients]) and what
//     came of a MOVING ([Proxy.MovingReport]): how many connections the
//     clients closed before the time ran out, and, when the new endpoint
//     is another proxy of the process ([Proxy.AddPeer]), how many arrived
//     there.
//
// It bounds what clients can make it hold (see internal/respproxy): a
// command is kept up to 64 KiB and streamed beyond, at most about 256 KiB
// waits for a client that does not read, closed connections are
// forgotten, and [ProxyOptions] caps the connections and closes idle ones.
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

	accepted   atomic.Int64 // connections accepted, ever
	negotiated atomic.Int64 // connections that negotiated notifications, ever

	mu         sync.Mutex
	closed     bool
	open       map[*client]struct{} // open connections, for Clients
	closedList []*client            // the most recently closed, at most keepClosed
	nextID     int
	moving     *movingState // the active MOVING, or nil
	last       *movingState // the latest MOVING, for MovingReport
	relax      *relaxState  // the maintenance under way (MIGRATING, …), or nil
	timers     []*time.Timer
	peers      map[string]*Proxy // proxies at other endpoints, by address
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
	// MaxConns caps the open client connections; a client over the cap
	// reads "-ERR max number of clients reached" and is closed. 0 means
	// DefaultMaxConns; negative, no cap.
	MaxConns int
	// IdleTimeout closes a client connection that has sent nothing for
	// that long while it waits for no reply and is not subscribed (as
	// Redis's timeout), and one that stalls in the middle of a command as
	// long. 0 means DefaultIdleTimeout; negative, never.
	IdleTimeout time.Duration
	// MaxArgs caps the arguments of one command: a client announcing more
	// reads "-ERR Protocol error: invalid multibulk length" (Redis's words)
	// and is closed, before the command reaches the server, so that one
	// client cannot make the server chew a giant command. 0 means
	// DefaultMaxArgs; negative, the proxy's hard bound, 2^24.
	MaxArgs int
}

// Defaults of [ProxyOptions]' limits.
const (
	DefaultMaxConns    = 1000
	DefaultIdleTimeout = 10 * time.Minute
	// DefaultMaxArgs is Redis's own bound before 7.0 (1024*1024).
	DefaultMaxArgs = 1 << 20
	// keepClosed is how many closed connections [Proxy.Clients] still
	// lists (the most recent); older ones are forgotten.
	keepClosed = 256
)

type movingState struct {
	seq         int64
	target      Endpoint // zero for "none": this address, later
	deadline    time.Time
	at          time.Time
	peer        *Proxy // the proxy at the new endpoint, if it is one of ours
	peerBase    int64  // its accepted connections when the MOVING was sent
	peerNegBase int64  // and those that had negotiated

	mu    sync.Mutex
	forms map[string]string // address per endpoint type and base, resolved once
	// Connections told (their latest MOVING is this one), and of them those
	// the client closed before the deadline, after it, and those cut.
	told, closed, late, cut int
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
	// whether the client closed it before the announced time ended
	// (whether it arrived at the new endpoint is for the proxy there to
	// see: [Proxy.MovingReport]), LeftAfter how long after the MOVING it
	// did, and Cut whether the proxy cut it.
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
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.MaxArgs == 0 {
		opts.MaxArgs = DefaultMaxArgs
	}
	return &Proxy{listen: listen, upstream: upstream, opts: opts, open: make(map[*client]struct{}), peers: make(map[string]*Proxy)}
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
	cfg := respproxy.Config{
		Dial: p.dial, Open: p.openConn, Handle: p.handle, Closed: p.connClosed, Refused: p.refused,
		MaxConns: max(p.opts.MaxConns, 0), IdleTimeout: max(p.opts.IdleTimeout, 0), MaxArgs: max(p.opts.MaxArgs, 0),
	}
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

// Moving announces that the server's endpoint moves to endpoint within
// seconds, to every connection that negotiated notifications, and returns
// how many it told. endpoint is "host:port", a list of forms per endpoint
// type ("internal-ip=10.0.0.5:6391,external-fqdn=b.example.com:6391", see
// [ParseEndpoint]), or "" or "none" for "this address, later". Each
// connection gets the address in the form it asked for with
// moving-endpoint-type, and a null endpoint only if it asked for "none".
// Connections that negotiate while the MOVING is active get it too; unless
// ProxyOptions.NoAutoCut is set, connections still open when the time ends
// are cut. An endpoint that does not parse is sent as given.
func (p *Proxy) Moving(endpoint string, seconds int) int {
	ep, err := ParseEndpoint(endpoint)
	if err != nil {
		ep = Endpoint{Addr: endpoint}
	}
	return p.MovingTo(ep, seconds)
}

// MovingTo is [Proxy.Moving] with a parsed endpoint.
func (p *Proxy) MovingTo(ep Endpoint, seconds int) int {
	seconds = max(seconds, 0)
	now := time.Now()
	m := &movingState{seq: p.seq.Add(1), target: ep, at: now, deadline: now.Add(time.Duration(seconds) * time.Second), forms: map[string]string{}}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0
	}
	if ep.IsZero() {
		m.peer = p // the clients come back here
	} else {
		for _, a := range ep.addrs() {
			if q := p.peers[a]; q != nil {
				m.peer = q
			}
		}
	}
	if m.peer != nil {
		m.peerBase, m.peerNegBase = m.peer.accepted.Load(), m.peer.negotiated.Load()
	}
	p.moving, p.last = m, m
	if !p.opts.NoAutoCut {
		p.timers = append(p.timers, time.AfterFunc(time.Duration(seconds)*time.Second, func() { p.expireMoving(m) }))
	}
	p.mu.Unlock()
	n := 0
	for _, c := range p.conns() {
		if c.notifyMoving(p, m, seconds) {
			n++
		}
	}
	p.opts.Logger.Info("sent MOVING", "seq", m.seq, "endpoint", ep.String(), "seconds", seconds, "clients", n)
	return n
}

// AddPeer tells p that q serves another endpoint in this process: the
// report of a MOVING to q's address ([Proxy.MovingReport]) then counts
// the connections that actually arrived at q.
func (p *Proxy) AddPeer(q *Proxy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.peers[q.Addr()] = q
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

// Clients reports the open client connections and the most recently
// closed ones (at most 256; older closed ones are forgotten), by ID.
func (p *Proxy) Clients() []ClientInfo {
	p.mu.Lock()
	all := make([]*client, 0, len(p.open)+len(p.closedList))
	all = append(all, p.closedList...)
	for c := range p.open {
		all = append(all, c)
	}
	p.mu.Unlock()
	out := make([]ClientInfo, 0, len(all))
	for _, c := range all {
		out = append(out, c.info())
	}
	slices.SortFunc(out, func(a, b ClientInfo) int { return a.ID - b.ID })
	return out
}

// MovingReport is what came of a MOVING.
type MovingReport struct {
	// Seq and Endpoint identify the MOVING; Sent and Deadline are when it
	// was sent and when its announced time ends.
	Seq      int64
	Endpoint string
	Sent     time.Time
	Deadline time.Time
	// Told counts the connections sent the MOVING (replays included).
	Told int
	// Closed counts those the client closed before the deadline: it left,
	// but leaving is not arriving (a connection replaced rather than handed
	// off closes too).
	Closed int
	// Cut counts those the proxy closed (still open at the deadline, or
	// [Proxy.Cut]); Open those still open.
	Cut, Open int
	// Arrived counts the connections accepted at the new endpoint since
	// the MOVING, and ArrivedNegotiated those of them that negotiated
	// notifications, when the new endpoint is a peer proxy ([Proxy.AddPeer])
	// or, for a null endpoint, this proxy; Arrived is -1 when it cannot be
	// known.
	Arrived, ArrivedNegotiated int
}

// MovingReport reports the latest MOVING; ok is false if none was sent.
func (p *Proxy) MovingReport() (r MovingReport, ok bool) {
	p.mu.Lock()
	m := p.last
	p.mu.Unlock()
	if m == nil {
		return MovingReport{}, false
	}
	r = MovingReport{Seq: m.seq, Endpoint: m.target.String(), Sent: m.at, Deadline: m.deadline, Arrived: -1}
	m.mu.Lock()
	r.Told, r.Closed, r.Cut = m.told, m.closed, m.cut
	r.Open = m.told - m.closed - m.cut - m.late
	m.mu.Unlock()
	if q := m.peer; q != nil {
		r.Arrived = int(q.accepted.Load() - m.peerBase)
		r.ArrivedNegotiated = int(q.negotiated.Load() - m.peerNegBase)
	}
	return r, true
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
		if c.notify(typ, frame) {
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

// refused is the engine's Refused: a connection closed by a limit.
func (p *Proxy) refused(addr net.Addr, reason string) {
	p.opts.Logger.Warn("closing client connection", "addr", addr.String(), "reason", reason)
}

// openConn is the engine's Open: it numbers the connection and starts its
// record.
func (p *Proxy) openConn(conn *respproxy.Conn) any {
	c := &client{conn: conn, addr: conn.RemoteAddr().String(), local: conn.LocalAddr().String()}
	p.accepted.Add(1)
	p.mu.Lock()
	p.nextID++
	c.id = p.nextID
	p.open[c] = struct{}{}
	p.mu.Unlock()
	return c
}

// handle is the engine's Handle: the proxy answers CLIENT
// MAINT_NOTIFICATIONS itself and forwards everything else. The answer
// waits for the replies to the commands before it: a client that pipelines
// HELLO 3 and the handshake (node-redis does) is RESP3 by then.
func (p *Proxy) handle(conn *respproxy.Conn, args []string) bool {
	if len(args) < 2 || !strings.EqualFold(args[0], "CLIENT") || !strings.EqualFold(args[1], "MAINT_NOTIFICATIONS") {
		return false
	}
	c := conn.State().(*client)
	conn.AtTurn(func() { p.handshake(c, args) })
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

// connClosed is the engine's Closed: it settles the connection's outcome
// and moves it to the short list of closed connections.
func (p *Proxy) connClosed(conn *respproxy.Conn) {
	c := conn.State().(*client)
	c.mu.Lock()
	c.closed = true
	m := c.moving
	if m != nil && !c.cut && time.Now().Before(m.deadline) {
		c.left, c.leftAfter = true, time.Since(c.movingAt)
	}
	left, cut, after := c.left, c.cut, c.leftAfter
	c.mu.Unlock()
	if m != nil {
		m.mu.Lock()
		switch {
		case cut:
			m.cut++
		case left:
			m.closed++
		default:
			m.late++
		}
		m.mu.Unlock()
	}
	p.mu.Lock()
	delete(p.open, c)
	p.closedList = append(p.closedList, c)
	if len(p.closedList) > keepClosed {
		// Forget the oldest; copy so the backing array does not keep them.
		p.closedList = append([]*client(nil), p.closedList[len(p.closedList)-keepClosed:]...)
	}
	p.mu.Unlock()
	if left {
		p.opts.Logger.Info("client closed its connection after MOVING (left)", "client", c.id, "after", after.Round(time.Microsecond).String())
	}
}

// client is what the proxy records about one client connection; it is
// the connection's respproxy state. Lock order: client.mu, then
// movingState.mu, Proxy.mu or the engine's.
type client struct {
	id    int
	conn  *respproxy.Conn
	addr  string // the client's address
	local string // the address the client reached

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
		ID: c.id, Addr: c.addr,
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
func (c *client) notify(typ string, frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.negotiated || c.closed || !c.conn.Send(frame) {
		return false
	}
	c.notes = append(c.notes, typ)
	return true
}

// notifyMoving sends a MOVING, with the endpoint in the form the
// connection asked for, if it negotiated notifications.
func (c *client) notifyMoving(p *Proxy, m *movingState, seconds int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.negotiated || c.closed {
		return false
	}
	if !c.conn.Send(movingFrame(m.seq, seconds, p.endpointFor(m, c.endpoint, c.local))) {
		return false
	}
	c.noteMovingLocked(m)
	return true
}

// noteMovingLocked records that the connection was told m. c.mu is held.
func (c *client) noteMovingLocked(m *movingState) {
	c.notes = append(c.notes, "MOVING")
	if c.moving != m {
		c.moving, c.movingAt = m, time.Now()
		m.mu.Lock()
		m.told++
		m.mu.Unlock()
	}
}

// handshake answers CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type T]
// when its turn comes. c.mu is held throughout, so that a concurrent
// broadcast sees the connection either before it negotiated or after its
// answer is queued.
func (p *Proxy) handshake(c *client, args []string) {
	c.mu.Lock()
	var reply []byte
	var notes []string
	var replay *movingState
	switch {
	case len(args) >= 3 && strings.EqualFold(args[2], "ON") && !c.conn.RESP3():
		reply = []byte("-ERR maintenance notifications need RESP3 (HELLO 3)\r\n")
	case len(args) >= 3 && strings.EqualFold(args[2], "ON"):
		typ, err := endpointTypeArg(args[3:])
		if err != nil {
			reply = []byte("-ERR " + err.Error() + "\r\n")
			break
		}
		if !c.negotiated {
			p.negotiated.Add(1)
		}
		c.negotiated, c.endpoint = true, typ
		reply = []byte("+OK\r\n")
		p.mu.Lock()
		// A server keeps telling new connections that it is moving; a null
		// endpoint means "this address, later": replaying it to the
		// connections that come back would only make them go round again.
		if m := p.moving; m != nil && !m.target.IsZero() && time.Now().Before(m.deadline) {
			replay = m
		}
		if r := p.relax; r != nil {
			reply = append(reply, r.frame...)
			notes = append(notes, r.typ)
		}
		p.mu.Unlock()
	case len(args) >= 3 && strings.EqualFold(args[2], "OFF"):
		c.negotiated = false
		reply = []byte("+OK\r\n")
	default:
		reply = []byte("-ERR syntax error: CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type <type>]\r\n")
	}
	if replay != nil {
		left := int(time.Until(replay.deadline).Round(time.Second) / time.Second)
		reply = append(reply, movingFrame(replay.seq, left, p.endpointFor(replay, c.endpoint, c.local))...)
	}
	sent := c.conn.Send(reply)
	if sent {
		c.notes = append(c.notes, notes...)
		if replay != nil {
			c.noteMovingLocked(replay)
		}
	}
	negotiated, ep := c.negotiated, c.endpoint
	c.mu.Unlock()
	if sent && negotiated {
		p.opts.Logger.Info("client negotiated maintenance notifications", "client", c.id, "addr", c.addr, "endpoint_type", ep)
	}
}

// endpointTypeArg reads the handshake's options: "moving-endpoint-type T"
// with T one of the types Redis defines. Without it the type is "" (the
// address as announced).
func endpointTypeArg(opts []string) (string, error) {
	typ := ""
	for i := 0; i < len(opts); i += 2 {
		if !strings.EqualFold(opts[i], "moving-endpoint-type") || i+1 >= len(opts) {
			return "", fmt.Errorf("syntax error: unknown option %q", opts[i])
		}
		typ = strings.ToLower(opts[i+1])
		if !slices.Contains(endpointTypes, typ) {
			return "", fmt.Errorf("invalid moving-endpoint-type %q (one of %s)", opts[i+1], strings.Join(endpointTypes, ", "))
		}
	}
	return typ, nil
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

// movingFrame is MOVING <seq> <seconds> <endpoint | null> ("" for null).
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
