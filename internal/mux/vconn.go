package mux

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// vconn is a virtual connection: what go-redis holds in its pool. Its
// commands go to its socket's queue; its replies come from its socket's
// reader. go-redis writes and reads a connection from one goroutine at a
// time, which the write side relies on.
type vconn struct {
	s     *socket
	ready chan struct{} // a reply or an error arrived

	mu     sync.Mutex
	in     []byte // replies delivered, not yet read
	off    int
	err    error // set once the connection is broken or closed
	closed bool

	// The write side: go-redis's writing goroutine only.
	sc      resp.Scanner
	partial []byte // a command not complete yet, kept until it is

	readDeadline atomic.Int64 // unix nanoseconds, 0 for none
	timer        *time.Timer  // the reading goroutine's
}

// Read returns the bytes of replies to this connection's commands, waiting
// for them until the read deadline.
func (v *vconn) Read(b []byte) (int, error) {
	for {
		v.mu.Lock()
		if v.off < len(v.in) {
			n := copy(b, v.in[v.off:])
			v.off += n
			if v.off == len(v.in) {
				v.in, v.off = v.in[:0], 0
				if cap(v.in) > 1<<20 {
					v.in = nil // do not keep a large reply's buffer
				}
			}
			v.mu.Unlock()
			return n, nil
		}
		err := v.err
		v.mu.Unlock()
		if err != nil {
			return 0, err
		}
		if err := v.wait(); err != nil {
			return 0, err
		}
	}
}

// wait blocks until something is delivered, the socket breaks, or the
// read deadline passes.
func (v *vconn) wait() error {
	dl := v.readDeadline.Load()
	if dl == 0 {
		select {
		case <-v.ready:
			return nil
		case <-v.s.done:
			return v.socketError()
		}
	}
	d := time.Until(time.Unix(0, dl))
	if d <= 0 {
		return v.timedOut()
	}
	if v.timer == nil {
		v.timer = time.NewTimer(d)
	} else {
		v.timer.Reset(d)
	}
	select {
	case <-v.ready:
		v.timer.Stop()
		return nil
	case <-v.s.done:
		v.timer.Stop()
		return v.socketError()
	case <-v.timer.C:
		return v.timedOut()
	}
}

// socketError is the error of a read on a broken socket, unless a reply
// made it before the break.
func (v *vconn) socketError() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.off < len(v.in) {
		return nil
	}
	if v.err == nil {
		v.s.mu.Lock()
		v.err = v.s.err
		v.s.mu.Unlock()
	}
	return v.err
}

// timedOut breaks the connection (a late reply would answer the next
// command) and retires its socket, which may be stuck: new connections go
// to a new one, while the replies to others' commands still arrive.
func (v *vconn) timedOut() error {
	v.mu.Lock()
	if v.off < len(v.in) {
		v.mu.Unlock()
		return nil // the reply made it after all
	}
	if v.err == nil {
		v.err = timeoutError{}
	}
	err := v.err
	v.mu.Unlock()
	v.s.retire()
	return err
}

// deliver hands v the bytes of a reply (with the pushes before it).
func (v *vconn) deliver(b []byte) {
	v.mu.Lock()
	if v.err != nil {
		v.mu.Unlock()
		return // closed or broken: nobody will read it
	}
	v.in = append(v.in, b...)
	v.mu.Unlock()
	select {
	case v.ready <- struct{}{}:
	default:
	}
}

// maxUnread bounds what a connection nobody reads may hold of pushes.
const maxUnread = 1 << 20

// deliverPush hands v a push frame, unless v holds maxUnread bytes
// already (a connection left idle through a storm of notices).
func (v *vconn) deliverPush(b []byte) {
	v.mu.Lock()
	if v.err != nil || len(v.in)-v.off+len(b) > maxUnread {
		v.mu.Unlock()
		return
	}
	v.in = append(v.in, b...)
	v.mu.Unlock()
	select {
	case v.ready <- struct{}{}:
	default:
	}
}

// fail breaks v with err, unless it is broken already.
func (v *vconn) fail(err error) {
	v.mu.Lock()
	if v.err == nil {
		v.err = err
	}
	v.mu.Unlock()
	select {
	case v.ready <- struct{}{}:
	default:
	}
}

// Write queues the complete commands in b on the socket and keeps an
// incomplete one until the rest of it is written.
func (v *vconn) Write(b []byte) (int, error) {
	v.mu.Lock()
	err := v.err
	v.mu.Unlock()
	if err != nil {
		// Nothing of b is queued, whatever broke v (its socket, a timeout,
		// Close): the retry policy may send these commands again.
		return 0, asNotSent(err)
	}
	data := b
	if len(v.partial) > 0 {
		v.partial = append(v.partial, b...)
		data = v.partial
	}
	end, n := 0, 0
	for end < len(data) {
		k, typ, err := v.sc.Scan(data[end:])
		if err == nil && k > 0 && typ != '*' {
			err = fmt.Errorf("%w: a command must be an array, not %q", resp.ErrProtocol, typ)
		}
		if err != nil {
			v.fail(err)
			return 0, err
		}
		if k == 0 {
			break
		}
		end += k
		n++
	}
	if n > 0 {
		if err := v.s.enqueue(v, data[:end], n); err != nil {
			v.fail(err)
			return 0, err
		}
	}
	rest := data[end:]
	switch {
	case len(rest) == 0 && cap(v.partial) > 1<<20:
		v.partial = nil // do not keep a large command's buffer
	case len(rest) == 0:
		v.partial = v.partial[:0]
	case len(v.partial) > 0:
		v.partial = v.partial[:copy(v.partial, rest)]
	default:
		v.partial = append(v.partial[:0], rest...)
	}
	return len(b), nil
}

// Close closes the connection; replies still coming to it are dropped.
func (v *vconn) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	if v.err == nil {
		v.err = net.ErrClosed
	}
	v.in, v.off = nil, 0
	v.mu.Unlock()
	// Unblock a Read waiting for a reply, which deliver now drops.
	select {
	case v.ready <- struct{}{}:
	default:
	}
	v.s.detach(v)
	return nil
}

// SyscallConn is what go-redis's pool calls to check a connection it
// takes from its idle list (connCheck). A virtual connection whose socket
// is retired (a read deadline passed on it: it may be stuck) or broken
// fails the check: go-redis closes it and takes another one, or dials,
// which opens a new socket. So once a socket is retired, no new command
// goes to it, whatever connections of it the pool held, and it closes when
// the last of them is closed. A healthy one has no socket of its own to
// peek at: its RawConn reads as "alive, nothing waiting".
func (v *vconn) SyscallConn() (syscall.RawConn, error) {
	v.mu.Lock()
	err := v.err
	v.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s := v.s
	s.mu.Lock()
	retired, err := s.retired, s.err
	s.mu.Unlock()
	switch {
	case err != nil:
		return nil, err
	case retired:
		return nil, errRetired
	}
	return quietRawConn{}, nil
}

// errRetired fails the pool's check of a connection on a retired socket.
var errRetired = errors.New("mux: the socket is retired")

// quietRawConn is the socket of a healthy virtual connection: nothing to
// peek at (go-redis reads a Read that does not call its function as
// "alive, no data"), nothing to control.
type quietRawConn struct{}

func (quietRawConn) Control(func(fd uintptr)) error    { return errNoSocket }
func (quietRawConn) Read(func(fd uintptr) bool) error  { return nil }
func (quietRawConn) Write(func(fd uintptr) bool) error { return errNoSocket }

var errNoSocket = errors.New("mux: a virtual connection has no socket of its own")

func (v *vconn) LocalAddr() net.Addr  { return v.s.conn.LocalAddr() }
func (v *vconn) RemoteAddr() net.Addr { return v.s.conn.RemoteAddr() }

// SetDeadline sets the read deadline; writes only queue and never wait.
func (v *vconn) SetDeadline(t time.Time) error { return v.SetReadDeadline(t) }

// SetReadDeadline bounds the wait for replies.
func (v *vconn) SetReadDeadline(t time.Time) error {
	if t.IsZero() {
		v.readDeadline.Store(0)
	} else {
		v.readDeadline.Store(t.UnixNano())
	}
	return nil
}

// SetWriteDeadline does nothing: a write only queues. The socket's own
// writes are bounded by Config.WriteTimeout.
func (v *vconn) SetWriteDeadline(time.Time) error { return nil }
