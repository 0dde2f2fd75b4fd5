package mux

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listener accepts connections and counts them; it answers nothing.
type listener struct {
	ln       net.Listener
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func listen(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &listener{ln: ln}
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
// concurrently, so pipeline.concurrent_batches was exceeded under load).
func TestConcurrentDialsOpenConfigSockets(t *testing.T) {
	for _, sockets := range []int{1, 3} {
		t.Run(fmt.Sprint(sockets), func(t *testing.T) {
			l := listen(t)
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
		l := listen(t)
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
