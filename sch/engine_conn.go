package sch

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// conn wraps every connection of a client with sch active. It is what go-redis
// reads and writes, so it sees each command before a byte of it is sent:
//
//   - a retired connection (after a MOVING) refuses the first write of a
//     new command with a [RetiredError] and closes its socket; go-redis
//     drops the connection and the engine's hook runs the command on
//     another one;
//   - a relaxed connection (during a maintenance, and for a while after a
//     handoff) raises the deadlines go-redis sets to at least
//     relaxed_timeout from now: the larger of the two wins, so a blocking
//     command keeps its own longer deadline; a notification that starts a
//     maintenance while a reply is awaited raises that wait too (see
//     [conn.raiseRead]);
//   - during the handshake it watches for the CLIENT MAINT_NOTIFICATIONS
//     exchange, which ends it.
//
// go-redis uses a connection from one goroutine at a time, except a Pub/Sub
// connection, which one goroutine reads while another writes: the state is
// atomic.
type conn struct {
	net.Conn
	e            *Engine
	addr, target string    // the address go-redis dialed; where the socket goes
	dialed       time.Time // when the socket was open
	handoff      *redirect // the MOVING this connection follows, or nil

	retiring     atomic.Bool
	writing      atomic.Bool  // a write since the last read: a command is being sent
	relaxed      atomic.Int32 // maintenances under way on this connection
	relaxedUntil atomic.Int64 // unix nanoseconds: relaxed after a handoff (or a dial during a maintenance) until then
	dialRelaxed  atomic.Bool  // relaxedUntil is a dial's during a maintenance: the maintenance's end ends it
	handshake    atomic.Int32 // handshake* state
	handWrites   int32        // writes seen during the handshake

	// The read deadline go-redis asked for last (unix nanoseconds), when
	// (0: none armed) and under which configured timeout, for raiseRead.
	readWant, readSet, readConf atomic.Int64

	maintMu sync.Mutex
	begins  []int64 // sequence numbers of the maintenances under way (0: none given)
}

// Handshake states.
const (
	handshakeRunning int32 = iota // dialed, CLIENT MAINT_NOTIFICATIONS not seen yet
	handshakeAsked                // the request is written; its reply ends it
	handshakeDone
)

// handshakeWrites bounds how many writes are looked at for the request: a
// handshake is HELLO, SELECT, the CLIENT SETINFO pipeline, the extensions'
// commands; a connection that never asks (a sentinel's, or auto mode after a
// refusal) stops being looked at after these.
const handshakeWrites = 8

// maintRequest is the subcommand, as go-redis writes it, and in capitals.
var maintRequest = [...][]byte{[]byte("maint_notifications"), []byte("MAINT_NOTIFICATIONS")}

func newConn(e *Engine, c net.Conn, addr, target string) *conn {
	return &conn{Conn: c, e: e, addr: addr, target: target, dialed: time.Now()}
}

// sysConn is a conn over a socket go-redis may inspect (its idle check and
// its peek for push notifications waiting on a pooled connection).
type sysConn struct {
	*conn
	sys syscall.Conn
}

// SyscallConn exposes the socket.
func (c *sysConn) SyscallConn() (syscall.RawConn, error) { return c.sys.SyscallConn() }

// exposed returns the conn, with SyscallConn when the socket has one.
func (c *conn) exposed() net.Conn {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return &sysConn{conn: c, sys: sc}
	}
	return c
}

// connOf returns the engine's wrapper of a connection go-redis holds. The
// engine's dialer need not be the outermost: other wrappers (the factory
// tracks the auto-pipeliner's connections, for example) sit above it and
// show what they wrap through NetConn, which connOf follows.
func connOf(c net.Conn) *conn {
	for range maxWrappers {
		switch w := c.(type) {
		case *conn:
			return w
		case *sysConn:
			return w.conn
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
			continue
		}
		return nil
	}
	return nil
}

// maxWrappers bounds connOf's walk through wrappers that show their
// connection (a wrapper that showed itself would otherwise loop).
const maxWrappers = 8

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

// RetiredError is the error of a command refused by a connection a MOVING
// retired. Nothing of the command was written; the engine's hook runs it
// again on another connection, so callers see it only when every
// connection it got in a row was retired (see [Engine.Attach]).
type RetiredError struct{ Endpoint string }

func (e *RetiredError) Error() string {
	return "sch: the connection was handed off to " + e.Endpoint + " before the command was written"
}

// NotSent reports that the command was not written to the server.
func (e *RetiredError) NotSent() bool { return true }

// Write refuses a new command on a retired connection.
func (c *conn) Write(b []byte) (int, error) {
	if c.retiring.Load() && !c.writing.Load() {
		_ = c.Conn.Close()
		return 0, &RetiredError{Endpoint: c.e.endpointOf(c.addr)}
	}
	if c.handshake.Load() == handshakeRunning {
		c.watchHandshake(b)
	}
	n, err := c.Conn.Write(b)
	if n > 0 && !c.writing.Load() {
		c.writing.Store(true)
	}
	return n, err
}

// Read ends a command's write phase, and the handshake when the reply to
// the notification request arrives.
func (c *conn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.writing.Load() {
		c.writing.Store(false)
	}
	if n > 0 && c.handshake.Load() == handshakeAsked && c.handshake.CompareAndSwap(handshakeAsked, handshakeDone) {
		c.e.handshakeDone(c)
	}
	return n, err
}

func (c *conn) watchHandshake(b []byte) {
	if bytes.Contains(b, maintRequest[0]) || bytes.Contains(b, maintRequest[1]) {
		c.handshake.Store(handshakeAsked)
		return
	}
	c.handWrites++
	if c.handWrites >= handshakeWrites && c.handshake.CompareAndSwap(handshakeRunning, handshakeDone) {
		c.e.handshakeDone(c)
	}
}

// Close reports a handoff whose handshake did not complete.
func (c *conn) Close() error {
	if c.handoff != nil && c.handshake.Swap(handshakeDone) != handshakeDone {
		c.e.handoffFailed(c.target, errors.New("the connection closed before its handshake completed"))
	}
	return c.Conn.Close()
}

// SetDeadline applies the relaxed timeout to both directions.
func (c *conn) SetDeadline(t time.Time) error {
	conf := min(c.e.read, c.e.write)
	c.noteRead(t, conf)
	return c.Conn.SetDeadline(c.relaxDeadline(t, conf))
}

// SetReadDeadline applies the relaxed timeout.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.noteRead(t, c.e.read)
	return c.Conn.SetReadDeadline(c.relaxDeadline(t, c.e.read))
}

// noteRead records the read deadline go-redis asks for, for raiseRead.
func (c *conn) noteRead(t time.Time, configured time.Duration) {
	if t.IsZero() {
		c.readSet.Store(0)
		return
	}
	c.readWant.Store(t.UnixNano())
	c.readConf.Store(int64(configured))
	c.readSet.Store(time.Now().UnixNano())
}

// raiseRead gives the read under way the deadline it would have had had
// the connection been relaxed when go-redis set it. go-redis reads a
// notification before the reply that follows it, after it has set that
// reply's deadline: a connection that was idle when MIGRATING came reads
// it with the reply to its next command (always so for a virtual
// connection of the factory's engine, which go-redis cannot peek at), and
// without this that command would keep the normal timeout while the
// server is slow. Only raised, never lowered: a command that began
// relaxed keeps its deadline when the maintenance ends.
func (c *conn) raiseRead() {
	set := c.readSet.Load()
	if set == 0 {
		return
	}
	want := time.Unix(0, c.readWant.Load())
	t := c.relaxDeadlineAt(want, time.Duration(c.readConf.Load()), time.Unix(0, set))
	if t.After(want) && t.After(time.Now()) {
		_ = c.Conn.SetReadDeadline(t)
	}
}

// SetWriteDeadline applies the relaxed timeout.
func (c *conn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.relaxDeadline(t, c.e.write))
}

// relaxDeadline returns the deadline to use for go-redis's t while the
// connection is relaxed: at least relaxed_timeout from now. A deadline
// closer than three quarters of the configured timeout comes from the
// caller's context, not from the timeout, and is kept.
func (c *conn) relaxDeadline(t time.Time, configured time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	relaxed := c.relaxed.Load() > 0
	until := c.relaxedUntil.Load()
	if !relaxed && until == 0 {
		return t
	}
	return c.relaxDeadlineAt(t, configured, time.Now())
}

// relaxDeadlineAt is relaxDeadline for a deadline t set at now.
func (c *conn) relaxDeadlineAt(t time.Time, configured time.Duration, now time.Time) time.Time {
	relaxed := c.relaxed.Load() > 0
	until := c.relaxedUntil.Load()
	if !relaxed && (until == 0 || now.UnixNano() >= until) {
		return t
	}
	if t.Sub(now) < configured*3/4 {
		return t
	}
	if floor := now.Add(c.e.relaxed); t.Before(floor) {
		return floor
	}
	return t
}

// maxBegins bounds the maintenances a connection remembers (a server that
// never ends them would otherwise grow the list).
const maxBegins = 64

// beginMaintenance relaxes the connection for the maintenance that the
// notification numbered seq announced, unless the connection has counted
// that notification already. A server tells a connection that negotiates
// notifications during a maintenance about it (the maintenance proxy
// replays the notification, with its number); the factory's engine shares
// a socket among virtual connections, each of which negotiates on it, and
// hands every notification of the socket to each of them: without this,
// each virtual connection opened during a maintenance would count it once
// more for the others, and the one end would leave them relaxed.
func (c *conn) beginMaintenance(seq int64) {
	c.maintMu.Lock()
	if seq != 0 && slices.Contains(c.begins, seq) {
		c.maintMu.Unlock()
		return
	}
	if len(c.begins) < maxBegins {
		c.begins = append(c.begins, seq)
	}
	c.maintMu.Unlock()
	c.relax(true)
}

// endMaintenance ends the oldest maintenance under way on the connection,
// and the relaxation of a connection dialed during one.
func (c *conn) endMaintenance() {
	c.maintMu.Lock()
	if len(c.begins) > 0 {
		c.begins = c.begins[1:]
	}
	c.maintMu.Unlock()
	if c.dialRelaxed.Swap(false) {
		c.relaxedUntil.Store(0)
	}
	c.relax(false)
}

// relax starts (on) or ends a maintenance on the connection.
func (c *conn) relax(on bool) {
	if on {
		if c.relaxed.Add(1) == 1 {
			c.raiseRead()
		}
		return
	}
	for {
		n := c.relaxed.Load()
		if n <= 0 || c.relaxed.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// relaxUntil relaxes the connection until t.
func (c *conn) relaxUntil(t time.Time) { c.relaxedUntil.Store(t.UnixNano()) }

// endpointOf returns where dials of addr go now.
func (e *Engine) endpointOf(addr string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r, ok := e.redirects[addr]; ok {
		return r.endpoint
	}
	return addr
}

// maxReruns bounds how many retired connections one command may be given
// in a row (each is dropped from the pool as it refuses the command).
const maxReruns = 64

// rerunHook runs a command again when its connection was retired before
// the command was written.
type rerunHook struct{}

func (rerunHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (rerunHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		for i := 0; i < maxReruns && isRetired(err) && ctx.Err() == nil; i++ {
			cmd.SetErr(nil)
			err = next(ctx, cmd)
		}
		return err
	}
}

func (rerunHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for i := 0; i < maxReruns && pipelineRetired(err, cmds) && ctx.Err() == nil; i++ {
			for _, c := range cmds {
				c.SetErr(nil)
			}
			err = next(ctx, cmds)
		}
		return err
	}
}

func isRetired(err error) bool {
	var r *RetiredError
	return err != nil && errors.As(err, &r)
}

// pipelineRetired reports whether a pipeline was refused as a whole: its
// error and every command's error say so (a pipeline is written in one go,
// so a refusal means none of it was sent).
func pipelineRetired(err error, cmds []redis.Cmder) bool {
	if !isRetired(err) {
		return false
	}
	for _, c := range cmds {
		if !isRetired(c.Err()) {
			return false
		}
	}
	return true
}
