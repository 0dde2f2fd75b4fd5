package mux_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
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

// wait bounds every wait of these tests that should end at once: a
// failure shows as an error instead of a hung test.
const wait = 10 * time.Second

// newDialer returns a Dialer closed when the test ends (before the
// servers the test started earlier are stopped). cfg.Dial defaults to
// net.Dialer's.
func newDialer(t *testing.T, cfg mux.Config) *mux.Dialer {
	t.Helper()
	if cfg.Dial == nil {
		var nd net.Dialer
		cfg.Dial = nd.DialContext
	}
	d := mux.New(cfg)
	t.Cleanup(func() { assert.NoError(t, d.Close()) })
	return d
}

// newClient returns a go-redis client whose connections are d's virtual
// ones.
func newClient(t *testing.T, d *mux.Dialer, addr string, poolSize int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, Dialer: d.DialContext, PoolSize: poolSize})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// conn is a virtual connection read frame by frame.
type conn struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, d *mux.Dialer, addr string) *conn {
	t.Helper()
	c, err := d.DialContext(context.Background(), "tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return &conn{Conn: c, r: bufio.NewReader(c)}
}

func (c *conn) send(t *testing.T, args ...string) {
	t.Helper()
	_, err := c.Write(resp.Command(args...))
	require.NoError(t, err)
}

// next reads the next frame, failing the test after wait.
func (c *conn) next(t *testing.T) string {
	t.Helper()
	f, err := c.frame(time.Now().Add(wait))
	require.NoError(t, err)
	return f
}

// frame reads the next frame under a read deadline.
func (c *conn) frame(deadline time.Time) (string, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return "", err
	}
	f, _, err := resp.ReadFrame(c.r, nil)
	return string(f), err
}

// notSent reports whether err says that its command was never written.
func notSent(err error) bool {
	var ns interface{ NotSent() bool }
	return errors.As(err, &ns) && ns.NotSent()
}

// noSockets waits until d has no socket open: a broken socket wakes its
// readers before the Dialer forgets it.
func noSockets(t *testing.T, d *mux.Dialer) {
	t.Helper()
	redistest.Eventually(t, wait, "no socket open", func() bool { return d.Stats().Sockets == 0 })
}

func bulk(s string) string { return fmt.Sprintf("$%d\r\n%s\r\n", len(s), s) }

// fakeServer is a RESP server on 127.0.0.1 whose behaviour a test
// scripts: serve runs for each accepted connection until it returns or
// the server closes.
type fakeServer struct {
	ln    net.Listener
	done  chan struct{} // closed when the server closes
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startFake(t *testing.T, serve func(s *fakeServer, c net.Conn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &fakeServer{ln: ln, done: make(chan struct{})}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				serve(s, c)
			})
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *fakeServer) Addr() string { return s.ln.Addr().String() }

// accepted returns how many connections the server accepted.
func (s *fakeServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *fakeServer) close() {
	close(s.done)
	_ = s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// answer serves commands one after the other with what reply returns
// for each (raw RESP, written as is), until the connection or the server
// closes.
func answer(reply func(s *fakeServer, args []string) string) func(*fakeServer, net.Conn) {
	return func(s *fakeServer, c net.Conn) {
		r := bufio.NewReader(c)
		for {
			args, _, err := resp.ReadCommand(r)
			if err != nil || len(args) == 0 {
				return
			}
			if _, err := io.WriteString(c, reply(s, args)); err != nil {
				return
			}
		}
	}
}

// echo answers ECHO with its argument and anything else with +OK.
func echo(_ *fakeServer, args []string) string {
	if strings.EqualFold(args[0], "ECHO") && len(args) == 2 {
		return bulk(args[1])
	}
	return "+OK\r\n"
}

// Many goroutines share one socket: each reply reaches the command it
// answers (every goroutine has keys of its own and checks every value and
// count), and the commands of concurrent callers go out together.
func TestConcurrentCommandsShareOneSocket(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	d := newDialer(t, mux.Config{})
	rdb := newClient(t, d, srv.Addr(), 64)
	ctx := context.Background()

	const workers, rounds = 64, 50
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			key, counter := fmt.Sprintf("key:%d", w), fmt.Sprintf("counter:%d", w)
			for i := range rounds {
				val := fmt.Sprintf("value %d of %d", i, w)
				if err := rdb.Set(ctx, key, val, 0).Err(); err != nil {
					errs <- err
					return
				}
				if got, err := rdb.Get(ctx, key).Result(); err != nil || got != val {
					errs <- fmt.Errorf("GET %s = %q, %v; want %q", key, got, err, val)
					return
				}
				if n, err := rdb.Incr(ctx, counter).Result(); err != nil || n != int64(i+1) {
					errs <- fmt.Errorf("INCR %s = %d, %v; want %d", counter, n, err, i+1)
					return
				}
				if err := rdb.Incr(ctx, "total").Err(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total, err := rdb.Get(ctx, "total").Int()
	require.NoError(t, err)
	assert.Equal(t, workers*rounds, total, "every INCR counted exactly once")

	st := d.Stats()
	assert.Equal(t, 1, st.Sockets)
	assert.GreaterOrEqual(t, st.Commands, uint64(4*workers*rounds))
	// Batching: callers waiting at the same time share writes.
	assert.Greater(t, st.Commands, st.Writes, "mean batch %.2f", float64(st.Commands)/float64(st.Writes))
	t.Logf("%d commands in %d writes (%.1f per write)", st.Commands, st.Writes, float64(st.Commands)/float64(st.Writes))
	// The server saw that one socket (and the test's own admin connection
	// at most).
	clients, err := rdb.ClientList(ctx).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, strings.Count(clients, "\n"), 2, clients)
}

// A pipeline of one connection is one Write of many commands: their
// replies come back in order.
func TestPipelineOnOneConnection(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	d := newDialer(t, mux.Config{})
	rdb := newClient(t, d, srv.Addr(), 4)
	ctx := context.Background()
	cmds, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range 1000 {
			p.Incr(ctx, "n")
			p.Echo(ctx, fmt.Sprint(i))
		}
		return nil
	})
	require.NoError(t, err)
	for i := range 1000 {
		assert.Equal(t, int64(i+1), cmds[2*i].(*redis.IntCmd).Val())
		assert.Equal(t, fmt.Sprint(i), cmds[2*i+1].(*redis.StringCmd).Val())
	}
}

// countWrites counts the Write calls go-redis makes on its connections.
type countWrites struct {
	net.Conn
	n *atomic.Int64
}

func (c countWrites) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// A command larger than go-redis's write buffer reaches the connection in
// several Writes: it is queued only once complete, so the commands of
// other connections are never spliced into it. A reply far larger than the
// reader's buffer arrives whole.
func TestLargeValueAndLargeReply(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	d := newDialer(t, mux.Config{})
	var writes atomic.Int64
	rdb := redis.NewClient(&redis.Options{
		Addr: srv.Addr(), PoolSize: 8, ReadTimeout: wait, WriteTimeout: wait,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countWrites{c, &writes}, nil
		},
	})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx := context.Background()
	require.NoError(t, rdb.Ping(ctx).Err())

	// Small commands on other connections of the same socket all along.
	stop := make(chan struct{})
	echoErr := make(chan error, 1)
	go func() {
		defer close(echoErr)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			want := fmt.Sprint(i)
			if got, err := rdb.Echo(ctx, want).Result(); err != nil || got != want {
				echoErr <- fmt.Errorf("ECHO %s = %q, %v", want, got, err)
				return
			}
		}
	}()

	big := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	big[len(big)/2] = 'X' // not periodic: a piece in the wrong place shows
	before := writes.Load()
	require.NoError(t, rdb.Set(ctx, "big", big, 0).Err())
	assert.Greater(t, writes.Load()-before, int64(1), "the SET went in several writes")
	got, err := rdb.Get(ctx, "big").Bytes()
	require.NoError(t, err)
	require.True(t, bytes.Equal(big, got), "GET big returned %d bytes, not the value set", len(got))

	const n = 100_000
	for i := 0; i < n; i += 1000 {
		vals := make([]any, 1000)
		for j := range vals {
			vals[j] = fmt.Sprintf("element-%d", i+j)
		}
		require.NoError(t, rdb.RPush(ctx, "list", vals...).Err())
	}
	list, err := rdb.LRange(ctx, "list", 0, -1).Result()
	require.NoError(t, err)
	require.Len(t, list, n)
	for i, v := range list {
		if v != fmt.Sprintf("element-%d", i) {
			t.Fatalf("element %d is %q", i, v)
		}
	}
	close(stop)
	require.NoError(t, <-echoErr)
	assert.Equal(t, 1, d.Stats().Sockets)
}

// A RESP3 push frame is about the socket: every virtual connection on it
// reads the push before its next reply, and the push answers no command.
func TestPushReachesEveryConnection(t *testing.T) {
	const push = ">2\r\n$7\r\nmessage\r\n$5\r\nhello\r\n"
	srv := startFake(t, answer(func(s *fakeServer, args []string) string {
		if strings.EqualFold(args[0], "PUSHME") {
			return push + "+PUSHED\r\n"
		}
		return echo(s, args)
	}))
	d := newDialer(t, mux.Config{})
	var cs []*conn
	for i := range 3 {
		c := dial(t, d, srv.Addr())
		c.send(t, "ECHO", fmt.Sprint("before ", i))
		assert.Equal(t, bulk(fmt.Sprint("before ", i)), c.next(t))
		cs = append(cs, c)
	}
	require.Equal(t, 1, d.Stats().Sockets)

	cs[0].send(t, "PUSHME")
	assert.Equal(t, push, cs[0].next(t))
	assert.Equal(t, "+PUSHED\r\n", cs[0].next(t))
	for i, c := range cs {
		c.send(t, "ECHO", fmt.Sprint("after ", i))
		if i > 0 {
			assert.Equal(t, push, c.next(t), "connection %d", i)
		}
		assert.Equal(t, bulk(fmt.Sprint("after ", i)), c.next(t), "connection %d", i)
	}
	// A connection dialed after the push does not get it.
	late := dial(t, d, srv.Addr())
	late.send(t, "ECHO", "late")
	assert.Equal(t, bulk("late"), late.next(t))
}

// hold answers HOLD only when the test releases it, ECHO at once (after
// the replies before it, as a server answers in order).
type hold struct {
	release chan struct{}
	held    chan struct{} // a HOLD arrived
}

func newHold() *hold { return &hold{release: make(chan struct{}), held: make(chan struct{}, 16)} }

func (h *hold) reply(s *fakeServer, args []string) string {
	if strings.EqualFold(args[0], "HOLD") {
		h.held <- struct{}{}
		select {
		case <-h.release:
		case <-s.done:
		}
		return "+HELD\r\n"
	}
	return echo(s, args)
}

// A read deadline that passes fails that connection's read only, as a
// timeout; the replies of the other connections on the socket still
// arrive, the late reply goes to nobody, and new connections get a new
// socket.
func TestReadDeadline(t *testing.T) {
	h := newHold()
	srv := startFake(t, answer(h.reply))
	d := newDialer(t, mux.Config{})
	slow := dial(t, d, srv.Addr())
	other := dial(t, d, srv.Addr())
	require.Equal(t, 1, d.Stats().Sockets)

	slow.send(t, "HOLD")
	<-h.held
	other.send(t, "ECHO", "mine")
	start := time.Now()
	_, err := slow.frame(time.Now().Add(100 * time.Millisecond))
	require.Error(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 100*time.Millisecond)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	// The connection is broken: a late reply would answer its next command.
	_, err = slow.Write(resp.Command("ECHO", "again"))
	assert.Error(t, err)

	// The socket is retired: a new connection gets a socket of its own.
	fresh := dial(t, d, srv.Addr())
	assert.Equal(t, 2, d.Stats().Sockets)
	redistest.Eventually(t, wait, "a second connection", func() bool { return srv.accepted() == 2 })
	fresh.send(t, "ECHO", "fresh")
	assert.Equal(t, bulk("fresh"), fresh.next(t))

	// HOLD's late reply goes to nobody; the reply after it to its command.
	close(h.release)
	assert.Equal(t, bulk("mine"), other.next(t))
	other.send(t, "ECHO", "still")
	assert.Equal(t, bulk("still"), other.next(t))

	// The retired socket closes with its last connection.
	require.NoError(t, slow.Close())
	assert.Equal(t, 2, d.Stats().Sockets)
	require.NoError(t, other.Close())
	assert.Equal(t, 1, d.Stats().Sockets)
}

// The same with a real server and go-redis: a command whose read timeout
// passes fails as a timeout, a command queued behind it on the same
// socket gets its own reply.
func TestReadTimeoutWithGoRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	d := newDialer(t, mux.Config{})
	ctx := context.Background()
	impatient := redis.NewClient(&redis.Options{Addr: srv.Addr(), Dialer: d.DialContext, ReadTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = impatient.Close() })
	patient := newClient(t, d, srv.Addr(), 4)
	require.NoError(t, impatient.Ping(ctx).Err())
	require.NoError(t, patient.Ping(ctx).Err())
	require.Equal(t, 1, d.Stats().Sockets)

	// DEBUG SLEEP would need enable-debug-command; a BLPOP that times out
	// on the server holds the socket as long.
	done := make(chan error, 1)
	go func() {
		_, err := impatient.Do(ctx, "BLPOP", "nothing", "0.5").Result()
		done <- err
	}()
	redistest.Eventually(t, wait, "BLPOP blocks", func() bool {
		info, _ := srv.Client(t).Info(ctx, "clients").Result()
		return strings.Contains(info, "blocked_clients:1")
	})
	assert.Equal(t, "queued", patient.Echo(ctx, "queued").Val())
	err := <-done
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout(), "%v", err)
	assert.Equal(t, "after", patient.Echo(ctx, "after").Val())
}

// A socket the server breaks fails the commands waiting on it (not as
// "not sent": they were); the next connection gets a new socket.
func TestServerKillsSocket(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	c.send(t, "BLPOP", "nothing", "10")
	redistest.Eventually(t, wait, "BLPOP blocks", func() bool {
		info, _ := admin.Info(ctx, "clients").Result()
		return strings.Contains(info, "blocked_clients:1")
	})
	require.NoError(t, admin.ClientKillByFilter(ctx, "ADDR", c.LocalAddr().String()).Err())
	_, err := c.frame(time.Now().Add(wait))
	require.Error(t, err)
	assert.False(t, notSent(err), "%v", err)
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
	// A later write on the broken connection is not sent.
	_, err = c.Write(resp.Command("PING"))
	assert.True(t, notSent(err), "%v", err)
	noSockets(t, d)

	rdb := newClient(t, d, srv.Addr(), 4)
	assert.Equal(t, "PONG", rdb.Ping(ctx).Val())
	assert.Equal(t, 1, d.Stats().Sockets)
}

// pipeDialer dials in-memory sockets (net.Pipe: a write waits until the
// other end reads it) and hands their server ends to the test.
func pipeDialer(servers chan<- net.Conn) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		servers <- server
		return client, nil
	}
}

// A command the writer took fails with the socket's error; the commands
// still queued behind it when the socket breaks fail as not sent, so that
// the retry policy may send them again whatever they are. Their
// connections are already waiting for replies when it breaks: the error
// each gets must not depend on whether it saw the socket break first.
func TestQueuedCommandsFailAsNotSent(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   mux.Config
		brk   func(server net.Conn)
		check func(t *testing.T, err error)
	}{
		{"server closes", mux.Config{}, func(server net.Conn) { _ = server.Close() }, nil},
		{"write times out", mux.Config{WriteTimeout: 50 * time.Millisecond}, func(net.Conn) {},
			func(t *testing.T, err error) { assert.ErrorIs(t, err, os.ErrDeadlineExceeded) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			servers := make(chan net.Conn, 1)
			tc.cfg.Dial = pipeDialer(servers)
			d := newDialer(t, tc.cfg)
			sent := dial(t, d, "pipe")
			server := <-servers
			defer server.Close()

			sent.send(t, "INCR", "n")
			// The writer took it and waits in Write: nobody reads the pipe.
			redistest.Eventually(t, wait, "the first write", func() bool { return d.Stats().Writes == 1 })
			const queued = 256
			errs := make(chan error, queued)
			var reading sync.WaitGroup
			for range queued {
				c := dial(t, d, "pipe")
				c.send(t, "INCR", "n")
				reading.Add(1)
				go func() {
					reading.Done()
					_, err := c.frame(time.Now().Add(wait))
					errs <- err
				}()
			}
			reading.Wait()
			time.Sleep(10 * time.Millisecond) // let the readers reach their wait
			tc.brk(server)

			_, err := sent.frame(time.Now().Add(wait))
			require.Error(t, err)
			assert.False(t, notSent(err), "%v", err)
			if tc.check != nil {
				tc.check(t, err)
			}
			for range queued {
				err := <-errs
				require.Error(t, err)
				assert.True(t, notSent(err), "%v", err)
			}
			assert.Equal(t, uint64(1), d.Stats().Commands, "one command taken by the writer")
			noSockets(t, d)
		})
	}
}

// Close fails the reads waiting for replies at once with ErrClosed, stops
// the sockets' goroutines before it returns, and later dials fail.
func TestClose(t *testing.T) {
	srv := startFake(t, func(s *fakeServer, c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // never answers
	d := mux.New(mux.Config{Sockets: 2, Dial: (&net.Dialer{}).DialContext})
	var cs []*conn
	for range 4 {
		c := dial(t, d, srv.Addr())
		c.send(t, "PING")
		cs = append(cs, c)
	}
	require.Equal(t, 2, d.Stats().Sockets)
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func() {
			_, err := c.frame(time.Time{}) // no deadline: only Close ends it
			errs <- err
		}()
	}
	require.NoError(t, d.Close())
	for range cs {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, mux.ErrClosed)
		case <-time.After(wait):
			t.Fatal("a read still waits after Close")
		}
	}
	// Close waited for the sockets' goroutines: they have returned (a
	// goroutine's frame may show for a moment after its deferred Done).
	redistest.Eventually(t, time.Second, "the sockets' goroutines ended", func() bool {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return !strings.Contains(stacks, "mux.(*socket).readLoop") && !strings.Contains(stacks, "mux.(*socket).writeLoop")
	})
	assert.Equal(t, 0, d.Stats().Sockets)

	_, err := d.DialContext(context.Background(), "tcp", srv.Addr())
	assert.ErrorIs(t, err, mux.ErrClosed)
	_, err = cs[0].Write(resp.Command("PING"))
	assert.ErrorIs(t, err, mux.ErrClosed)
	assert.True(t, notSent(err))
	assert.NoError(t, d.Close(), "a second Close")
}

// A reply that no command asked for, or that is not RESP, fails the socket
// with an error wrapping resp.ErrProtocol: no panic, no hang.
func TestHostileReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reply   string // to the first command
		replies int    // of them that reach the command before the error
	}{
		{"garbage type byte", "?garbage\r\n", 0},
		{"line not ended by CRLF", "+OK\n", 0},
		{"bad length", "$x\r\n", 0},
		{"bulk not followed by CRLF", "$2\r\nabc\r\n", 0},
		{"bulk over 512 MiB", "$536870913\r\n", 0},
		{"array over 2^24 elements", "*16777217\r\n", 0},
		{"unsolicited extra reply", "+OK\r\n+EXTRA\r\n", 1},
		{"push then unsolicited reply", "+OK\r\n>1\r\n+push\r\n:1\r\n", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, answer(func(*fakeServer, []string) string { return tc.reply }))
			d := newDialer(t, mux.Config{})
			c := dial(t, d, srv.Addr())
			c.send(t, "PING")
			for range tc.replies {
				c.next(t)
			}
			_, err := c.frame(time.Now().Add(wait))
			require.ErrorIs(t, err, resp.ErrProtocol)
			_, err = c.Write(resp.Command("PING"))
			assert.ErrorIs(t, err, resp.ErrProtocol)
			assert.True(t, notSent(err))
			noSockets(t, d)
		})
	}
}

// A bulk string announced at 512 MiB that never comes costs what arrived,
// not what was announced: the reader grows its buffer as data comes.
func TestHugeAnnouncedBulkCostsWhatArrives(t *testing.T) {
	srv := startFake(t, func(s *fakeServer, c net.Conn) {
		r := bufio.NewReader(c)
		if _, _, err := resp.ReadCommand(r); err != nil {
			return
		}
		_, _ = io.WriteString(c, "$536870912\r\n"+strings.Repeat("x", 100<<10))
		<-s.done
	})
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c.send(t, "GET", "huge")
	_, err := c.frame(time.Now().Add(300 * time.Millisecond))
	runtime.ReadMemStats(&after)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	require.True(t, ne.Timeout(), "%v", err)
	assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(16<<20), "allocated while the bulk was announced")
}

// A virtual connection closed while its command is in flight drops the
// reply, which answers no other command; the socket stays for the others.
func TestCloseWithCommandInFlight(t *testing.T) {
	h := newHold()
	srv := startFake(t, answer(h.reply))
	d := newDialer(t, mux.Config{})
	gone := dial(t, d, srv.Addr())
	stays := dial(t, d, srv.Addr())
	gone.send(t, "HOLD")
	<-h.held
	stays.send(t, "ECHO", "mine")
	require.NoError(t, gone.Close())
	close(h.release)
	assert.Equal(t, bulk("mine"), stays.next(t))
	assert.Equal(t, 1, d.Stats().Sockets)
}

// A command may come in any number of Writes: it is queued once complete.
// What is not an array of bulk strings is refused.
func TestWritesInPieces(t *testing.T) {
	srv := startFake(t, answer(echo))
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	cmds := append(resp.Command("ECHO", "one"), resp.Command("ECHO", "two")...)
	for i := range cmds {
		_, err := c.Write(cmds[i : i+1])
		require.NoError(t, err)
	}
	assert.Equal(t, bulk("one"), c.next(t))
	assert.Equal(t, bulk("two"), c.next(t))

	_, err := c.Write([]byte("PING\r\n"))
	assert.ErrorIs(t, err, resp.ErrProtocol)
}

// Connections are spread over Config.Sockets sockets per address.
func TestSocketsPerAddress(t *testing.T) {
	srv := startFake(t, answer(echo))
	other := startFake(t, answer(echo))
	d := newDialer(t, mux.Config{Sockets: 3})
	for i := range 9 {
		c := dial(t, d, srv.Addr())
		c.send(t, "ECHO", fmt.Sprint(i))
		assert.Equal(t, bulk(fmt.Sprint(i)), c.next(t))
	}
	assert.Equal(t, 3, d.Stats().Sockets)
	redistest.Eventually(t, wait, "three connections", func() bool { return srv.accepted() == 3 })
	dial(t, d, other.Addr())
	assert.Equal(t, 4, d.Stats().Sockets)
}

// Connections dialed at once, before any socket is open (a pool warming
// up), share Config.Sockets sockets: no more.
func TestConcurrentDialsKeepToSockets(t *testing.T) {
	for _, sockets := range []int{1, 3} {
		t.Run(fmt.Sprint(sockets), func(t *testing.T) {
			srv := startFake(t, answer(echo))
			d := newDialer(t, mux.Config{Sockets: sockets})
			start := make(chan struct{})
			conns := make(chan net.Conn, 64)
			var wg sync.WaitGroup
			for range 64 {
				wg.Go(func() {
					<-start
					c, err := d.DialContext(context.Background(), "tcp", srv.Addr())
					if assert.NoError(t, err) {
						conns <- c
					}
				})
			}
			close(start)
			wg.Wait()
			close(conns)
			assert.Equal(t, sockets, d.Stats().Sockets)
			i := 0
			for c := range conns {
				cc := &conn{Conn: c, r: bufio.NewReader(c)}
				cc.send(t, "ECHO", fmt.Sprint(i))
				assert.Equal(t, bulk(fmt.Sprint(i)), cc.next(t))
				require.NoError(t, c.Close())
				i++
			}
			assert.Equal(t, 64, i)
			assert.Equal(t, 0, d.Stats().Sockets, "closed with their last connections")
		})
	}
}

// An attribute goes with the reply after it, however the two arrive: here
// the attribute and the start of an array in one read, the rest of the
// array in the next.
func TestAttributeBeforeReplyInPieces(t *testing.T) {
	const attr, head, tail = "|1\r\n+ttl\r\n:3600\r\n", "*3\r\n:1\r\n$3\r\nab", "c\r\n:2\r\n"
	srv := startFake(t, func(s *fakeServer, c net.Conn) {
		r := bufio.NewReader(c)
		for {
			if _, _, err := resp.ReadCommand(r); err != nil {
				return
			}
			if _, err := io.WriteString(c, attr+head); err != nil {
				return
			}
			// Give the reader time to take the first piece alone (if it
			// does not, the test proves less, but still passes rightly).
			select {
			case <-time.After(20 * time.Millisecond):
			case <-s.done:
				return
			}
			if _, err := io.WriteString(c, tail); err != nil {
				return
			}
		}
	})
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	for range 3 {
		c.send(t, "GET", "k")
		assert.Equal(t, attr, c.next(t))
		assert.Equal(t, head+tail, c.next(t))
	}
}

// MaxBatch and MaxBatchBytes end FlushDelay's wait as soon as the batch
// reaches them, whichever command makes it reach them.
func TestBatchBoundsEndFlushDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  mux.Config
	}{
		{"MaxBatch", mux.Config{FlushDelay: time.Hour, MaxBatch: 3}},
		{"MaxBatchBytes", mux.Config{FlushDelay: time.Hour, MaxBatchBytes: 3 * len(resp.Command("ECHO", "0"))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFake(t, answer(echo))
			d := newDialer(t, tc.cfg)
			var cs []*conn
			for i := range 3 {
				c := dial(t, d, srv.Addr())
				c.send(t, "ECHO", fmt.Sprint(i))
				cs = append(cs, c)
				if i == 0 {
					// The writer starts its FlushDelay wait with one command.
					time.Sleep(20 * time.Millisecond)
				}
			}
			for i, c := range cs {
				assert.Equal(t, bulk(fmt.Sprint(i)), c.next(t))
			}
			assert.Equal(t, mux.Stats{Sockets: 1, Writes: 1, Commands: 3}, d.Stats())
		})
	}
}

// spin is where jitter loops count, so that the compiler keeps them.
var spin atomic.Int64

// A connection dialed while the last one of its socket closes gets a
// working socket, never the one being closed.
func TestDialWhileLastConnectionCloses(t *testing.T) {
	srv := startFake(t, answer(echo))
	d := newDialer(t, mux.Config{})
	ctx := context.Background()
	for i := range 500 {
		first, err := d.DialContext(ctx, "tcp", srv.Addr())
		require.NoError(t, err)
		closing, closed := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(closed)
			close(closing)
			_ = first.Close()
		}()
		// Dial at a random moment of the Close, so that some dials land
		// between the last connection leaving and the socket failing.
		<-closing
		for range rand.IntN(4000) {
			spin.Add(1)
		}
		c := dial(t, d, srv.Addr())
		c.send(t, "ECHO", fmt.Sprint(i))
		f, err := c.frame(time.Now().Add(wait))
		require.NoError(t, err, "round %d", i)
		require.Equal(t, bulk(fmt.Sprint(i)), f)
		<-closed
		require.NoError(t, c.Close())
	}
}

// A connection does not keep the buffer of a large command once the
// command is queued: go-redis keeps idle connections for long.
func TestLargeCommandBufferNotKept(t *testing.T) {
	srv := startFake(t, answer(echo))
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	cmd := resp.Command("SET", "big", strings.Repeat("v", 8<<20))
	half := len(cmd) / 2
	for _, piece := range [][]byte{cmd[:half], cmd[half:]} {
		_, err := c.Write(piece)
		require.NoError(t, err)
	}
	assert.Equal(t, "+OK\r\n", c.next(t))
	assert.LessOrEqual(t, mux.PartialCap(c.Conn), 1<<20)
	c.send(t, "ECHO", "small")
	assert.Equal(t, bulk("small"), c.next(t))
}

// Close unblocks a Read waiting on the connection, as net.Conn's Close
// must (go-redis's pool closes connections in use when the client
// closes), while the socket lives on for the others.
func TestCloseUnblocksRead(t *testing.T) {
	h := newHold()
	srv := startFake(t, answer(h.reply))
	d := newDialer(t, mux.Config{})
	c := dial(t, d, srv.Addr())
	other := dial(t, d, srv.Addr())
	c.send(t, "HOLD")
	<-h.held
	errs := make(chan error, 1)
	go func() {
		_, err := c.frame(time.Time{}) // no deadline
		errs <- err
	}()
	time.Sleep(10 * time.Millisecond) // let the read start waiting
	require.NoError(t, c.Close())
	select {
	case err := <-errs:
		assert.ErrorIs(t, err, net.ErrClosed)
	case <-time.After(wait):
		t.Fatal("Read still blocked after Close")
	}
	close(h.release)
	other.send(t, "ECHO", "alive")
	assert.Equal(t, bulk("alive"), other.next(t))
}
