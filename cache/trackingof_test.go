package cache_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// connCapture records the connection its client's dial returns, every
// wrapper of later hooks on.
type connCapture struct{ conn atomic.Pointer[net.Conn] }

func (c *connCapture) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			c.conn.Store(&conn)
		}
		return conn, err
	}
}
func (c *connCapture) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *connCapture) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TrackingOf reports whether a connection's tracking redirects to the
// current invalidation connection: true once a command was written on it,
// false once that invalidation connection was replaced, true again after
// the connection's next command (which turns tracking on anew); nil for
// a connection the cache did not wrap.
func TestTrackingOf(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := cache.New(baseConfig())
	t.Cleanup(func() { _ = c.Close() })
	opts := srv.RedisOptions()
	opts.PoolSize = 1
	cl := redis.NewClient(opts)
	t.Cleanup(func() { _ = cl.Close() })
	capture := &connCapture{}
	cl.AddHook(capture)
	cl.AddHook(c.Hook())
	require.NoError(t, cl.Ping(bg).Err())
	redistest.Eventually(t, 5*time.Second, "channel up", func() bool { return c.Stats().ChannelsUp == 1 })
	require.NoError(t, cl.Echo(bg, "x").Err()) // the first command after the handshake turns tracking on
	conn := *capture.conn.Load()

	current := c.TrackingOf(conn)
	require.NotNil(t, current)
	assert.True(t, current())
	plain, other := net.Pipe()
	defer plain.Close()
	defer other.Close()
	assert.Nil(t, c.TrackingOf(plain))

	admin := srv.Client(t)
	list, err := admin.ClientList(bg).Result()
	require.NoError(t, err)
	var redir string
	for _, f := range strings.Fields(list) {
		if id, ok := strings.CutPrefix(f, "redir="); ok && id != "-1" {
			redir = id
		}
	}
	require.NotEmpty(t, redir)
	require.NoError(t, admin.Do(bg, "CLIENT", "KILL", "ID", redir).Err())
	redistest.Eventually(t, 5*time.Second, "a new invalidation connection", func() bool {
		st := c.Stats()
		return st.Flushes > 0 && st.ChannelsUp == 1 // down (it flushed), then up
	})
	assert.False(t, current(), "the socket still redirects to the killed connection")

	require.NoError(t, cl.Echo(bg, "x").Err())
	again := c.TrackingOf(conn)
	require.NotNil(t, again)
	assert.True(t, again())
}
