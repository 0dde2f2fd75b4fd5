package redistest

import (
	"github.com/redisfactory/redisfactory/internal/resp"

	"bufio"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a RESP-aware TCP fault proxy between clients and one Redis
// server (plain TCP only; use it in front of non-TLS servers). It parses
// client commands so it can observe them and answer some of them itself
// ([Proxy.InjectReply]), and it parses server frames (RESP2 and RESP3) so
// injected replies keep their place in pipelines.
//
// All methods are safe for concurrent use while traffic flows.
//
// Reply ordering is exact for request/response traffic, including RESP3
// push frames ('>', which are forwarded but not counted as replies) and
// attributes ('|', kept with the reply they precede). Once a connection
// enters RESP2 pub/sub, MONITOR or CLIENT REPLY OFF/SKIP mode the proxy can
// no longer pair replies with commands; from then on it forwards server
// frames as they come and writes injected replies as soon as the replies
// already expected have been delivered.
type Proxy struct {
	ln        net.Listener
	upstream  atomic.Value // string
	blackhole atomic.Bool
	delay     atomic.Int64 // time.Duration

	mu       sync.Mutex
	closed   bool
	conns    map[*proxyConn]struct{}
	total    int
	drop     int
	rules    []*Injection
	commands [][]string
	hooks    []func(cmd []string)

	wg sync.WaitGroup
}

// Injection is a rule registered with [Proxy.InjectReply].
type Injection struct {
	p         *Proxy
	match     func(cmd []string) bool
	reply     []byte
	remaining int // < 0: unlimited
	hits      int
}

// Hits returns how many times the rule has answered a command.
func (in *Injection) Hits() int {
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	return in.hits
}

// Remove disables the rule.
func (in *Injection) Remove() {
	in.p.mu.Lock()
	defer in.p.mu.Unlock()
	in.remaining = 0
}

// NewProxy starts a proxy on a free loopback port forwarding to
// upstreamAddr ("host:port"). It is closed when the test ends.
func NewProxy(t testing.TB, upstreamAddr string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{ln: ln, conns: make(map[*proxyConn]struct{})}
	p.upstream.Store(upstreamAddr)
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's listening address ("127.0.0.1:port").
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetUpstream changes the server that new connections are forwarded to;
// existing connections keep their server.
func (p *Proxy) SetUpstream(addr string) { p.upstream.Store(addr) }

// Blackhole makes the proxy swallow all traffic in both directions while on
// is true, without closing any socket: client commands are read (and
// observed) but neither forwarded nor answered, server frames are read and
// discarded, injected replies are not sent. Clients see read timeouts; a
// command sent while the blackhole is on never reaches the server. New
// connections are accepted but their traffic is swallowed too.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// Delay holds every frame received from the server for d before passing it
// on (frames of one connection are delayed one after the other). Injected
// replies are not delayed but stay in order. Zero disables the delay.
func (p *Proxy) Delay(d time.Duration) { p.delay.Store(int64(d)) }

// DropNext makes the proxy close the next n accepted connections
// immediately, before contacting the server.
func (p *Proxy) DropNext(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop += n
}

// CutAll closes every current client connection (and its server
// connection), like a server dropping its clients, and returns how many it
// closed. New connections are accepted normally.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return len(conns)
}

// ActiveConns returns the number of open client connections.
func (p *Proxy) ActiveConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// TotalConns returns the number of client connections forwarded so far
// (dropped ones excluded).
func (p *Proxy) TotalConns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// InjectReply makes the proxy answer client commands for which match
// returns true with reply (raw RESP, e.g. "-LOADING Redis is loading the
// dataset in memory\r\n") instead of forwarding them, times times (times < 0:
// unlimited). The reply is delivered in order: after the replies of all
// commands the connection sent before. Rules are tried in registration order;
// the first active matching rule wins. match receives the command's
// arguments (name as sent by the client) and must not call Proxy methods.
func (p *Proxy) InjectReply(match func(cmd []string) bool, reply []byte, times int) *Injection {
	in := &Injection{p: p, match: match, reply: append([]byte(nil), reply...), remaining: times}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, in)
	return in
}

// MatchCommand returns a matcher for [Proxy.InjectReply] that matches
// commands whose name is one of names (case-insensitive).
func MatchCommand(names ...string) func(cmd []string) bool {
	return func(cmd []string) bool {
		for _, n := range names {
			if len(cmd) > 0 && strings.EqualFold(cmd[0], n) {
				return true
			}
		}
		return false
	}
}

// OnCommand registers fn to be called with every command the proxy reads
// from a client (before blackholing or injection). fn runs on the
// connection's goroutine, concurrently with other connections, without any
// proxy lock held; it must be safe for concurrent use and should not block,
// since the connection's traffic waits for it.
func (p *Proxy) OnCommand(fn func(cmd []string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hooks = append(p.hooks, fn)
}

// Commands returns a copy of every command the proxy has read from clients,
// in arrival order (interleaved across connections).
func (p *Proxy) Commands() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]string, len(p.commands))
	copy(out, p.commands)
	return out
}

// Count returns how many commands named name (case-insensitive) the proxy
// has read from clients.
func (p *Proxy) Count(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.commands {
		if strings.EqualFold(c[0], name) {
			n++
		}
	}
	return n
}

// ResetCommands forgets the commands recorded so far.
func (p *Proxy) ResetCommands() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.commands = nil
}

// SendToClients writes frame (raw RESP, e.g. a RESP3 push
// ">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n") to every current client
// connection, between two frames, and returns the number of connections.
func (p *Proxy) SendToClients(frame []byte) int {
	p.mu.Lock()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		c.out = append(c.out, append([]byte(nil), frame...))
		c.cond.Signal()
		c.mu.Unlock()
	}
	return len(conns)
}

// Close stops the proxy, closes all connections and waits for its
// goroutines. It is called automatically when the test ends.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	_ = p.ln.Close()
	conns := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	p.wg.Wait()
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		drop := p.drop > 0
		if drop {
			p.drop--
		}
		p.mu.Unlock()
		if drop {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// record stores a client command and runs the OnCommand hooks.
func (p *Proxy) record(args []string) {
	p.mu.Lock()
	p.commands = append(p.commands, args)
	hooks := slices.Clone(p.hooks)
	p.mu.Unlock()
	for _, h := range hooks {
		h(args)
	}
}

// injection returns the reply of the first active rule matching args, and
// uses up one of its times.
func (p *Proxy) injection(args []string) (reply []byte, ok bool) {
	p.mu.Lock()
	rules := slices.Clone(p.rules)
	p.mu.Unlock()
	for _, in := range rules {
		p.mu.Lock()
		active := in.remaining != 0
		p.mu.Unlock()
		if !active || !in.match(args) {
			continue
		}
		p.mu.Lock()
		if in.remaining == 0 { // used up concurrently
			p.mu.Unlock()
			continue
		}
		if in.remaining > 0 {
			in.remaining--
		}
		in.hits++
		p.mu.Unlock()
		return in.reply, true
	}
	return nil, false
}

// proxyConn is one client connection and its server connection.
type proxyConn struct {
	p      *Proxy
	client net.Conn
	server net.Conn
	done   chan struct{}
	once   sync.Once

	mu       sync.Mutex
	cond     *sync.Cond
	out      [][]byte  // frames waiting to be written to the client
	pending  []pending // replies the client is waiting for, in order
	closed   bool
	eof      bool // server closed: flush out, then close
	resp3    bool
	unsynced bool
}

// pending is an expected reply: from the server (injected == nil) or
// injected by the proxy.
type pending struct {
	cmd      string
	injected []byte
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.upstream.Load().(string), 5*time.Second)
	if err != nil {
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
	p.conns[c] = struct{}{}
	p.total++
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.serverLoop() }()
	go func() { defer wg.Done(); c.writeLoop() }()
	c.clientLoop()
	wg.Wait()
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.cond.Broadcast()
		c.mu.Unlock()
		_ = c.client.Close()
		_ = c.server.Close()
		close(c.done)
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// clientLoop reads commands from the client and forwards, swallows or
// answers them.
func (c *proxyConn) clientLoop() {
	defer c.close()
	r := bufio.NewReaderSize(c.client, 32<<10)
	for {
		args, raw, err := resp.ReadCommand(r)
		if err != nil {
			return
		}
		if len(args) == 0 { // Redis ignores empty commands: no reply
			if !c.p.blackhole.Load() {
				if _, err := c.server.Write(raw); err != nil {
					return
				}
			}
			continue
		}
		c.p.record(args)
		if c.p.blackhole.Load() {
			continue
		}
		reply, inject := c.p.injection(args)
		c.mu.Lock()
		if inject {
			if len(c.pending) == 0 {
				c.out = append(c.out, reply)
				c.cond.Signal()
			} else {
				c.pending = append(c.pending, pending{injected: reply})
			}
			c.mu.Unlock()
			continue
		}
		if name := strings.ToUpper(args[0]); c.expectsReply(name, args) {
			c.pending = append(c.pending, pending{cmd: name})
		}
		c.mu.Unlock()
		if _, err := c.server.Write(raw); err != nil {
			return
		}
	}
}

// expectsReply reports whether the command gets exactly one reply frame
// (pushes excluded), switching the connection to unsynced mode when the
// number of replies becomes unknowable. c.mu must be held.
func (c *proxyConn) expectsReply(name string, args []string) bool {
	if c.unsynced {
		return false
	}
	switch name {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE":
		// RESP3 confirms with push frames; RESP2 with one reply per channel
		// and then delivers messages as ordinary arrays.
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

// serverLoop reads frames from the server and queues them for the client,
// releasing injected replies that were waiting for them.
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
		if typ == '|' { // attribute: belongs to the next frame
			attr = append(attr, frame...)
			continue
		}
		if attr != nil {
			frame = append(attr, frame...)
			attr = nil
		}
		if d := time.Duration(c.p.delay.Load()); d > 0 {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-c.done:
				timer.Stop()
				return
			}
		}
		deliver := !c.p.blackhole.Load()
		c.mu.Lock()
		if typ != '>' && len(c.pending) > 0 {
			head := c.pending[0]
			c.pending = c.pending[1:]
			switch {
			case head.cmd == "HELLO" && typ == '%':
				c.resp3 = true
			case head.cmd == "HELLO" && typ == '*', head.cmd == "RESET":
				c.resp3 = false
			}
			if deliver {
				c.out = append(c.out, frame)
			}
			for len(c.pending) > 0 && c.pending[0].injected != nil {
				if deliver {
					c.out = append(c.out, c.pending[0].injected)
				}
				c.pending = c.pending[1:]
			}
		} else if deliver {
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
