package redistest

import (
	"github.com/redisfactory/redisfactory/internal/respproxy"

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
//
// The connection handling is internal/respproxy's, shared with the
// maintenance proxy (sch.Proxy); this type adds the faults and the record.
type Proxy struct {
	ln       net.Listener
	srv      *respproxy.Proxy
	upstream atomic.Value // string

	mu       sync.Mutex
	total    int
	drop     int
	rules    []*Injection
	commands [][]string
	hooks    []func(cmd []string)
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
	p := &Proxy{ln: ln}
	p.upstream.Store(upstreamAddr)
	p.srv = respproxy.Serve(ln, respproxy.Config{
		Dial: p.dial,
		Open: func(*respproxy.Conn) any {
			p.mu.Lock()
			p.total++
			p.mu.Unlock()
			return nil
		},
		Observe: p.record,
		Handle:  p.inject,
	})
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
func (p *Proxy) Blackhole(on bool) { p.srv.Blackhole(on) }

// BlackholeOpen swallows, from now on, the traffic of the client
// connections open now, as Blackhole does, without closing them: a client
// sees those connections go silent (no FIN, no RST), while connections
// accepted later are forwarded normally. It returns how many connections
// it blackholed.
func (p *Proxy) BlackholeOpen() int {
	conns := p.srv.Conns()
	for _, c := range conns {
		c.Blackhole(true)
	}
	return len(conns)
}

// Delay holds every frame received from the server for d before passing it
// on (frames of one connection are delayed one after the other). Injected
// replies are not delayed but stay in order. Zero disables the delay.
func (p *Proxy) Delay(d time.Duration) { p.srv.Delay(d) }

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
	conns := p.srv.Conns()
	for _, c := range conns {
		c.Close()
	}
	return len(conns)
}

// ActiveConns returns the number of open client connections.
func (p *Proxy) ActiveConns() int { return p.srv.Len() }

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
	frame = append([]byte(nil), frame...) // shared by the connections, which only read it
	conns := p.srv.Conns()
	for _, c := range conns {
		c.Send(frame)
	}
	return len(conns)
}

// Close stops the proxy, closes all connections and waits for its
// goroutines. It is called automatically when the test ends.
func (p *Proxy) Close() { _ = p.srv.Close() }

// errDropped refuses a connection that [Proxy.DropNext] asked to drop.
var errDropped = errors.New("redistest: connection dropped")

// dial opens the server connection for a new client connection, unless the
// connection is to be dropped: then the engine closes it before the server
// is contacted.
func (p *Proxy) dial() (net.Conn, error) {
	p.mu.Lock()
	drop := p.drop > 0
	if drop {
		p.drop--
	}
	p.mu.Unlock()
	if drop {
		return nil, errDropped
	}
	return net.DialTimeout("tcp", p.upstream.Load().(string), 5*time.Second)
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

// inject answers args with the reply of the first active rule matching
// them, using up one of its times, and reports whether one matched.
func (p *Proxy) inject(c *respproxy.Conn, args []string) bool {
	p.mu.Lock()
	rules := slices.Clone(p.rules)
	p.mu.Unlock()
	for _, in := range rules {
		p.mu.Lock()
		active := in.remaining != 0
		p.mu.Unlock()
		if !active || !in.match(args) { // match runs unlocked: it is the caller's code
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
		c.Reply(in.reply)
		return true
	}
	return false
}
