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
//
// Memory per connection is bounded whatever the peers send: a command is
// kept in memory up to [CommandBudget] bytes and streamed to the server
// beyond that; server frames are streamed to the client in pieces; at most
// about [MaxQueued] bytes wait for a client that does not read. The proxy
// then stops reading from that connection's server and, so that the
// server does not pile up replies for it either, from its client: a
// connection's next command is read only once its replies flow again and
// fewer than [MaxInFlight] commands await the server's replies. Closed
// connections are forgotten. [Config.MaxConns] caps the connections,
// [Config.IdleTimeout] closes silent ones and [Config.MaxArgs] caps the
// arguments of a command.
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

// Bounds of one connection's memory.
const (
	// CommandBudget is how much of a client command is kept in memory.
	// The hooks see commands that fit; a larger one (a big value) is
	// streamed to the server as it arrives, Observe seeing the arguments
	// before the first one that did not fit, Handle not consulted.
	CommandBudget = 64 << 10
	// MaxQueued is how many bytes may wait for a client before the proxy
	// stops reading that connection's server and its client.
	MaxQueued = 256 << 10
	// MaxInFlight is how many of a connection's commands may await the
	// server's replies before the proxy reads the next one. It bounds what
	// the server holds for a client that does not read to MaxInFlight
	// replies, whatever it pipelined: the proxy notices the backlog only
	// once the first replies arrive, and the commands read meanwhile are
	// forwarded. Pipelines still flow: once half of the window has been
	// answered, the next commands go to the server.
	MaxInFlight = 64
	// turnCost is what a function waiting in [Conn.AtTurn] counts for
	// against MaxQueued.
	turnCost = 256
	// readBufferSize is the size of each connection's read buffers.
	readBufferSize = 16 << 10
)

// RefusedReply is what a client connection over [Config.MaxConns] reads
// before the proxy closes it (Redis's own words for its maxclients).
const RefusedReply = "-ERR max number of clients reached\r\n"

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
	// Rewrite, if set, may replace the server's reply to a forwarded
	// command; cmd holds the command's first two arguments (each cut to 64
	// bytes), which is what a proxy needs to recognise it. It runs with the
	// connection's lock held, so that the reply keeps its place: it must be
	// quick and must not call Conn methods. The reply is then read whole
	// rather than streamed: set Rewrite only for trusted servers.
	Rewrite func(cmd []string, reply []byte) []byte
	// Closed, if set, is called once when a connection pair has been closed.
	// It must not wait for a goroutine that may be calling [Conn.Close].
	Closed func(c *Conn)
	// Refused, if set, is told about every connection closed by a limit:
	// reason is "max connections", "idle" or a protocol error.
	Refused func(client net.Addr, reason string)
	// MaxConns caps the open connection pairs; a client over the cap reads
	// [RefusedReply] and is closed. 0 means no cap.
	MaxConns int
	// IdleTimeout closes a connection whose client has sent nothing for
	// that long while it waits for no reply and is not subscribed (as
	// Redis's timeout). A client that stalls in the middle of a command
	// for that long is closed too. 0 means never.
	IdleTimeout time.Duration
	// MaxArgs caps the arguments of one command: a client that announces
	// more reads "-ERR Protocol error: invalid multibulk length" (Redis's
	// words) and is closed, before anything reaches the server. 0 means
	// the reader's own bound, 2^24.
	MaxArgs int
}

// Proxy accepts client connections on a listener and serves each as a
// connection pair. It is safe for concurrent use.
type Proxy struct {
	ln        net.Listener
	cfg       Config
	blackhole atomic.Bool
	delay     atomic.Int64 // time.Duration

	mu      sync.Mutex
	closed  bool
	conns   map[*Conn]struct{}
	opening int // accepted connections not registered yet, for MaxConns

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
		p.mu.Lock()
		full := p.cfg.MaxConns > 0 && len(p.conns)+p.opening >= p.cfg.MaxConns
		if !full {
			p.opening++
		}
		p.mu.Unlock()
		if full {
			p.refuse(client, "max connections")
			continue
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// refuse tells a client over the connection cap why, and closes it,
// without letting a client that does not read hold the accept loop up.
func (p *Proxy) refuse(client net.Conn, reason string) {
	_ = client.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = client.Write([]byte(RefusedReply))
	// An ordinary close, as Redis does: a reset (SO_LINGER 0) could reach
	// the client before it read the reply, or even fail its connect.
	_ = client.Close()
	if p.cfg.Refused != nil {
		p.cfg.Refused(client.RemoteAddr(), reason)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	registered := false
	defer func() {
		if !registered {
			p.mu.Lock()
			p.opening--
			p.mu.Unlock()
		}
	}()
	server, err := p.cfg.Dial()
	if err != nil {
		_ = client.Close()
		return
	}
	c := &Conn{p: p, client: client, server: server, done: make(chan struct{}), keepCmds: p.cfg.Rewrite != nil}
	c.cond = sync.NewCond(&c.mu)
	// Open runs before the pair is registered, so that nothing (Conns, a
	// concurrent Close) sees a connection whose state is not set yet.
	if p.cfg.Open != nil {
		c.state = p.cfg.Open(c)
	}
	p.mu.Lock()
	p.opening--
	registered = true
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
	p        *Proxy
	client   net.Conn
	server   net.Conn
	state    any
	done     chan struct{} // closed by Close: stops a delayed serverLoop
	once     sync.Once
	keepCmds bool // Rewrite is set: pending keeps every command's name

	blackhole atomic.Bool // this pair only (see Conn.Blackhole)

	mu         sync.Mutex
	cond       *sync.Cond // signals: out grew or shrank, a turn came, or closed/eof
	out        [][]byte   // frames waiting to be written to the client
	outBytes   int        // their size
	held       [][]byte   // frames sent while a server frame is half written
	midFrame   bool       // a server frame is being delivered: out may end in the middle of it
	pending    []pending  // replies the client waits for, in order
	awaiting   int        // server replies in pending (the sum of their n)
	windowFull bool       // awaiting reached MaxInFlight, not yet half
	localBytes int        // bytes of the local replies in pending
	closed     bool
	eof        bool // the server closed: flush out, then close
	resp3      bool
	unsynced   bool
	subscribed bool // a SUBSCRIBE-family command was sent: silence is normal
}

// pending is a reply (or replies) the client waits for: n server replies
// to forwarded commands (n > 0; cmd is set when the one reply's command
// matters, n is then 1), a local reply that must wait for the server
// replies ahead of it (local), or a function to run at that point (turn).
// The queue is empty or starts with a server reply or a turn: local
// replies are only queued behind one. Runs of ordinary commands share one
// entry, so a long pipeline costs no memory here.
type pending struct {
	n     int
	cmd   []string
	local []byte
	turn  func()
}

// State returns what [Config.Open] returned for the connection.
func (c *Conn) State() any { return c.state }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.client.RemoteAddr() }

// LocalAddr returns the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.client.LocalAddr() }

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
	c.queueLocked(frame)
	return true
}

// queueLocked appends a whole frame to out, or holds it until the server
// frame being streamed is complete. c.mu must be held.
func (c *Conn) queueLocked(frame []byte) {
	if c.midFrame {
		c.held = append(c.held, frame)
		return
	}
	c.out = append(c.out, frame)
	c.outBytes += len(frame)
	c.cond.Broadcast()
}

// Reply queues frame (raw RESP; it may hold several frames) as a local
// reply: it reaches the client after the replies of every command the
// client sent before. frame must not be modified afterwards.
func (c *Conn) Reply(frame []byte) {
	if len(frame) == 0 {
		return // nothing to write
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 {
		c.queueLocked(frame)
	} else {
		c.pending = append(c.pending, pending{local: frame})
		c.localBytes += len(frame)
	}
}

// AtTurn runs fn once the replies to every command the client sent before
// have been queued for it, and before any later reply: at once (on the
// caller's goroutine) if none is awaited, otherwise on the connection's
// server goroutine when the last of them arrives. fn typically decides a
// local reply from what those replies said (a HELLO's protocol) and
// queues it with [Conn.Send]. It runs with no lock of the connection held;
// it never runs if the connection closes first.
func (c *Conn) AtTurn(fn func()) {
	c.mu.Lock()
	if len(c.pending) == 0 {
		c.mu.Unlock()
		fn()
		return
	}
	c.pending = append(c.pending, pending{turn: fn})
	c.localBytes += turnCost
	c.mu.Unlock()
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
		c.out, c.held, c.pending = nil, nil, nil
		c.awaiting = 0
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

// idleReader extends the client's read deadline before every read, so
// that only silence (not a long connection) reaches it.
type idleReader struct {
	net.Conn
	d time.Duration
}

func (r idleReader) Read(b []byte) (int, error) {
	_ = r.Conn.SetReadDeadline(time.Now().Add(r.d))
	return r.Conn.Read(b)
}

// waitsLocked reports whether silence from the client is normal: it
// waits for a reply (a blocking command) or for messages. c.mu must be
// held.
func (c *Conn) waitsLocked() bool {
	return len(c.pending) > 0 || c.subscribed || c.unsynced
}

// clientLoop reads commands from the client and forwards, swallows or
// hands them to Config.Handle.
func (c *Conn) clientLoop() {
	defer c.Close()
	cfg := &c.p.cfg
	var src net.Conn = c.client
	if cfg.IdleTimeout > 0 {
		src = idleReader{c.client, cfg.IdleTimeout}
	}
	r := bufio.NewReaderSize(src, readBufferSize)
	// Writes to the server go through a buffer so that a streamed command
	// is not sent in tiny pieces; it is flushed after every command. (Held
	// until the commands already received were written, a pipeline went
	// out in fewer writes, but go-redis v9.23.0's own handoff worker,
	// which writes a handshake on a connection a command may be using,
	// then crossed replies in 3 of 20 rehearsals instead of 0 of 20: the
	// proxy keeps the timing a server gives.)
	w := bufio.NewWriterSize(c.server, readBufferSize)
	for {
		if w.Buffered() > 0 && (r.Buffered() == 0 || c.mustWait()) {
			if err := w.Flush(); err != nil {
				return
			}
		}
		// Backpressure: no new command while the client does not read
		// the replies it has, nor past MaxInFlight awaited ones.
		if !c.waitRoom() {
			return
		}
		if _, err := r.Peek(1); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.mu.Lock()
				waits := c.waitsLocked()
				c.mu.Unlock()
				if waits {
					continue
				}
				c.refused("idle")
			}
			return
		}
		cmd, err := resp.ReadCommandHeadMax(r, CommandBudget, cfg.MaxArgs)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				c.refused("idle")
			case errors.Is(err, resp.ErrProtocol):
				// As Redis does: say why, then close.
				why := strings.TrimPrefix(err.Error(), resp.ErrProtocol.Error()+": ")
				if errors.Is(err, resp.ErrMultibulkLength) {
					why = "invalid multibulk length" // Redis's words; the numbers go to Refused
				}
				c.Reply([]byte("-ERR Protocol error: " + why + "\r\n"))
				c.refused(err.Error())
				c.drainThenClose()
			}
			return
		}
		args := cmd.Args
		if len(args) == 0 && !cmd.Partial() { // Redis ignores empty commands: no reply
			if !c.blackholed() {
				if _, err := w.Write(cmd.Raw); err != nil {
					return
				}
			}
			continue
		}
		if cfg.Observe != nil {
			cfg.Observe(args)
		}
		if c.blackholed() {
			if cmd.Partial() && cmd.CopyRest(r, discard{}) != nil {
				return
			}
			continue
		}
		if !cmd.Partial() && cfg.Handle != nil && cfg.Handle(c, args) {
			continue
		}
		c.mu.Lock()
		if c.expectsReplyLocked(args) {
			c.pushServerLocked(args)
		}
		c.mu.Unlock()
		if _, err := w.Write(cmd.Raw); err != nil {
			return
		}
		if cmd.Partial() {
			if err := cmd.CopyRest(r, w); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// refused reports a connection closed by a limit.
func (c *Conn) refused(reason string) {
	if c.p.cfg.Refused != nil {
		c.p.cfg.Refused(c.client.RemoteAddr(), reason)
	}
}

// drainThenClose lets writeLoop deliver what is queued (an error reply)
// for a moment, then closes the connection.
func (c *Conn) drainThenClose() {
	c.mu.Lock()
	c.eof = true
	c.cond.Broadcast()
	c.mu.Unlock()
	t := time.AfterFunc(time.Second, c.Close)
	<-c.done
	t.Stop()
}

// backedUpLocked reports whether the client's next command must wait:
// more than MaxQueued bytes (server frames, local replies) wait for a
// client that does not read them, or MaxInFlight commands await the
// server's replies; in the latter case, the wait lasts until half of
// them have been answered, so that the server gets the next commands in
// a batch rather than one per reply. c.mu must be held.
func (c *Conn) backedUpLocked() bool {
	if c.awaiting >= MaxInFlight {
		c.windowFull = true
	} else if c.awaiting <= MaxInFlight/2 {
		c.windowFull = false
	}
	return c.localBytes+c.outBytes > MaxQueued || c.windowFull
}

// mustWait reports whether waitRoom would wait.
func (c *Conn) mustWait() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && !c.eof && c.backedUpLocked()
}

// waitRoom holds the client's next command while the connection is
// backed up, so that neither the proxy nor the server piles up replies
// for a client that does not read them (the client's commands then wait
// in its socket, as they would on a server that stopped reading). It
// reports false when the connection closed.
func (c *Conn) waitRoom() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && !c.eof && c.backedUpLocked() {
		c.cond.Wait()
	}
	return !c.closed
}

// pushServerLocked records that the server will answer args. c.mu must be
// held.
func (c *Conn) pushServerLocked(args []string) {
	name := ""
	if len(args) > 0 { // none when the first argument was streamed
		name = args[0]
	}
	c.awaiting++
	if c.keepCmds || strings.EqualFold(name, "HELLO") || strings.EqualFold(name, "RESET") {
		kept := make([]string, 0, 2)
		for _, a := range args[:min(2, len(args))] {
			kept = append(kept, strings.Clone(a[:min(len(a), 64)]))
		}
		c.pending = append(c.pending, pending{n: 1, cmd: kept})
		return
	}
	if last := len(c.pending) - 1; last >= 0 && c.pending[last].n > 0 && c.pending[last].cmd == nil {
		c.pending[last].n++
		return
	}
	c.pending = append(c.pending, pending{n: 1})
}

// expectsReplyLocked reports whether the command gets exactly one reply
// frame (pushes excluded), switching the connection to unsynced mode when
// the number of replies becomes unknowable. c.mu must be held.
func (c *Conn) expectsReplyLocked(args []string) bool {
	if c.unsynced {
		return false
	}
	if len(args) == 0 {
		return true // streamed with a huge first argument: an error reply
	}
	switch strings.ToUpper(args[0]) {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE":
		// RESP3 confirms with push frames; RESP2 with one reply per channel
		// and then delivers messages as ordinary arrays.
		c.subscribed = true
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
// in pieces, releasing the local replies that were waiting for them.
func (c *Conn) serverLoop() {
	defer func() {
		c.mu.Lock()
		c.eof = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	r := bufio.NewReaderSize(c.server, readBufferSize)
	inAttr := false // an attribute was streamed; its frame follows
	for {
		b, err := r.Peek(1)
		if err != nil {
			return
		}
		typ := b[0]
		if d := time.Duration(c.p.delay.Load()); d > 0 && !inAttr {
			timer := time.NewTimer(d)
			select {
			case <-timer.C:
			case <-c.done:
				timer.Stop()
				return
			}
		}
		deliver := !c.blackholed()
		if typ == '|' {
			inAttr = true
			if err := c.stream(r, deliver); err != nil {
				return
			}
			continue
		}
		inAttr = false
		var head pending
		isReply := false
		c.mu.Lock()
		// From here until the frame is queued whole, frames sent or
		// replied locally wait behind it: once its command has left
		// pending, a local reply that was waiting for it (AtTurn, Reply)
		// no longer does, and would otherwise overtake it.
		c.midFrame = true
		if typ != '>' && len(c.pending) > 0 && c.pending[0].n > 0 {
			isReply = true
			head = c.pending[0]
			c.awaiting--
			if c.pending[0].n > 1 {
				c.pending[0].n--
			} else {
				c.pending = c.pending[1:]
			}
			if len(head.cmd) > 0 {
				// HELLO's reply is a map in RESP3 and an array in RESP2.
				hello := strings.EqualFold(head.cmd[0], "HELLO")
				switch {
				case hello && typ == '%':
					c.resp3 = true
				case hello && typ == '*', strings.EqualFold(head.cmd[0], "RESET"):
					c.resp3 = false
				}
			}
		}
		c.mu.Unlock()
		if isReply && head.cmd != nil && c.p.cfg.Rewrite != nil {
			frame, _, err := resp.ReadFrame(r, nil)
			if err != nil {
				return
			}
			c.mu.Lock()
			if deliver {
				frame = c.p.cfg.Rewrite(head.cmd, frame)
				c.out = append(c.out, frame)
				c.outBytes += len(frame)
			}
			c.endFrameLocked()
			c.mu.Unlock()
		} else if err := c.stream(r, deliver); err != nil {
			return
		}
		if isReply && !c.releaseLocals(deliver) {
			return
		}
	}
}

// stream copies one frame from the server to out in pieces, waiting for
// the client to read while more than MaxQueued bytes are queued (or
// discarding it when deliver is false). It returns an error when the
// server connection failed or the connection closed.
func (c *Conn) stream(r *bufio.Reader, deliver bool) error {
	_, err := resp.StreamFrame(r, func(piece []byte) error {
		if !deliver {
			return nil
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for c.outBytes > MaxQueued && !c.closed {
			c.cond.Wait()
		}
		if c.closed {
			return net.ErrClosed
		}
		c.out = append(c.out, piece)
		c.outBytes += len(piece)
		c.midFrame = true
		c.cond.Broadcast()
		return nil
	})
	c.mu.Lock()
	c.endFrameLocked()
	c.mu.Unlock()
	return err
}

// endFrameLocked ends the delivery of a server frame: the frames held
// meanwhile follow it. c.mu must be held.
func (c *Conn) endFrameLocked() {
	c.midFrame = false
	for _, f := range c.held {
		c.out = append(c.out, f)
		c.outBytes += len(f)
	}
	c.held = nil
	c.cond.Broadcast()
}

// releaseLocals queues the local replies, and runs the turns, that were
// waiting for the reply just delivered. It reports false when the
// connection closed.
func (c *Conn) releaseLocals(deliver bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.pending) > 0 && c.pending[0].n == 0 {
		head := c.pending[0]
		if head.turn != nil {
			// Run it unlocked but still at the head of the queue, so that
			// a Reply made meanwhile waits behind it.
			c.mu.Unlock()
			head.turn()
			c.mu.Lock()
			if c.closed {
				return false
			}
			c.localBytes -= turnCost
		} else {
			c.localBytes -= len(head.local)
			if deliver {
				c.queueLocked(head.local)
			}
		}
		c.pending = c.pending[1:]
		c.cond.Broadcast()
	}
	return !c.closed
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
		c.outBytes = 0
		c.cond.Broadcast() // room for the server loop
		c.mu.Unlock()
		if _, err := bufs.WriteTo(c.client); err != nil {
			return
		}
	}
}

// Queued returns how many bytes wait to be written to the client; it stays
// around [MaxQueued] however much a client that does not read asks for.
func (c *Conn) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outBytes + c.localBytes
}
