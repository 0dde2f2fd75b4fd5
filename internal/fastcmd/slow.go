package fastcmd

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// slowTimeout bounds one slow-path call. Nothing in it can block on I/O (the
// in-memory connection answers every read at once), so it only matters if
// go-redis itself misbehaves, e.g. waits for a pooled connection.
const slowTimeout = 5 * time.Second

// slowPath decodes a frame by running the command through a real go-redis
// client whose only connection is in memory: whatever go-redis writes is
// recorded and dropped, and its reads are served from the frame. The command's
// own readReply therefore produces the value and error, which is the point —
// the result is go-redis's by construction rather than a re-implementation.
type slowPath struct {
	client *redis.Client

	// mu serializes slow-path calls: the client has one connection and the
	// frame being served belongs to one call at a time. The slow path is
	// rare, so the contention does not matter.
	mu sync.Mutex

	// ioMu guards cur, which the in-memory connection reads from and the
	// hook consults. Reads normally happen on the goroutine holding mu, but
	// go-redis may touch a connection from its own goroutines (dialing,
	// closing), so the state is locked rather than assumed.
	ioMu sync.Mutex
	cur  *slowCall

	// lastWritten is what go-redis wrote during the last call, kept (under
	// mu) so tests can check that only the command reaches the connection.
	lastWritten []byte
}

// slowCall is the frame being served and what go-redis wrote for it.
type slowCall struct {
	cmd     redis.Cmder
	frame   []byte
	off     int
	written []byte
}

func newSlowPath() *slowPath {
	s := &slowPath{}
	s.client = redis.NewClient(&redis.Options{
		Network: "tcp",
		Addr:    "fastcmd.in-memory:0",
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			return &memConn{s: s}, nil
		},
		// RESP2, no credentials, DB 0, no client name, no identity and no
		// maintenance notifications: initConn then has nothing to send
		// except HELLO, which go-redis sends unconditionally and which the
		// hook below answers in process. Protocol 2 also keeps go-redis from
		// treating a '>' frame as a push notification and waiting for the
		// "real" reply: the frame is the reply.
		Protocol:                 2,
		DB:                       0,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// One attempt: a retry would write the command again and read a
		// frame that is already consumed.
		MaxRetries:   -1,
		PoolSize:     1,
		MinIdleConns: 0,
		MaxIdleConns: 1,
		DialTimeout:  slowTimeout,
		ReadTimeout:  slowTimeout,
		WriteTimeout: slowTimeout,
		PoolTimeout:  slowTimeout,
	})
	s.client.AddHook(handshakeHook{s: s})
	return s
}

func (s *slowPath) close() error {
	return s.client.Close()
}

// process runs cmd through the in-memory client with frame as its reply.
func (s *slowPath) process(ctx context.Context, cmd redis.Cmder, frame []byte) error {
	// The reply is already here: the caller's cancellation must not turn it
	// into a context error, but values (for hooks) are kept and the call is
	// still bounded.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slowTimeout)
	defer cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.begin(&slowCall{cmd: cmd, frame: frame})
	err := s.client.Process(ctx, cmd)
	s.lastWritten = s.end().written
	return err
}

func (s *slowPath) begin(c *slowCall) {
	s.ioMu.Lock()
	s.cur = c
	s.ioMu.Unlock()
}

// end detaches the finished call and returns it (tests inspect what was
// written).
func (s *slowPath) end() *slowCall {
	s.ioMu.Lock()
	c := s.cur
	s.cur = nil
	s.ioMu.Unlock()
	return c
}

// isCurrent reports whether cmd is the command of the call in progress.
func (s *slowPath) isCurrent(cmd redis.Cmder) bool {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	return s.cur != nil && s.cur.cmd == cmd
}

// read serves the current frame; past its end (or between calls) it reports
// io.EOF at once, so go-redis can never wait for bytes that will not come.
func (s *slowPath) read(p []byte) (int, error) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	c := s.cur
	if c == nil || c.off >= len(c.frame) {
		return 0, io.EOF
	}
	n := copy(p, c.frame[c.off:])
	c.off += n
	return n, nil
}

// write records what go-redis sends for the current call and drops it.
func (s *slowPath) write(p []byte) {
	s.ioMu.Lock()
	defer s.ioMu.Unlock()
	if s.cur != nil {
		s.cur.written = append(s.cur.written, p...)
	}
}

// handshakeError answers, in process, every command go-redis issues on its
// own (HELLO during connection set-up). It implements redis.Error so that
// go-redis treats it as a server refusal — "HELLO not supported, stay on
// RESP2" — rather than a broken connection.
type handshakeError struct{}

func (handshakeError) Error() string {
	return "ERR fastcmd: in-memory connection answers only the decoded command"
}

// RedisError marks handshakeError as a server error for go-redis.
func (handshakeError) RedisError() {}

// handshakeHook lets only the command being decoded reach the in-memory
// connection. go-redis's connection set-up runs its commands through the
// client's hooks, so answering them here keeps them off the wire entirely:
// the connection sees nothing but the decoded command.
type handshakeHook struct{ s *slowPath }

func (h handshakeHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h handshakeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.s.isCurrent(cmd) {
			return next(ctx, cmd)
		}
		cmd.SetErr(handshakeError{})
		return handshakeError{}
	}
}

func (h handshakeHook) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	// The decoder never pipelines; set-up pipelines (empty with these
	// options) are answered without touching the connection.
	return func(_ context.Context, cmds []redis.Cmder) error {
		if len(cmds) == 0 {
			return nil
		}
		for _, c := range cmds {
			c.SetErr(handshakeError{})
		}
		return handshakeError{}
	}
}

// memConn is the in-memory net.Conn behind the slow path's client. It holds
// no state of its own: every connection go-redis dials reads and writes the
// slow path's current call, so a redialled connection behaves the same.
type memConn struct {
	s      *slowPath
	mu     sync.Mutex
	closed bool
}

func (c *memConn) Read(p []byte) (int, error) {
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	return c.s.read(p)
}

func (c *memConn) Write(p []byte) (int, error) {
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	c.s.write(p)
	return len(p), nil
}

func (c *memConn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *memConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr{} }
func (c *memConn) RemoteAddr() net.Addr { return memAddr{} }

// Deadlines are accepted and ignored: reads never block, so there is nothing
// for a deadline to interrupt.
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "fastcmd.in-memory:0" }
