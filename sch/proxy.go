package sch

import (
	"bufio"
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

	"github.com/redisfactory/redisfactory/internal/resp"
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
	seq     atomic.Int64
	started atomic.Bool

	mu     sync.Mutex
	closed bool
	conns  map[*proxyConn]struct{}
	all    []*proxyConn // every connection ever accepted, for Clients
	nextID int
	moving *movingState // the active MOVING, or nil
	relax  *relaxState  // the maintenance under way (MIGRATING, …), or nil
	timers []*time.Timer

	wg sync.WaitGroup
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
	return &Proxy{listen: listen, upstream: upstream, opts: opts, conns: make(map[*proxyConn]struct{})}
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
	p.wg.Add(1)
	go p.acceptLoop()
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
	conns := p.snapshotLocked()
	p.mu.Unlock()
	var err error
	if p.ln != nil {
		err = p.ln.Close()
	}
	for _, c := range conns {
		c.mu.Lock()
		c.cut = true
		c.mu.Unlock()
		c.close()
	}
	p.wg.Wait()
	return err
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
	conns := p.snapshotLocked()
	p.mu.Unlock()
	frame := movingFrame(seq, seconds, endpoint)
	n := 0
	for _, c := range conns {
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
	p.mu.Lock()
	conns := p.snapshotLocked()
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.cut = true
		c.mu.Unlock()
		c.close()
	}
	p.opts.Logger.Info("cut client connections", "count", len(conns))
	return len(conns)
}

// Clients reports every client connection the proxy has accepted, in order.
func (p *Proxy) Clients() []ClientInfo {
	p.mu.Lock()
	all := append([]*proxyConn(nil), p.all...)
	p.mu.Unlock()
	out := make([]ClientInfo, 0, len(all))
	for _, c := range all {
		out = append(out, c.info())
	}
	return out
}

// OpenConns returns the number of open client connections.
func (p *Proxy) OpenConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
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
	p.mu.Lock()
	conns := p.snapshotLocked()
	p.mu.Unlock()
	n := 0
	for _, c := range conns {
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
	conns := p.snapshotLocked()
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		told := c.moving == m
		if told {
			c.cut = true
		}
		c.mu.Unlock()
		if told {
			p.opts.Logger.Warn("client did not move before the announced time ended; cutting it", "client", c.id, "addr", c.client.RemoteAddr().String())
			c.close()
		}
	}
}

func (p *Proxy) snapshotLocked() []*proxyConn {
	out := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream, p.opts.DialTimeout)
	if err != nil {
		p.opts.Logger.Warn("cannot reach upstream; closing client", "upstream", p.upstream, "err", err)
		_ = client.Close()
		return
	}
	c := &proxyConn{p: p, client: client, server: up, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = client.Close()
		_ = up.Close()
		return
	}
	p.nextID++
	c.id = p.nextID
	p.conns[c] = struct{}{}
	p.all = append(p.all, c)
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.serverLoop() }()
	go func() { defer wg.Done(); c.writeLoop() }()
	c.clientLoop()
	wg.Wait()
}

// proxyConn is one client connection and its upstream connection.
type proxyConn struct {
	p      *Proxy
	id     int
	client net.Conn
	server net.Conn
	done   chan struct{}
	once   sync.Once

	mu         sync.Mutex
	cond       *sync.Cond
	out        [][]byte  // frames waiting to be written to the client
	pending    []pending // replies the client waits for, in order
	closed     bool
	eof        bool
	resp3      bool
	unsynced   bool
	negotiated bool
	endpoint   string
	notes      []string
	moving     *movingState
	movingAt   time.Time
	left       bool
	leftAfter  time.Duration
	cut        bool
}

type pending struct {
	cmd      string
	injected []byte
}

func (c *proxyConn) info() ClientInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ClientInfo{
		ID: c.id, Addr: c.client.RemoteAddr().String(),
		Negotiated: c.negotiated, EndpointType: c.endpoint, Open: !c.closed,
		Notifications: append([]string(nil), c.notes...),
		Moving:        c.moving != nil, Left: c.left, LeftAfter: c.leftAfter, Cut: c.cut,
	}
}

// notify queues a notification if the connection negotiated them.
func (c *proxyConn) notify(typ string, frame []byte, m *movingState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.negotiated || c.closed {
		return false
	}
	c.queueLocked(typ, frame, m)
	return true
}

func (c *proxyConn) queueLocked(typ string, frame []byte, m *movingState) {
	c.out = append(c.out, frame)
	c.notes = append(c.notes, typ)
	if m != nil && c.moving == nil {
		c.moving, c.movingAt = m, time.Now()
	}
	c.cond.Signal()
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		if c.moving != nil && !c.cut {
			c.left, c.leftAfter = true, time.Since(c.movingAt)
		}
		left, after, id := c.left, c.leftAfter, c.id
		c.cond.Broadcast()
		c.mu.Unlock()
		_ = c.client.Close()
		_ = c.server.Close()
		close(c.done)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
		if left {
			c.p.opts.Logger.Info("client left after MOVING (handed off)", "client", id, "after", after.Round(time.Microsecond).String())
		}
	})
}

// clientLoop reads commands from the client and forwards or answers them.
func (c *proxyConn) clientLoop() {
	defer c.close()
	r := bufio.NewReaderSize(c.client, 32<<10)
	for {
		args, raw, err := resp.ReadCommand(r)
		if err != nil {
			return
		}
		if len(args) == 0 {
			if _, err := c.server.Write(raw); err != nil {
				return
			}
			continue
		}
		name := strings.ToUpper(args[0])
		if name == "CLIENT" && len(args) >= 2 && strings.EqualFold(args[1], "MAINT_NOTIFICATIONS") {
			c.handshake(args)
			continue
		}
		if name == "CLUSTER" && len(args) >= 2 {
			name += " " + strings.ToUpper(args[1])
		}
		c.mu.Lock()
		if c.expectsReplyLocked(name, args) {
			c.pending = append(c.pending, pending{cmd: name})
		}
		c.mu.Unlock()
		if _, err := c.server.Write(raw); err != nil {
			return
		}
	}
}

// handshake answers CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type T].
func (c *proxyConn) handshake(args []string) {
	var reply []byte
	var replay *movingState
	var relax *relaxState
	c.mu.Lock()
	switch {
	case len(args) >= 3 && strings.EqualFold(args[2], "ON") && !c.resp3:
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
		c.p.mu.Lock()
		// A null endpoint means "this address, later": replaying it to the
		// connections that come back would only make them go round again.
		if m := c.p.moving; m != nil && m.endpoint != "" && time.Now().Before(m.deadline) {
			replay = m
		}
		relax = c.p.relax
		c.p.mu.Unlock()
	case len(args) >= 3 && strings.EqualFold(args[2], "OFF"):
		c.negotiated = false
		reply = []byte("+OK\r\n")
	default:
		reply = []byte("-ERR syntax error: CLIENT MAINT_NOTIFICATIONS ON|OFF [moving-endpoint-type <type>]\r\n")
	}
	if len(c.pending) == 0 || c.unsynced {
		c.out = append(c.out, reply)
		c.cond.Signal()
	} else {
		c.pending = append(c.pending, pending{injected: reply})
	}
	negotiated, id, ep := c.negotiated, c.id, c.endpoint
	if relax != nil {
		if len(c.pending) == 0 || c.unsynced {
			c.queueLocked(relax.typ, relax.frame, nil)
		} else {
			c.pending = append(c.pending, pending{injected: relax.frame})
			c.notes = append(c.notes, relax.typ)
		}
	}
	if replay != nil {
		// A server keeps telling new connections that it is moving.
		left := int(time.Until(replay.deadline).Round(time.Second) / time.Second)
		frame := movingFrame(replay.seq, left, replay.endpoint)
		if len(c.pending) == 0 || c.unsynced {
			c.queueLocked("MOVING", frame, replay)
		} else {
			c.pending = append(c.pending, pending{injected: frame})
			c.notes = append(c.notes, "MOVING")
			c.moving, c.movingAt = replay, time.Now()
		}
	}
	c.mu.Unlock()
	if negotiated {
		c.p.opts.Logger.Info("client negotiated maintenance notifications", "client", id, "addr", c.client.RemoteAddr().String(), "endpoint_type", ep)
	}
}

// expectsReplyLocked reports whether the command gets exactly one reply
// frame (pushes excluded), switching to unsynced mode when the number of
// replies becomes unknowable.
func (c *proxyConn) expectsReplyLocked(name string, args []string) bool {
	if c.unsynced {
		return false
	}
	switch name {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE":
		if !c.resp3 {
			c.unsynced = true
		}
		return false
	case "MONITOR":
		c.unsynced = true
		return false
	case "CLIENT":
		if len(args) >= 3 && strings.EqualFold(args[1], "REPLY") && !strings.EqualFold(args[2], "ON") {
			c.unsynced = true
			return false
		}
	}
	return true
}

// serverLoop reads frames from the server and queues them for the client.
func (c *proxyConn) serverLoop() {
	defer func() {
		c.mu.Lock()
		c.eof = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c.server, 32<<10)
	var attr []byte
	for {
		frame, typ, err := resp.ReadFrame(r, nil)
		if err != nil {
			return
		}
		if typ == '|' {
			attr = append(attr, frame...)
			continue
		}
		if attr != nil {
			frame = append(attr, frame...)
			attr = nil
		}
		c.mu.Lock()
		if typ != '>' && len(c.pending) > 0 {
			head := c.pending[0]
			c.pending = c.pending[1:]
			switch {
			case head.cmd == "HELLO" && typ == '%':
				c.resp3 = true
			case head.cmd == "HELLO" && typ == '*', head.cmd == "RESET":
				c.resp3 = false
			case head.cmd == "CLUSTER SLOTS" && len(c.p.opts.Rewrite) > 0:
				frame = rewriteSlots(frame, c.p.opts.Rewrite)
			}
			c.out = append(c.out, frame)
			for len(c.pending) > 0 && c.pending[0].injected != nil {
				c.out = append(c.out, c.pending[0].injected)
				c.pending = c.pending[1:]
			}
		} else {
			c.out = append(c.out, frame)
		}
		c.cond.Signal()
		c.mu.Unlock()
	}
}

// writeLoop writes queued frames to the client.
func (c *proxyConn) writeLoop() {
	defer c.close()
	for {
		c.mu.Lock()
		for len(c.out) == 0 && !c.closed && !c.eof {
			c.cond.Wait()
		}
		if c.closed || (len(c.out) == 0 && c.eof) {
			c.mu.Unlock()
			return
		}
		bufs := net.Buffers(c.out)
		c.out = nil
		c.mu.Unlock()
		if _, err := bufs.WriteTo(c.client); err != nil {
			return
		}
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
