package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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

// TestConcurrentDialsOpenConfigSockets: however many virtual connections
// are dialed at once, an address gets Config.Sockets sockets, not one per
// dial that found none open yet (go-redis dials a pool's connections
// concurrently, so pipeline.concurrent_batches was exceeded under load).
func TestConcurrentDialsOpenConfigSockets(t *testing.T) {
	for _, sockets := range []int{1, 3} {
		t.Run(fmt.Sprint(sockets), func(t *testing.T) {
			l := listenSilent(t)
			var dials atomic.Int64
			d := New(Config{Dial: slowDial(20*time.Millisecond, &dials), Sockets: sockets})
			defer d.Close()
			const callers = 32
			conns := make([]net.Conn, callers)
			var wg sync.WaitGroup
			for i := range conns {
				wg.Go(func() {
					c, err := d.DialContext(context.Background(), "tcp", l.ln.Addr().String())
					assert.NoError(t, err)
					conns[i] = c
				})
			}
			wg.Wait()
			assert.Equal(t, int64(sockets), dials.Load(), "dials")
			assert.Equal(t, sockets, d.Stats().Sockets)
			for _, c := range conns {
				require.NotNil(t, c)
			}
			require.Eventually(t, func() bool { return l.accepted.Load() == int64(sockets) }, time.Second, time.Millisecond)
			for _, c := range conns {
				require.NoError(t, c.Close())
			}
			assert.Zero(t, d.Stats().Sockets, "a socket closes with its last connection")
		})
	}
}

// TestWaitingDialsShareTheOutcome: callers that wait for a dial under way
// get its error when it fails, or, when it failed only because its own
// caller's context ended, dial again themselves; a waiter's own context
// ends its wait.
func TestWaitingDialsShareTheOutcome(t *testing.T) {
	t.Run("error", func(t *testing.T) {
		refused := errors.New("refused")
		var dials atomic.Int64
		d := New(Config{Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			time.Sleep(20 * time.Millisecond)
			return nil, refused
		}})
		defer d.Close()
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:1")
				assert.ErrorIs(t, err, refused)
			})
		}
		wg.Wait()
		assert.Less(t, dials.Load(), int64(8), "waiters took the dial's error")
	})
	t.Run("dialer's context ended", func(t *testing.T) {
		l := listenSilent(t)
		var dials atomic.Int64
		d := New(Config{Dial: slowDial(50*time.Millisecond, &dials)})
		defer d.Close()
		short, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		first := make(chan error, 1)
		go func() {
			_, err := d.DialContext(short, "tcp", l.ln.Addr().String())
			first <- err
		}()
		require.Eventually(t, func() bool { return dials.Load() == 1 }, time.Second, time.Millisecond)
		c, err := d.DialContext(context.Background(), "tcp", l.ln.Addr().String())
		require.NoError(t, err, "the waiter dialed again")
		require.ErrorIs(t, <-first, context.DeadlineExceeded)
		require.NoError(t, c.Close())
	})
	t.Run("waiter's context ended", func(t *testing.T) {
		var dials atomic.Int64
		release := make(chan struct{})
		d := New(Config{Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			dials.Add(1)
			select {
			case <-release:
				return nil, errors.New("refused")
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}})
		defer d.Close()
		defer close(release)
		go func() { _, _ = d.DialContext(context.Background(), "tcp", "127.0.0.1:1") }()
		require.Eventually(t, func() bool { return dials.Load() == 1 }, time.Second, time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := d.DialContext(ctx, "tcp", "127.0.0.1:1")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
		assert.Equal(t, int64(1), dials.Load(), "the waiter waited for the dial under way")
	})
}

// A socket retired at its maximum age is closed only when quiet: nothing
// queued since the last look, and no reply awaited. Otherwise it is
// looked at again later.
func TestCloseWhenQuiet(t *testing.T) {
	l := listenSilent(t) // never answers
	var dials atomic.Int64
	d := New(Config{Dial: slowDial(0, &dials), Sockets: 3})
	defer d.Close()
	addr := l.ln.Addr().String()
	socketOf := func() (*vconn, *socket) {
		c, err := d.DialContext(context.Background(), "tcp", addr)
		require.NoError(t, err)
		v := c.(*vconn)
		return v, v.s
	}
	state := func(s *socket) (queues uint64, err error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.queues, s.err
	}
	stopLooking := func(s *socket) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.aged != nil {
			s.aged.Stop()
		}
	}

	_, quiet := socketOf()
	seen, _ := state(quiet)
	quiet.retire()
	quiet.closeWhenQuiet(seen)
	_, err := state(quiet)
	require.ErrorIs(t, err, errAged, "quiet: closed")

	busy, awaiting := socketOf()
	_, err = busy.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	require.NoError(t, err)
	seen, _ = state(awaiting)
	awaiting.retire()
	awaiting.closeWhenQuiet(seen)
	_, err = state(awaiting)
	require.NoError(t, err, "a reply awaited: left open")
	stopLooking(awaiting)

	_, active := socketOf()
	before, _ := state(active)
	active.enqueue(nil, []byte("*1\r\n$4\r\nPING\r\n"), 0) // queued, no reply to wait for
	active.retire()
	active.closeWhenQuiet(before)
	_, err = state(active)
	require.NoError(t, err, "queued since the last look: left open")
	stopLooking(active)
	after, _ := state(active)
	active.closeWhenQuiet(after)
	_, err = state(active)
	require.ErrorIs(t, err, errAged, "quiet since: closed")
}
