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
