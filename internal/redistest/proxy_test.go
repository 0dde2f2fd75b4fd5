package redistest

import (
	"github.com/redisfactory/redisfactory/internal/resp"

	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const loadingReply = "-LOADING Redis is loading the dataset in memory\r\n"

// proxyClient returns a go-redis client through p that does not retry, so
// that every fault is visible.
func proxyClient(t *testing.T, p *Proxy, readTimeout time.Duration) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         p.Addr(),
		MaxRetries:   -1,
		ReadTimeout:  readTimeout,
		DialTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// rawConn is a plain TCP RESP connection for byte-exact checks.
type rawConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (c *rawConn) send(cmds ...[]string) {
	c.t.Helper()
	var b []byte
	for _, cmd := range cmds {
		b = append(b, EncodeCommand(cmd...)...)
	}
	_, err := c.conn.Write(b)
	require.NoError(c.t, err)
}

// read returns the next frame, or the error.
func (c *rawConn) read() (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, typ, err := resp.ReadFrame(c.r, nil)
	if err == nil && typ == '|' {
		var g []byte
		g, _, err = resp.ReadFrame(c.r, f)
		f = g
	}
	return string(f), err
}

func (c *rawConn) mustRead() string {
	c.t.Helper()
	f, err := c.read()
	require.NoError(c.t, err)
	return f
}

func TestProxyForwardsAndObserves(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	var pings atomic.Int64
	p.OnCommand(func(cmd []string) {
		if cmd[0] == "ping" || cmd[0] == "PING" {
			pings.Add(1)
		}
	})
	c := proxyClient(t, p, 0)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	v, err := c.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	for i := 0; i < 5; i++ {
		require.NoError(t, c.Incr(ctx, "n").Err())
	}
	require.NoError(t, c.Ping(ctx).Err())
	require.NoError(t, c.Ping(ctx).Err())
	assert.Equal(t, 5, p.Count("INCR"))
	assert.Equal(t, 1, p.Count("set"))
	assert.Equal(t, int64(2), pings.Load())
	assert.Equal(t, 2, p.Count("PING"))
	assert.Contains(t, p.Commands(), []string{"get", "k"})
	assert.Equal(t, 1, p.ActiveConns())
	assert.Equal(t, 1, p.TotalConns())

	// Big values cross the proxy intact in both directions.
	big := string(make([]byte, 1<<20))
	require.NoError(t, c.Set(ctx, "big", big, 0).Err())
	got, err := c.Get(ctx, "big").Result()
	require.NoError(t, err)
	assert.Equal(t, len(big), len(got))

	p.ResetCommands()
	assert.Empty(t, p.Commands())

	// Inline commands pass through.
	raw := dialRaw(t, p.Addr())
	_, err = raw.conn.Write([]byte("PING\r\n"))
	require.NoError(t, err)
	assert.Equal(t, "+PONG\r\n", raw.mustRead())
}

func TestProxyBlackhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	c := proxyClient(t, p, 300*time.Millisecond)
	require.NoError(t, c.Ping(ctx).Err())

	p.Blackhole(true)
	err := c.Incr(ctx, "n").Err()
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a timeout, got %v", err)

	// At the byte level: no reply, no EOF, and the connection stays open.
	raw := dialRaw(t, p.Addr())
	raw.send([]string{"PING", "swallowed"})
	_ = raw.conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = raw.r.ReadByte()
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a timeout, got %v", err)
	require.Eventually(t, func() bool { return p.Count("PING") >= 2 }, 5*time.Second, 5*time.Millisecond)

	p.Blackhole(false)
	n, err := c.Incr(ctx, "n").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), n, "the blackholed INCR never reached the server")
	assert.Equal(t, 2, p.Count("INCR"))

	raw.send([]string{"PING", "after"})
	assert.Equal(t, "$5\r\nafter\r\n", raw.mustRead(), "the swallowed PING got no reply")
}

func TestProxyDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	c := proxyClient(t, p, 0)
	require.NoError(t, c.Ping(ctx).Err())

	p.Delay(300 * time.Millisecond)
	start := time.Now()
	require.NoError(t, c.Ping(ctx).Err())
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)

	fast := proxyClient(t, p, 100*time.Millisecond)
	require.Error(t, fast.Ping(ctx).Err(), "the handshake times out")

	p.Delay(0)
	start = time.Now()
	require.NoError(t, c.Ping(ctx).Err())
	assert.Less(t, time.Since(start), 300*time.Millisecond)
}

func TestProxyInjectReply(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	c := proxyClient(t, p, 0)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	inj := p.InjectReply(MatchCommand("GET"), []byte(loadingReply), 1)
	err := c.Get(ctx, "k").Err()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "LOADING")
	assert.Equal(t, 1, inj.Hits())

	v, err := c.Get(ctx, "k").Result()
	require.NoError(t, err, "the injection was used up")
	assert.Equal(t, "v", v)
	assert.Equal(t, 2, p.Count("GET"), "injected commands are observed too")

	// Unlimited until removed; only matching commands are affected.
	ro := p.InjectReply(MatchCommand("set", "incr"), []byte("-READONLY You can't write against a read only replica.\r\n"), -1)
	for i := 0; i < 3; i++ {
		require.ErrorContains(t, c.Set(ctx, "k", "w", 0).Err(), "READONLY")
	}
	require.NoError(t, c.Get(ctx, "k").Err())
	assert.Equal(t, 3, ro.Hits())
	ro.Remove()
	require.NoError(t, c.Set(ctx, "k", "w", 0).Err())
	assert.Equal(t, 3, ro.Hits())

	p.InjectReply(MatchCommand("GET"), []byte("-CLUSTERDOWN The cluster is down\r\n"), 1)
	require.ErrorContains(t, c.Get(ctx, "k").Err(), "CLUSTERDOWN")
}

func TestProxyInjectPipelineOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	c := proxyClient(t, p, 0)
	require.NoError(t, c.Set(ctx, "a", "1", 0).Err())

	// Slow server replies: an injected reply sent eagerly would overtake them.
	p.Delay(20 * time.Millisecond)
	p.InjectReply(func(cmd []string) bool {
		return len(cmd) == 2 && cmd[0] == "get" && cmd[1] == "injected"
	}, []byte("$3\r\nfoo\r\n"), 1)

	pipe := c.Pipeline()
	set := pipe.Set(ctx, "b", "2", 0)
	getA := pipe.Get(ctx, "a")
	inj := pipe.Get(ctx, "injected")
	incr := pipe.Incr(ctx, "n")
	getB := pipe.Get(ctx, "b")
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)
	assert.Equal(t, "OK", set.Val())
	assert.Equal(t, "1", getA.Val())
	assert.Equal(t, "foo", inj.Val())
	assert.Equal(t, int64(1), incr.Val())
	assert.Equal(t, "2", getB.Val())
	p.Delay(0)

	// Byte-exact on a RESP3 connection with push frames in between:
	// pushes are forwarded but do not count as replies.
	raw := dialRaw(t, p.Addr())
	raw.send([]string{"HELLO", "3"})
	assert.Equal(t, byte('%'), raw.mustRead()[0])
	raw.send([]string{"SUBSCRIBE", "ch"})
	assert.Equal(t, ">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n", raw.mustRead())

	p.InjectReply(MatchCommand("ECHO"), []byte("+injected\r\n"), 1)
	p.Delay(20 * time.Millisecond)
	require.NoError(t, srv.Client(t).Publish(ctx, "ch", "m1").Err())
	raw.send([]string{"PING"}, []string{"ECHO", "x"}, []string{"PING", "last"})
	var got []string
	for len(got) < 4 {
		got = append(got, raw.mustRead())
	}
	assert.Equal(t, []string{
		">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nm1\r\n",
		"+PONG\r\n",
		"+injected\r\n",
		"$4\r\nlast\r\n",
	}, got)
}

func TestProxyCutAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	c := proxyClient(t, p, 10*time.Second)
	require.NoError(t, c.Ping(ctx).Err())

	// A command in flight on the cut connection fails...
	errc := make(chan error, 1)
	go func() { errc <- c.BLPop(ctx, 5*time.Second, "list").Err() }()
	require.Eventually(t, func() bool { return p.Count("BLPOP") == 1 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, p.CutAll(), "PING and BLPOP share the pooled connection")
	assert.Equal(t, 0, p.ActiveConns())
	select {
	case err := <-errc:
		require.Error(t, err)
		assert.NotErrorIs(t, err, redis.Nil)
	case <-time.After(3 * time.Second):
		t.Fatal("BLPOP on a cut connection did not fail")
	}
	// ...and a new dial works.
	require.NoError(t, c.Ping(ctx).Err())
	assert.Equal(t, 2, p.TotalConns())

	// Byte-level: the client sees EOF.
	raw := dialRaw(t, p.Addr())
	raw.send([]string{"PING"})
	assert.Equal(t, "+PONG\r\n", raw.mustRead())
	p.CutAll()
	_, err := raw.read()
	assert.ErrorIs(t, err, io.EOF)
}

func TestProxyDropNext(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	p.DropNext(2)
	for i := 0; i < 2; i++ {
		raw := dialRaw(t, p.Addr())
		raw.send([]string{"PING"})
		_, err := raw.read()
		require.Error(t, err, "connection %d must be dropped", i)
	}
	raw := dialRaw(t, p.Addr())
	raw.send([]string{"PING"})
	assert.Equal(t, "+PONG\r\n", raw.mustRead())
	assert.Equal(t, 1, p.TotalConns())
}

func TestProxySendToClients(t *testing.T) {
	t.Parallel()
	srv := Start(t, Options{})
	p := NewProxy(t, srv.Addr())
	raw := dialRaw(t, p.Addr())
	raw.send([]string{"HELLO", "3"})
	raw.mustRead()

	push := ">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"
	assert.Equal(t, 1, p.SendToClients([]byte(push)))
	assert.Equal(t, push, raw.mustRead())
	raw.send([]string{"PING"})
	assert.Equal(t, "+PONG\r\n", raw.mustRead())
}

func TestProxySetUpstreamAndClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := Start(t, Options{})
	b := Start(t, Options{})
	require.NoError(t, b.Client(t).Set(ctx, "who", "b", 0).Err())
	p := NewProxy(t, a.Addr())
	p.SetUpstream(b.Addr())
	c := proxyClient(t, p, 0)
	v, err := c.Get(ctx, "who").Result()
	require.NoError(t, err)
	assert.Equal(t, "b", v)

	p.Close()
	p.Close() // idempotent
	require.Error(t, c.Ping(ctx).Err())
}
