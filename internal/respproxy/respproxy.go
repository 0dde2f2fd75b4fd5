// Package respproxy is the engine shared by the project's RESP-aware TCP
// proxies: redistest.Proxy (the test fault proxy) and sch.Proxy (the
// maintenance proxy). It pairs every accepted client connection with a
// server connection, reads client commands and server frames (RESP2 and
// RESP3), and keeps one ordered reply queue per connection, so that replies
// a proxy makes up itself (an injected error, a handshake answer) keep
// their place among the server's replies in pipelines.
//
// What a proxy does with a command is up to its [Config] hooks; the engine
// handles the ordering. RESP3 push frames ('>') are forwarded as they come
// and never count as replies; attributes ('|') travel with the frame they
// precede. Once a connection enters RESP2 pub/sub, MONITOR or CLIENT REPLY
// OFF/SKIP mode, replies can no longer be paired with commands: the
// connection becomes "unsynced", server frames are forwarded as they come,
// and local replies are written as soon as the replies already expected
// have been delivered.
package respproxy

import (
	"bufio"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// Config holds the hooks that make a [Proxy] a particular proxy. Only Dial
// is required. Hooks run on connection goroutines, concurrently with other
// connections, and hold up that connection's traffic while they run.
type Config struct {
	// Dial opens the server connection for a newly accepted client
	// connection. On error the client connection is closed; a proxy can use
	// this to refuse connections before contacting the server.
	Dial func() (net.Conn, error)
	// Open, if set, is called for every connection pair before any of its
	// traffic flows; its result is the connection's [Conn.State]. Every
	// Open is matched by one Closed.
	Open func(c *Conn) any
	// Observe, if set, sees every non-empty command read from a client
	// before anything else happens to it, even while blackholed.
	Observe func(cmd []string)
	// Handle, if set, is offered every non-empty command that is not
	// blackholed. It returns true when it has dealt with the command itself
	// (answered it with [Conn.Reply], or chosen to swallow it) and false to
	// forward it to the server.
	Handle func(c *Conn, cmd []string) bool
	// Rewrite, if set, may replace the server's reply to a forwarded command
	// cmd. It runs with the connection's lock held, so that the reply keeps
	// its place: it must be quick and must not call Conn methods.
	Rewrite func(cmd []string, reply []byte) []byte
	// Closed, if set, is called once when a connection pair has been closed.
	// It must not wait for a goroutine that may be calling [Conn.Close].
	Closed func(c *Conn)
}

// Proxy accepts client connections on a listener and serves each as a
// connection pair. It is safe for concurrent use.
type Proxy struct {
	ln        net.Listener
	cfg       Config
	blackhole atomic.Bool
	delay     atomic.Int64 // time.Duration

	mu     sync.Mutex
	closed bool
	conns  map[*Conn]struct{}

	wg sync.WaitGroup
}

// Serve starts serving connections accepted on ln, in the background,
// until [Proxy.Close].
func Serve(ln net.Listener, cfg Config) *Proxy {
	p := &Proxy{ln: ln, cfg: cfg, conns: make(map[*Conn]struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p
}

// Blackhole makes the proxy swallow all traffic in both directions while on
// is true, without closing any socket: commands are read and observed but
// neither handled nor forwarded, server frames and the local replies
// waiting for them are discarded. Frames given to [Conn.Send] still go out.
func (p *Proxy) Blackhole(on bool) { p.blackhole.Store(on) }

// Delay holds every frame received from a server for d before passing it
// on (frames of one connection one after the other); zero disables it.
func (p *Proxy) Delay(d time.Duration) { p.delay.Store(int64(d)) }

// Conns returns the open connection pairs, in no particular order.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*Conn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

// Len returns the number of open connection pairs.
func (p *Proxy) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes the listener and every connection pair, and waits for the
// proxy's goroutines. It is idempotent; it returns the listener's error.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range p.Conns() {
		c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
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
			// Probably out of file descriptors: do not spin.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := p.cfg.Dial()
	if err != nil {
		_ = client.Close()
		return
	}
	c := &Conn{p: p, client: client, server: server, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	// Open runs before the pair is registered, so that nothing (Conns, a
	// concurrent Close) sees a connection whose state is not set yet.
	if p.cfg.Open != nil {
		c.state = p.cfg.Open(c)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.serverLoop() }()
	go func() { defer wg.Done(); c.writeLoop() }()
	c.clientLoop()
	wg.Wait()
}

// Conn is one client connection and its server connection.
type Conn struct {
	p      *Proxy
	client net.Conn
	server net.Conn
	state  any
	done   chan struct{} // closed by Close: stops a delayed serverLoop
	once   sync.Once

	blackhole atomic.Bool // this pair only (see Conn.Blackhole)

	mu       sync.Mutex
	cond     *sync.Cond // signals writeLoop: out grew, or closed/eof
	out      [][]byte   // frames waiting to be written to the client
	pending  []pending  // replies the client waits for, in order
	closed   bool
	eof      bool // the server closed: flush out, then close
	resp3    bool
	unsynced bool
}

// pending is a reply the client waits for: the server's reply to the
// forwarded command cmd, or (cmd == nil) a local reply that must wait for
// the server replies ahead of it. The queue is empty or starts with a
// server reply: local replies are only queued behind one.
type pending struct {
	cmd   []string
	local []byte
}

// State returns what [Config.Open] returned for the connection.
func (c *Conn) State() any { return c.state }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.client.RemoteAddr() }

// RESP3 reports whether the connection has switched to RESP3 (a HELLO 3
// answered by the server, and no RESET or HELLO 2 since).
func (c *Conn) RESP3() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resp3
}

// Send queues frame (raw RESP, normally a push) for the client now,
// between two frames, ahead of replies still awaited. It reports false if
// the connection is closed. frame must not be modified afterwards.
func (c *Conn) Send(frame []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.out = append(c.out, frame)
	c.cond.Signal()
	return true
}

// Reply queues frame (raw RESP; it may hold several frames) as a local
// reply: it reaches the client after the replies of every command the
// client sent before. frame must not be modified afterwards.
func (c *Conn) Reply(frame []byte) {
	if len(frame) == 0 {
		return // nothing to write, and nil marks server replies in pending
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		c.out = append(c.out, frame)
		c.cond.Signal()
	} else {
		c.pending = append(c.pending, pending{local: frame})
	}
}

// Blackhole swallows this pair's traffic as [Proxy.Blackhole] does for
// every pair, while on is true; other pairs, new ones included, are not
// affected.
func (c *Conn) Blackhole(on bool) { c.blackhole.Store(on) }

func (c *Conn) blackholed() bool { return c.p.blackhole.Load() || c.blackhole.Load() }

// Close closes both sockets, then calls [Config.Closed]. It is idempotent.
func (c *Conn) Close() {
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
		if c.p.cfg.Closed != nil {
			c.p.cfg.Closed(c)
		}
	})
}

// clientLoop reads commands from the client and forwards, swallows or
// hands them to Config.Handle.
func (c *Conn) clientLoop() {
	defer c.Close()
	cfg := &c.p.cfg
	r := bufio.NewReaderSize(c.client, 32<<10)
	for {
		args, raw, err := resp.ReadCommand(r)
		if err != nil {
			return
		}
		if len(args) == 0 { // Redis ignores empty commands: no reply
			if !c.blackholed() {
				if _, err := c.server.Write(raw); err != nil {
					return
				}
			}
			continue
		}
		if cfg.Observe != nil {
			cfg.Observe(args)
		}
		if c.blackholed() {
			continue
		}
		if cfg.Handle != nil && cfg.Handle(c, args) {
			continue
		}
		c.mu.Lock()
		if c.expectsReplyLocked(args) {
			c.pending = append(c.pending, pending{cmd: args})
		}
		c.mu.Unlock()
		if _, err := c.server.Write(raw); err != nil {
			return
		}
	}
}

// expectsReplyLocked reports whether the command gets exactly one reply
// frame (pushes excluded), switching the connection to unsynced mode when
// the number of replies becomes unknowable. c.mu must be held.
func (c *Conn) expectsReplyLocked(args []string) bool {
	if c.unsynced {
		return false
	}
	switch strings.ToUpper(args[0]) {
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
// releasing the local replies that were waiting for them.
func (c *Conn) serverLoop() {
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
		deliver := !c.blackholed()
		c.mu.Lock()
		if typ != '>' && len(c.pending) > 0 {
			head := c.pending[0]
			c.pending = c.pending[1:]
			// HELLO's reply is a map in RESP3 and an array in RESP2.
			hello := strings.EqualFold(head.cmd[0], "HELLO")
			switch {
			case hello && typ == '%':
				c.resp3 = true
			case hello && typ == '*', strings.EqualFold(head.cmd[0], "RESET"):
				c.resp3 = false
			}
			if deliver {
				if c.p.cfg.Rewrite != nil {
					frame = c.p.cfg.Rewrite(head.cmd, frame)
				}
				c.out = append(c.out, frame)
			}
			for len(c.pending) > 0 && c.pending[0].cmd == nil {
				if deliver {
					c.out = append(c.out, c.pending[0].local)
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

// writeLoop writes queued frames to the client, several at a time.
func (c *Conn) writeLoop() {
	defer c.Close()
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
