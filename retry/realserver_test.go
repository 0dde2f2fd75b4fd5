package retry_test

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

// startRedis starts a real redis-server on a free port for one test, or
// skips the test when there is none. (To be replaced by
// internal/redistest.Start once it exists.)
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--enable-debug-command", "yes", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	require.Eventually(t, func() bool { return admin.Ping(context.Background()).Err() == nil },
		10*time.Second, 20*time.Millisecond, "redis-server did not start")
	return addr
}

// commandCalls returns how many times the server ran command name.
func commandCalls(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	info, err := admin.Info(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	var calls int
	key := "cmdstat_" + name + ":calls="
	if i := indexOf(info, key); i >= 0 {
		_, _ = fmt.Sscanf(info[i+len(key):], "%d", &calls)
	}
	return calls
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// TestRealIncrReadTimeout blocks a real server with DEBUG SLEEP while an
// INCR is in flight: the INCR runs after its read timed out.
func TestRealIncrReadTimeout(t *testing.T) {
	for _, nonIdempotent := range []bool{false, true} {
		t.Run(fmt.Sprintf("non_idempotent=%v", nonIdempotent), func(t *testing.T) {
			addr := startRedis(t)
			admin := redis.NewClient(&redis.Options{Addr: addr})
			defer admin.Close()
			var rec recorder
			pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.NonIdempotent = nonIdempotent }), retry.Options{Observer: rec.observe})
			rdb := newClient(t, addr, pol, func(o *redis.Options) { o.ReadTimeout = 150 * time.Millisecond })
			ctx := testCtx(t)
			require.NoError(t, rdb.Ping(ctx).Err()) // a pooled connection, before the sleep

			done := make(chan error, 1)
			go func() { done <- admin.Do(context.Background(), "debug", "sleep", "0.6").Err() }()
			time.Sleep(50 * time.Millisecond)
			v, err := rdb.Incr(ctx, "n").Result()
			require.NoError(t, <-done)

			if !nonIdempotent {
				require.Error(t, err)
				assert.Equal(t, errclass.Timeout, errclass.Of(err))
				assert.Empty(t, rec.events)
				// The server runs the INCR after the sleep unless the client's
				// close reset the connection first: at most once, never twice.
				assert.LessOrEqual(t, commandCalls(t, admin, "incr"), 1, "INCR sent at most once")
				return
			}
			require.NoError(t, err)
			assert.NotEmpty(t, rec.events, "retried")
			assert.Equal(t, int(v), commandCalls(t, admin, "incr"), "every INCR the server ran counted")
		})
	}
}

// TestRealTxPipeline retries a MULTI/EXEC transaction whose connection
// could not be dialed, and checks that it then ran once.
func TestRealTxPipeline(t *testing.T) {
	addr := startRedis(t)
	var failDials atomic.Int32
	var rec recorder
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Retries = 10 }), rec.options())
	rdb := newClient(t, addr, pol, func(o *redis.Options) {
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if failDials.Add(-1) >= 0 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	ctx := testCtx(t)
	failDials.Store(4) // go-redis's pool absorbs some dial failures itself
	cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, "n")
		p.Set(ctx, "k", "v", 0)
		return nil
	})
	require.NoError(t, err)
	require.Len(t, cmds, 2)
	assert.Equal(t, int64(1), cmds[0].(*redis.IntCmd).Val())
	require.NotEmpty(t, rec.events)
	for _, e := range rec.events {
		assert.Equal(t, retry.Attempted, e.Kind)
		assert.Equal(t, "multi", e.Command)
		assert.True(t, errclass.NotSent(e.Err), "%v", e.Err)
	}

	// A plain pipeline too, with a real success path afterwards.
	failDials.Store(0)
	rec.events = nil
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Get(ctx, "k")
		p.Incr(ctx, "n")
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, rec.events)
	assert.Equal(t, "2", rdb.Get(ctx, "n").Val())
}
