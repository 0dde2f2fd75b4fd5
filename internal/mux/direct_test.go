package mux_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/internal/resp"
)

// preparer is a Config.Prepare that sends its handshake (none: the
// connection is kept as is) and counts the sockets it prepared and the
// anchors closed.
type preparer struct {
	handshake []string
	prepared  atomic.Int64
	closed    atomic.Int64
	// failing preparations before the first that succeeds, and attempts
	failing  atomic.Int64
	attempts atomic.Int64
}

func (p *preparer) prepare(ctx context.Context, c net.Conn) (io.Closer, error) {
	if p.attempts.Add(1) <= p.failing.Load() {
		return nil, errors.New("LOADING Redis is loading the dataset in memory")
	}
	if len(p.handshake) > 0 {
		if _, err := c.Write(resp.Command(p.handshake...)); err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetReadDeadline(dl)
		}
		buf := make([]byte, 512)
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(string(buf[:n]), "+OK") {
			return nil, fmt.Errorf("handshake: %q", buf[:n])
		}
	}
	p.prepared.Add(1)
	return closerFunc(func() error { p.closed.Add(1); return c.Close() }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// do runs one command through d.Do and returns its reply frame.
func do(d *mux.Dialer, deadline time.Time, args ...string) (string, error) {
	var got string
	err := d.Do(resp.Command(args...), deadline, func(frame []byte) error {
		got = string(frame)
		return nil
	})
	return got, err
}

// readyForDo waits until d.Do has a socket.
func readyForDo(t *testing.T, d *mux.Dialer) {
	t.Helper()
	redistest.Eventually(t, wait, "a socket ready for Do", func() bool {
		_, err := do(d, time.Now().Add(wait), "ECHO", "ready?")
		return !errors.Is(err, mux.ErrNotReady)
	})
}

// Do sends nothing until a socket is prepared: without Prepare, or
// before any socket, it returns ErrNotReady. Once a dial has opened a
// socket, Prepare runs once for it and Do's commands go on it.
func TestDoNeedsAPreparedSocket(t *testing.T) {
	srv := startFake(t, answer(echo))
	plain := newDialer(t, mux.Config{})
	dial(t, plain, srv.Addr())
	_, err := do(plain, time.Time{}, "ECHO", "x")
	assert.ErrorIs(t, err, mux.ErrNotReady, "no Prepare: no socket for Do")

	p := &preparer{}
	d := newDialer(t, mux.Config{Prepare: p.prepare})
	_, err = do(d, time.Time{}, "ECHO", "x")
	assert.ErrorIs(t, err, mux.ErrNotReady, "no socket yet")
	c := dial(t, d, srv.Addr())
	readyForDo(t, d)
	got, err := do(d, time.Now().Add(wait), "ECHO", "direct")
	require.NoError(t, err)
	assert.Equal(t, bulk("direct"), got)
	c.send(t, "ECHO", "virtual")
	assert.Equal(t, bulk("virtual"), c.next(t))
	assert.Equal(t, int64(1), p.prepared.Load())
	st := d.Stats()
	assert.Equal(t, 1, st.Sockets)
	assert.GreaterOrEqual(t, st.Direct, uint64(2))
}

// A preparation that fails (the server still loading, say) is tried
// again, backing off, until it succeeds: the socket is not left off the
// direct path for good.
func TestFailedPrepareIsRetried(t *testing.T) {
	srv := startFake(t, answer(echo))
	p := &preparer{}
	p.failing.Store(3)
	d := newDialer(t, mux.Config{Prepare: p.prepare})
	c := dial(t, d, srv.Addr())
	readyForDo(t, d)
	assert.Equal(t, int64(4), p.attempts.Load(), "three failures, then success")
	assert.Equal(t, int64(1), p.prepared.Load())
	got, err := do(d, time.Now().Add(wait), "ECHO", "direct")
	require.NoError(t, err)
	assert.Equal(t, bulk("direct"), got)
	c.send(t, "ECHO", "virtual")
	assert.Equal(t, bulk("virtual"), c.next(t), "the socket served its connection meanwhile")
	require.NoError(t, d.Close())
	assert.Equal(t, int64(1), p.closed.Load())
}

// Against a real server: Do's commands run in the state the handshake
// left the socket in (here database 3), and interleave with a go-redis
// client's commands on the same socket, each reply reaching its own
// command.
func TestDoSharesThePreparedSocketWithGoRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := &preparer{handshake: []string{"SELECT", "3"}}
	d := newDialer(t, mux.Config{Prepare: p.prepare})
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), Dialer: d.DialContext, PoolSize: 16, DB: 3})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())
	readyForDo(t, d)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				key, val := fmt.Sprintf("do:%d", g), fmt.Sprintf("v%d", i)
				got, err := do(d, time.Now().Add(wait), "SET", key, val)
				if !assert.NoError(t, err) || !assert.Equal(t, "+OK\r\n", got) {
					return
				}
				got, err = do(d, time.Now().Add(wait), "GET", key)
				if !assert.NoError(t, err) || !assert.Equal(t, bulk(val), got) {
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 200 {
				key, val := fmt.Sprintf("gr:%d", g), fmt.Sprintf("w%d", i)
				if !assert.NoError(t, rdb.Set(ctx, key, val, 0).Err()) {
					return
				}
				got, err := rdb.Get(ctx, key).Result()
				if !assert.NoError(t, err) || !assert.Equal(t, val, got) {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, d.Stats().Sockets)
	assert.GreaterOrEqual(t, d.Stats().Direct, uint64(8*400))

	own := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	defer own.Close()
	assert.Equal(t, "v199", own.Get(ctx, "do:0").Val(), "Do's SETs went to database 3")
	assert.Equal(t, int64(0), redis.NewClient(&redis.Options{Addr: srv.Addr()}).Exists(ctx, "do:0").Val(),
		"nothing of Do's in database 0")
}

// A push on a socket (a maintenance notice, an invalidation) is for the
// connections on it: Do leaves the socket for good, and lets its
// prepared connection go, while the connections keep working.
func TestPushEndsDo(t *testing.T) {
	const push = ">2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n"
	srv := startFake(t, answer(func(s *fakeServer, args []string) string {
		if strings.EqualFold(args[0], "PUSHME") {
			return push + "+PUSHED\r\n"
		}
		return echo(s, args)
	}))
	p := &preparer{}
	d := newDialer(t, mux.Config{Prepare: p.prepare})
	c := dial(t, d, srv.Addr())
	readyForDo(t, d)
	c.send(t, "PUSHME")
	assert.Equal(t, push, c.next(t))
	assert.Equal(t, "+PUSHED\r\n", c.next(t))
	_, err := do(d, time.Now().Add(wait), "ECHO", "after")
	assert.ErrorIs(t, err, mux.ErrNotReady)
	redistest.Eventually(t, wait, "the prepared connection closed", func() bool { return p.closed.Load() == 1 })
	c.send(t, "ECHO", "still")
	assert.Equal(t, bulk("still"), c.next(t))
	assert.Equal(t, 1, d.Stats().Sockets)
}

// A deadline that passes fails Do's command as a timeout, at the
// deadline; the socket is retired (Do and new connections leave it), and
// since nothing else uses it, it is closed although the reply never
// came.
func TestDoDeadline(t *testing.T) {
	h := newHold()
	srv := startFake(t, answer(h.reply))
	defer close(h.release)
	p := &preparer{}
	d := newDialer(t, mux.Config{Prepare: p.prepare})
	c := dial(t, d, srv.Addr())
	readyForDo(t, d)
	require.NoError(t, c.Close()) // the prepared connection alone keeps the socket

	start := time.Now()
	_, err := do(d, start.Add(50*time.Millisecond), "HOLD")
	took := time.Since(start)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.False(t, notSent(err))
	assert.GreaterOrEqual(t, took, 50*time.Millisecond)
	assert.Less(t, took, time.Second)
	noSockets(t, d)
	assert.Equal(t, int64(1), p.closed.Load())
	_, err = do(d, time.Now().Add(wait), "ECHO", "x")
	assert.ErrorIs(t, err, mux.ErrNotReady)
}

// A command Do queued behind a write that never ends fails as not sent
// when the socket breaks; the one written fails with the socket's error.
func TestDoQueuedFailsAsNotSent(t *testing.T) {
	servers := make(chan net.Conn, 1)
	p := &preparer{}
	d := newDialer(t, mux.Config{Dial: pipeDialer(servers), Prepare: p.prepare})
	dial(t, d, "pipe")
	server := <-servers
	defer server.Close()
	// Prepare returns before the socket is listed for Do.
	redistest.Eventually(t, wait, "ready for Do", func() bool { return mux.ReadySockets(d) == 1 })

	first := make(chan error, 1)
	go func() { _, err := do(d, time.Time{}, "INCR", "n"); first <- err }()
	redistest.Eventually(t, wait, "the first write", func() bool { return d.Stats().Writes == 1 })
	const queued = 64
	errs := make(chan error, queued)
	for range queued {
		go func() { _, err := do(d, time.Time{}, "INCR", "n"); errs <- err }()
	}
	redistest.Eventually(t, wait, "all queued", func() bool { return d.Stats().Direct == queued+1 })
	_ = server.Close()
	err := <-first
	require.Error(t, err)
	assert.False(t, notSent(err), "%v", err)
	for range queued {
		err := <-errs
		require.Error(t, err)
		assert.True(t, notSent(err), "%v", err)
	}
	noSockets(t, d)
}

// FreshFor keeps Do off a socket nothing was read from for that long; a
// reply read on it makes it fresh again.
func TestDoLeavesAnIdleSocket(t *testing.T) {
	srv := startFake(t, answer(echo))
	p := &preparer{}
	d := newDialer(t, mux.Config{Prepare: p.prepare, FreshFor: 100 * time.Millisecond})
	c := dial(t, d, srv.Addr())
	c.send(t, "ECHO", "x")
	assert.Equal(t, bulk("x"), c.next(t))
	readyForDo(t, d)
	time.Sleep(150 * time.Millisecond) // the idle time under test
	_, err := do(d, time.Now().Add(wait), "ECHO", "stale")
	assert.ErrorIs(t, err, mux.ErrNotReady)
	c.send(t, "ECHO", "refresh")
	assert.Equal(t, bulk("refresh"), c.next(t))
	got, err := do(d, time.Now().Add(wait), "ECHO", "fresh")
	require.NoError(t, err)
	assert.Equal(t, bulk("fresh"), got)
}

// Close fails Do's commands waiting for replies at once, with ErrClosed.
func TestCloseFailsDo(t *testing.T) {
	srv := startFake(t, func(s *fakeServer, c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // never answers
	p := &preparer{}
	d := mux.New(mux.Config{Dial: (&net.Dialer{}).DialContext, Prepare: p.prepare})
	c, err := d.DialContext(context.Background(), "tcp", srv.Addr())
	require.NoError(t, err)
	defer c.Close()
	redistest.Eventually(t, wait, "ready for Do", func() bool { return mux.ReadySockets(d) == 1 })
	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := do(d, time.Time{}, "PING"); errs <- err }()
	}
	redistest.Eventually(t, wait, "all sent", func() bool { return d.Stats().Direct == 4 })
	start := time.Now()
	require.NoError(t, d.Close())
	for range 4 {
		assert.ErrorIs(t, <-errs, mux.ErrClosed)
	}
	assert.Less(t, time.Since(start), time.Second)
}

// TestMaxLifetimeRecyclesSockets: with Config.MaxLifetime, a socket is
// replaced once it is that old, under load, without a failed command:
// go-redis's commands and Do's move to a new, prepared socket, and the
// old one closes (pool.conn_max_lifetime for pipeline.auto's sockets).
func TestMaxLifetimeRecyclesSockets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	p := &preparer{}
	d := newDialer(t, mux.Config{Prepare: p.prepare, MaxLifetime: 200 * time.Millisecond})
	rdb := newClient(t, d, srv.Addr(), 8)
	received := func() int64 { return srv.InfoInt(t, "stats", "total_connections_received") }
	before := received()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var incrs, direct atomic.Int64
	errs := make(chan error, 16)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := rdb.Incr(ctx, "life:n").Err(); err != nil {
					errs <- err
					return
				}
				incrs.Add(1)
				got, err := do(d, time.Now().Add(wait), "INCR", "life:n")
				switch {
				case errors.Is(err, mux.ErrNotReady): // between sockets: the caller's ordinary path
				case err != nil:
					errs <- err
					return
				case !strings.HasPrefix(got, ":"):
					errs <- fmt.Errorf("Do's INCR answered %q", got)
					return
				default:
					incrs.Add(1)
					direct.Add(1)
				}
			}
		}()
	}
	redistest.Eventually(t, wait, "three sockets opened in turn", func() bool { return received()-before >= 3 })
	// The replaced ones close as go-redis drops their connections, which
	// under the load it does at once: they do not pile up.
	redistest.Eventually(t, wait, "the replaced sockets closed", func() bool { return d.Stats().Sockets <= 2 })
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a command failed while sockets were replaced: %v", err)
	}
	n, err := admin.Get(ctx, "life:n").Int64()
	require.NoError(t, err)
	assert.Equal(t, incrs.Load(), n, "every INCR that succeeded was applied once, and no other")
	assert.Positive(t, direct.Load())
	assert.GreaterOrEqual(t, p.prepared.Load(), int64(3), "each new socket was prepared for Do")

	// Idle, go-redis keeps its connections on the old sockets until it
	// next takes them; the sockets close anyway once they have been quiet
	// for a second past their age, and the next command finds a new one.
	redistest.Eventually(t, wait, "every socket closed once quiet past its age", func() bool { return d.Stats().Sockets == 0 })
	assert.LessOrEqual(t, srv.InfoInt(t, "clients", "connected_clients"), int64(2), "no connection left on the server but admin's and the helpers'")
	require.NoError(t, rdb.Incr(ctx, "life:n").Err(), "a command after the sockets closed")
}
