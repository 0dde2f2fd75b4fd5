package factory

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/resp"
)

// keepAlive matches go-redis's own dialer (30s idle, 5s interval, 3 probes):
// a custom Dialer would otherwise drop it.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// healthHooks receives what the health check sees.
type healthHooks struct {
	checked func()          // a PING was sent
	failed  func(err error) // the PING failed; the connection is dropped
	// closing reports that the client is being closed: go-redis then
	// runs its pre-use check on every idle connection before closing it,
	// and no PING is wanted.
	closing func() bool
}

// dialer returns the go-redis Dialer of a profile: TCP (or a unix socket)
// with keep-alive, TLS when configured (done here, because go-redis only
// applies TLSConfig in its own default dialer), and the health check
// wrapper when interval > 0.
func dialer(connectTimeout time.Duration, tlsConfig *tls.Config, interval, pingTimeout time.Duration, hooks healthHooks) dialFunc {
	return withHealth(socketDialer(connectTimeout, tlsConfig), interval, pingTimeout, hooks)
}

// socketDialer returns a dialer of sockets: TCP (or a unix socket) with
// keep-alive, and TLS when configured.
func socketDialer(connectTimeout time.Duration, tlsConfig *tls.Config) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		start := time.Now()
		d := &net.Dialer{Timeout: connectTimeout, KeepAliveConfig: keepAlive}
		conn, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tlsConfig != nil {
			cfg := tlsConfig
			if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
				cfg = cfg.Clone()
				host, _, _ := net.SplitHostPort(addr)
				cfg.ServerName = host
			}
			tc := tls.Client(conn, cfg)
			hctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				_ = conn.Close()
				if handshakeAtFault(ctx, start, connectTimeout) {
					// Whatever the cause, the handshake failed: class tls,
					// not the timeout or EOF it may look like (a TLS
					// client facing a plaintext port just waits).
					err = &errclass.HandshakeError{Err: err}
				}
				// Report it as a dial failure: the command was never sent.
				return nil, &net.OpError{Op: "dial", Net: network, Addr: conn.RemoteAddr(), Err: err}
			}
			conn = tc
		}
		return conn, nil
	}
}

// withHealth wraps the connections of next in the health check when
// interval > 0.
func withHealth(next dialFunc, interval, pingTimeout time.Duration, hooks healthHooks) dialFunc {
	if interval <= 0 {
		return next
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hc := &healthConn{Conn: conn, interval: interval, timeout: pingTimeout, hooks: hooks}
		// Plain TCP: go-redis's own pre-use check (a peek at the socket)
		// still runs after ours. TLS: go-redis does not look under TLS.
		hc.sys, _ = conn.(syscall.Conn)
		hc.touch()
		return hc, nil
	}
}

// handshakeAtFault reports whether a failed TLS handshake is the
// handshake's own failure rather than the caller's: the dial context was
// not canceled, and if its deadline passed, that deadline gave the dial
// its whole connect timeout (go-redis's dial deadline), not a shorter one
// the caller chose for a command.
func handshakeAtFault(ctx context.Context, dialStart time.Time, connectTimeout time.Duration) bool {
	switch err := ctx.Err(); {
	case err == nil:
		return true
	case errors.Is(err, context.Canceled):
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || dl.Sub(dialStart) >= connectTimeout*9/10
}

// pingCommand is PING as a RESP array; every protocol version accepts it.
var pingCommand = resp.Command("PING")

// ErrHealthCheck is wrapped by the error a command gets when the health
// check of its pooled connection failed before the command was written.
// The command never reached the server, so the retry policy may send it
// again on another connection even when it is not idempotent.
var ErrHealthCheck = errors.New("redisfactory: health check failed")

// healthCheckError is returned by a Write whose connection failed its
// health check. It unwraps to the cause (so its error class is the cause's,
// e.g. connection or timeout) and to ErrHealthCheck; NotSent tells the retry
// policy that the command was not written.
type healthCheckError struct{ cause error }

func (e *healthCheckError) Error() string {
	return fmt.Sprintf("%s: %v", ErrHealthCheck.Error(), e.cause)
}
func (e *healthCheckError) Unwrap() []error { return []error{ErrHealthCheck, e.cause} }

// NotSent reports that the command was not written to the server.
func (e *healthCheckError) NotSent() bool { return true }

// healthConn checks a pooled connection with PING before a command is
// written to it, when the connection has been idle for longer than the
// interval. It works for TLS too, because it sits above the TLS layer, and
// it adds no round trip to connections used within the interval: the check
// is a comparison of two integers.
//
// The check runs when go-redis takes the connection out of its pool, before
// any command is chosen for it: go-redis's pre-use check (connCheck, when a
// connection leaves the idle list) asks the connection for its socket
// through syscall.Conn, and SyscallConn runs the PING first. When the PING
// fails, SyscallConn returns the error, go-redis closes the connection and
// takes another one (or dials), and the command goes there: it never
// touched the dead connection, so no retry is spent, even for a command
// that is not idempotent. When the PING succeeds, SyscallConn returns the
// socket (TCP), on which go-redis's own peek still runs, or (TLS) a socket
// with nothing to peek at, as go-redis's check does for TLS itself.
//
// Write checks again, for a connection that went idle while it was held
// (a Tx or Conn whose user paused between commands): the command then fails
// with an error wrapping ErrHealthCheck (it was not sent), and so does
// every later use of that connection, without another PING (see
// checkOrDie).
//
// go-redis reads and writes one connection from one goroutine at a time,
// so a check never races a Read of go-redis's: the one in Write runs on the
// writing goroutine, the one in SyscallConn while the connection is idle
// (a Read under way means someone owns the connection: no check then). A
// RESP3 push frame that arrives before the PONG (a maintenance
// notification) is kept and handed to go-redis on its next Read.
type healthConn struct {
	net.Conn
	sys      syscall.Conn // the socket, nil for TLS
	interval time.Duration
	timeout  time.Duration
	hooks    healthHooks

	lastUsed atomic.Int64 // unix nanoseconds of the last completed Read or Write
	subMode  atomic.Bool  // SUBSCRIBE/MONITOR seen: messages may arrive at any time, no checks
	reading  atomic.Int32 // Reads under way
	// awaiting is set by a Write and cleared by a Read that returns
	// data: while it is set, the request being written (or whose reply is
	// awaited) is not finished, and a Write continues it. go-redis writes
	// a large command or pipeline in several Writes; a check between two
	// of them would put a PING in the middle of a command.
	awaiting atomic.Bool

	mu      sync.Mutex
	pending []byte // bytes read during a check that belong to go-redis

	// dead holds the error of a failed check: the connection is done for
	// (a late PONG would now arrive as the reply of the next command), and
	// every later SyscallConn and Write fails at once with it, without
	// another PING.
	dead atomic.Pointer[healthCheckError]
}

// NetConn returns the wrapped connection, as crypto/tls.Conn does, for
// code that looks for the socket underneath.
func (c *healthConn) NetConn() net.Conn { return c.Conn }

// SyscallConn is called by go-redis's pre-use check when the connection
// leaves the pool: the health check runs here, and its failure makes
// go-redis discard the connection and use another one.
func (c *healthConn) SyscallConn() (syscall.RawConn, error) {
	if dead := c.dead.Load(); dead != nil {
		return nil, dead
	}
	if c.due() && c.reading.Load() == 0 && !c.awaiting.Load() && (c.hooks.closing == nil || !c.hooks.closing()) {
		if err := c.checkOrDie(); err != nil {
			return nil, err
		}
	}
	if c.sys != nil {
		return c.sys.SyscallConn()
	}
	return quietRawConn{}, nil
}

// due reports whether the connection has been idle for longer than the
// interval and may be checked.
func (c *healthConn) due() bool {
	return !c.subMode.Load() && time.Now().UnixNano()-c.lastUsed.Load() > int64(c.interval)
}

// quietRawConn is the socket SyscallConn gives for a TLS connection: one
// with nothing to read. go-redis's own check never peeks under TLS (the
// socket may hold a TLS record that is not data), and neither does this.
type quietRawConn struct{}

func (quietRawConn) Control(func(fd uintptr)) error { return errNoSocket }
func (quietRawConn) Read(func(fd uintptr) bool) error {
	return nil // f not called: go-redis reads that as "alive, no data"
}
func (quietRawConn) Write(func(fd uintptr) bool) error { return errNoSocket }

var errNoSocket = errors.New("redisfactory: a TLS connection's socket is not exposed")

func (c *healthConn) touch() { c.lastUsed.Store(time.Now().UnixNano()) }

// Read hands out bytes kept from a health check first.
func (c *healthConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		c.awaiting.Store(false)
		return n, nil
	}
	c.mu.Unlock()
	c.reading.Add(1)
	n, err := c.Conn.Read(b)
	c.reading.Add(-1)
	if n > 0 {
		c.awaiting.Store(false)
		c.touch()
	}
	return n, err
}

// Write checks the connection first when it has been idle too long and
// b starts a new request (not the rest of one, see awaiting).
func (c *healthConn) Write(b []byte) (int, error) {
	if !c.subMode.Load() {
		if dead := c.dead.Load(); dead != nil {
			return 0, dead
		}
		if isSubscribeMode(b) {
			c.subMode.Store(true)
		} else if !c.awaiting.Load() && c.reading.Load() == 0 && c.due() {
			if err := c.checkOrDie(); err != nil {
				return 0, err
			}
		}
	}
	n, err := c.Conn.Write(b)
	if n > 0 {
		c.awaiting.Store(true)
	}
	if err == nil {
		c.touch()
	}
	return n, err
}

// checkOrDie runs the check; when it fails, the connection is marked dead
// and the failure reported once.
//
// Marking it matters for a held connection (a Conn, a Watch): go-redis
// looks at the socket (SyscallConn, to drain push notifications) and then
// writes the command, both on the same dead connection, and without the
// mark each would wait for a PING of its own: twice the timeout.
func (c *healthConn) checkOrDie() error {
	err := c.check()
	if err == nil {
		return nil
	}
	hc := &healthCheckError{cause: err}
	if c.dead.CompareAndSwap(nil, hc) && c.hooks.failed != nil {
		c.hooks.failed(err)
	}
	return c.dead.Load()
}

// check sends PING and reads frames until its reply.
func (c *healthConn) check() error {
	if c.hooks.checked != nil {
		c.hooks.checked()
	}
	deadline := time.Now().Add(c.timeout)
	if err := c.Conn.SetDeadline(deadline); err != nil {
		return err
	}
	// go-redis sets its own deadlines before every read and write; clear
	// ours so that a later call without one is not cut short.
	defer func() { _ = c.Conn.SetDeadline(time.Time{}) }()
	if _, err := c.Conn.Write(pingCommand); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c.Conn, 512)
	var kept []byte
	for {
		frame, typ, err := resp.ReadFrame(r, nil)
		if err != nil {
			return err
		}
		if typ == '>' || typ == '|' { // push or attribute: not the reply
			kept = append(kept, frame...)
			continue
		}
		if typ == '-' || typ == '!' {
			// An error reply still proves the connection works (e.g.
			// NOAUTH after a server restart is for the command to see).
			break
		}
		break
	}
	if n := r.Buffered(); n > 0 {
		rest, _ := r.Peek(n)
		kept = append(kept, rest...)
	}
	if len(kept) > 0 {
		c.mu.Lock()
		c.pending = append(c.pending, kept...)
		c.mu.Unlock()
	}
	c.touch()
	return nil
}

// isSubscribeMode reports whether a written command puts the connection in
// a mode where the server sends messages unasked (SUBSCRIBE, PSUBSCRIBE,
// SSUBSCRIBE, MONITOR). Such connections are not health-checked: go-redis's
// PubSub pings them itself.
func isSubscribeMode(b []byte) bool {
	// "*N\r\n$L\r\nNAME\r\n…": find NAME.
	i := bytes.Index(b, []byte("\r\n$"))
	if i < 0 {
		return false
	}
	j := bytes.Index(b[i+3:], []byte("\r\n"))
	if j < 0 {
		return false
	}
	name := b[i+3+j+2:]
	if k := bytes.IndexByte(name, '\r'); k >= 0 {
		name = name[:k]
	}
	return hasSuffixFold(name, "subscribe") || bytes.EqualFold(name, []byte("monitor"))
}

func hasSuffixFold(b []byte, s string) bool {
	return len(b) >= len(s) && bytes.EqualFold(b[len(b)-len(s):], []byte(s))
}
