package mux

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// silentListener accepts connections and counts them; it answers nothing.
type silentListener struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func listenSilent(t *testing.T) *silentListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &silentListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			l.mu.Lock()
			l.conns = append(l.conns, c)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, c := range l.conns {
			_ = c.Close()
		}
	})
	return l
}

// slowDial dials TCP after a pause, which leaves concurrent dials of the
// same address time to overlap.
func slowDial(pause time.Duration, dials *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// TestConcurrentDialsOpenConfigSockets: however many virtual connections
// are dialed at once, an address gets Config.Sockets sockets, not one per
// dial that found none open yet (go-redis dials a pool's connections

// TestRetiredSocketFailsThePoolCheck: a read deadline that passes retires
// the socket; its other virtual connections then fail go-redis's check of
// an idle connection (SyscallConn), so that the pool drops them rather
// than send a command to a socket that may be stuck; new connections go
// to a new socket, and the retired one closes with its last connection.
// A healthy virtual connection passes the check with nothing to peek at.
func TestRetiredSocketFailsThePoolCheck(t *testing.T) {
	l := listenSilent(t) // never answers
	var dials atomic.Int64
	d := New(Config{Dial: slowDial(0, &dials)})
	defer d.Close()
	addr := l.ln.Addr().String()
	v1, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	v2, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	require.Equal(t, 1, d.Stats().Sockets)

	raw, err := v2.(syscall.Conn).SyscallConn()
	require.NoError(t, err, "a healthy connection passes the check")
	called := false
	require.NoError(t, raw.Read(func(uintptr) bool { called = true; return true }))
	require.False(t, called, "nothing to peek at")

	_, err = v1.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	require.NoError(t, err)
	require.NoError(t, v1.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
	_, err = v1.Read(make([]byte, 16))
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout())

	_, err = v2.(syscall.Conn).SyscallConn()
	require.ErrorIs(t, err, errRetired, "the idle connection of the retired socket fails the check")
	v3, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	require.Equal(t, 2, d.Stats().Sockets, "a new socket")
	_, err = v3.(syscall.Conn).SyscallConn()
	require.NoError(t, err)

	require.NoError(t, v1.Close())
	require.NoError(t, v2.Close())
	require.Equal(t, 1, d.Stats().Sockets, "the retired socket closed with its last connection")
	require.NoError(t, v3.Close())
}
