package mux

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// pipeDials is a Config.Dial that counts its dials and answers each with
// one end of an in-memory pipe (nothing is written in these tests). gate,
// when set, holds every dial until it is closed.
type pipeDials struct {
	n    atomic.Int32
	gate chan struct{}
	err  error

	mu    sync.Mutex
	peers []net.Conn
}

func (p *pipeDials) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	p.n.Add(1)
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if p.err != nil {
		return nil, p.err
	}
	a, b := net.Pipe()
	p.mu.Lock()
	p.peers = append(p.peers, b)
	p.mu.Unlock()
	return a, nil
}

func (p *pipeDials) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.peers {
		_ = c.Close()
	}
}

// dialAll dials n virtual connections at once, as go-redis does for
// concurrent callers on a cold pool.
func dialAll(d *Dialer, n int) ([]net.Conn, []error) {
	conns, errs := make([]net.Conn, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], errs[i] = d.DialContext(context.Background(), "tcp", "127.0.0.1:6379") })
	}
	wg.Wait()
	return conns, errs
}

// Concurrent dials open Config.Sockets sockets, not one each: the dials
// are held until every caller has arrived, so that all of them find the
// first ones under way.
func TestConcurrentDialsOpenConfiguredSockets(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, sockets := range []int{1, 3} {
		p := &pipeDials{gate: make(chan struct{})}
		d := New(Config{Dial: p.dial, Sockets: sockets})
		var conns []net.Conn
		var errs []error
		done := make(chan struct{})
		go func() {
			conns, errs = dialAll(d, 32)
			close(done)
		}()
		require.Eventually(t, func() bool {
			d.mu.Lock()
			defer d.mu.Unlock()
			key := "tcp\x00127.0.0.1:6379"
			return d.dialing[key] == sockets && d.dialed[key] != nil
		}, 5*time.Second, time.Millisecond, "the first dials are under way and the others wait")
		close(p.gate)
		<-done
		for i := range conns {
			require.NoError(t, errs[i])
			require.NotNil(t, conns[i])
		}
		assert.Equal(t, int32(sockets), p.n.Load(), "dials with Sockets: %d", sockets)
		assert.Equal(t, sockets, d.Stats().Sockets)
		// More connections later reuse the sockets too.
		more, errs := dialAll(d, 8)
		for _, err := range errs {
			require.NoError(t, err)
		}
		assert.Equal(t, int32(sockets), p.n.Load())
		for _, c := range append(conns, more...) {
			require.NoError(t, c.Close())
		}
		assert.Zero(t, d.Stats().Sockets, "a socket closes with its last connection")
		require.NoError(t, d.Close())
		p.close()
	}
}

// When the dial the others wait for fails, they fail with its error
// instead of each dialing in turn (a server that is down costs one
// connect timeout, not one per caller).
func TestWaitersGetTheFailedDialsError(t *testing.T) {
	defer goleak.VerifyNone(t)
	refused := errors.New("connection refused")
	p := &pipeDials{gate: make(chan struct{}), err: refused}
	d := New(Config{Dial: p.dial})
	done := make(chan []error)
	go func() {
		_, errs := dialAll(d, 16)
		done <- errs
	}()
	require.Eventually(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.dialed["tcp\x00127.0.0.1:6379"] != nil
	}, 5*time.Second, time.Millisecond)
	close(p.gate)
	errs := <-done
	for _, err := range errs {
		assert.ErrorIs(t, err, refused)
	}
	assert.Less(t, p.n.Load(), int32(16), "the waiters did not dial")
	require.NoError(t, d.Close())
}

// A waiter whose context ends stops waiting.
func TestWaitingDialHonoursItsContext(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := &pipeDials{gate: make(chan struct{})}
	d := New(Config{Dial: p.dial})
	first := make(chan error, 1)
	go func() {
		c, err := d.DialContext(context.Background(), "tcp", "a:1")
		if err == nil {
			err = c.Close()
		}
		first <- err
	}()
	require.Eventually(t, func() bool { return p.n.Load() == 1 }, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := d.DialContext(ctx, "tcp", "a:1")
	assert.ErrorIs(t, err, context.Canceled)
	close(p.gate)
	require.NoError(t, <-first)
	require.NoError(t, d.Close())
	p.close()
}
