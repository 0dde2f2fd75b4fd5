package cache

import (
	"net"
	"syscall"
)

// wrapConn wraps a data connection in a trackedConn that shows go-redis
// what the connection underneath shows it. go-redis checks a pooled
// connection before using it by peeking at its socket through
// syscall.Conn (a dead connection is then dropped instead of being given
// to a command); a wrapper that hid the socket would turn every connection
// killed while idle into a failed command.
func wrapConn(conn net.Conn, n *node) net.Conn {
	t := &trackedConn{Conn: conn, n: n}
	if sc, ok := conn.(syscall.Conn); ok {
		return &trackedSysConn{trackedConn: t, sys: sc}
	}
	return t
}

// NetConn returns the wrapped connection, as crypto/tls.Conn does, for
// code that looks for the socket underneath (go-redis looks under TLS for
// waiting push messages).
func (t *trackedConn) NetConn() net.Conn { return t.Conn }

// trackedSysConn is a trackedConn over a connection that exposes its
// socket.
type trackedSysConn struct {
	*trackedConn
	sys syscall.Conn
}

// SyscallConn returns the wrapped connection's socket, for go-redis's
// pre-use check.
func (t *trackedSysConn) SyscallConn() (syscall.RawConn, error) { return t.sys.SyscallConn() }

// TrackingOf returns, for conn — a connection dialed through the cache's
// dial hook, or a wrapper of one that shows it through a NetConn method —
// a function that reports whether the tracking conn turned on is still
// in force: it redirects to its node's current invalidation connection.
// It returns nil when conn has no tracking of this cache's on.
//
// A command that shares conn's socket without going through conn (the
// factory's direct path) may then be a read the cache stores: the server
// tracks it for the socket, and tells the cache of its changes. When the
// invalidation connection is replaced, the function reports false (the
// socket redirects to the old one until a connection of the cache's on it
// turns tracking on again), and the cache has flushed: nothing read
// before is stored (its epoch changed).
//
// Call it once conn is idle: its tracking is what its last write set up.
func (c *Cache) TrackingOf(conn net.Conn) func() bool {
	for conn != nil {
		var t *trackedConn
		switch x := conn.(type) {
		case *trackedConn:
			t = x
		case *trackedSysConn:
			t = x.trackedConn
		}
		if t != nil {
			if t.n.c != c || t.gen == 0 {
				return nil
			}
			n, gen := t.n, t.gen
			return func() bool {
				st := n.state.Load()
				return st.id != 0 && st.gen == gen
			}
		}
		nc, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		conn = nc.NetConn()
	}
	return nil
}
