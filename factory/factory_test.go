package factory_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

func TestStandaloneHonoursConnectionKeys(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Users: []redistest.ACLUser{{Name: "app", Password: "app-pw", Rules: "~* &* +@all"}}})
	cfg := load(t, `profiles:
  main:
    addr: %s
    username: app
    password: app-pw
    db: 3
    protocol: 2
    client_name: checkout-svc
    pool:
      size: 4
      min_idle: 1
`, srv.Addr())
	f := newFactory(t, cfg, factory.Options{})
	c := client(t, f, "main")
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	info, err := c.Do(ctx, "CLIENT", "INFO").Text()
	require.NoError(t, err)
	assert.Contains(t, info, "name=checkout-svc")
	assert.Contains(t, info, "db=3")
	assert.Contains(t, info, "user=app")
	assert.Contains(t, info, "resp=2")

	admin := srv.Client(t)
	require.NoError(t, admin.Do(ctx, "SELECT", 3).Err())
	assert.Equal(t, int64(1), admin.Exists(ctx, "k").Val(), "the key lands in db 3")

	rc, isClient := c.(*factory.Handle).Current().(*redis.Client)
	require.True(t, isClient, "standalone builds a *redis.Client")
	assert.Equal(t, 4, rc.Options().PoolSize)
	assert.LessOrEqual(t, rc.Options().MaxRetries, 0, "go-redis's own retries are off")
}

func TestTLSProfile(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	cfg := load(t, `profiles:
  secure:
    addr: %s
    tls:
      enabled: true
      ca_file: %s
      cert_file: %s
      key_file: %s
      server_name: localhost
`, srv.Addr(), srv.TLS.CAFile, srv.TLS.ClientCertFile, srv.TLS.ClientKeyFile)
	f := newFactory(t, cfg, factory.Options{})
	require.NoError(t, client(t, f, "secure").Ping(context.Background()).Err())
}

func TestUnknownProfile(t *testing.T) {
	cfg := load(t, "profiles:\n  sessions: {}\n")
	f := newFactory(t, cfg, factory.Options{})
	_, err := f.Client("sesions")
	require.ErrorIs(t, err, factory.ErrUnknownProfile)
	assert.Contains(t, err.Error(), `did you mean "sessions"?`)
}

func TestBuildCallbackSeesEveryClient(t *testing.T) {
	cfg := load(t, "profiles:\n  a: {}\n  b:\n    mode: cluster\n    addrs: [\"127.0.0.1:1\"]\n")
	var seen []string
	f := newFactory(t, cfg, factory.Options{OnBuild: func(name string, c redis.UniversalClient) error {
		seen = append(seen, name)
		c.AddHook(nopHook{})
		return nil
	}})
	assert.Equal(t, []string{"a", "b"}, seen)
	_, isCluster := client(t, f, "b").(*factory.Handle).Current().(*redis.ClusterClient)
	assert.True(t, isCluster)

	_, err := factory.New(cfg, factory.Options{OnBuild: func(string, redis.UniversalClient) error { return errors.New("boom") }})
	require.ErrorContains(t, err, "build callback: boom")
}

type nopHook struct{}

func (nopHook) DialHook(n redis.DialHook) redis.DialHook                                  { return n }
func (nopHook) ProcessHook(n redis.ProcessHook) redis.ProcessHook                         { return n }
func (nopHook) ProcessPipelineHook(n redis.ProcessPipelineHook) redis.ProcessPipelineHook { return n }

func TestAuthFailureIsClassifiedAndNotRetried(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "right"})
	proxy := redistest.NewProxy(t, srv.Addr())
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    password: wrong\n", proxy.Addr())
	f := newFactory(t, cfg, factory.Options{})
	rt := f.Runtime()
	ev, cancel := collect(rt, runtime.RetryAttempted)
	defer cancel()

	err := client(t, f, "a").Get(context.Background(), "k").Err()
	require.Error(t, err)
	assert.Equal(t, errclass.Auth, errclass.Of(err), "error %v", err)
	assert.True(t, errclass.IsAuth(err))
	assert.Equal(t, 0, ev.count(runtime.RetryAttempted), "auth is not in the default retry classes")
	assert.Equal(t, 1, proxy.TotalConns(), "one connection attempt, no retry")
	assert.Zero(t, proxy.Count("get"), "the command is never sent unauthenticated")
}

func TestLoadingRetriedOnlyWhenInPolicy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  string
		wantOK bool
	}{
		{"default policy", "", false},
		{"busy_loading in also_on", "      also_on: [busy_loading]\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			proxy := redistest.NewProxy(t, srv.Addr())
			cfg := load(t, "profiles:\n  a:\n    addr: %s\n    retry:\n      retries: 3\n      backoff:\n        strategy: constant\n        base: 5ms\n"+tc.extra, proxy.Addr())
			f := newFactory(t, cfg, factory.Options{})
			c := client(t, f, "a")
			ctx := context.Background()
			require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

			inj := proxy.InjectReply(redistest.MatchCommand("get"), []byte("-LOADING Redis is loading the dataset in memory\r\n"), 2)
			v, err := c.Get(ctx, "k").Result()
			if tc.wantOK {
				require.NoError(t, err)
				assert.Equal(t, "v", v)
				assert.Equal(t, 2, inj.Hits())
				assert.Equal(t, 3, proxy.Count("get"), "two LOADING replies, then the real GET")
			} else {
				require.Error(t, err)
				assert.True(t, errclass.IsBusyLoading(err))
				assert.Equal(t, 1, inj.Hits(), "not retried")
			}
		})
	}
}

func TestBlackholedConnectionTimesOutOnTime(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	cfg := load(t, `profiles:
  a:
    addr: %s
    timeouts:
      socket: 300ms
    retry:
      retries: 0
`, proxy.Addr())
	f := newFactory(t, cfg, factory.Options{})
	c := client(t, f, "a")
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx).Err())

	proxy.Blackhole(true)
	start := time.Now()
	err := c.Get(ctx, "k").Err()
	elapsed := time.Since(start)
	require.Error(t, err)
	assert.True(t, errclass.IsTimeout(err), "got %v (%s)", err, errclass.Of(err))
	assert.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	assert.Less(t, elapsed, 600*time.Millisecond, "the socket timeout bounds the wait")
}

func TestContextDeadlineIsHonoured(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    timeouts:\n      socket: 10s\n", proxy.Addr())
	c := client(t, newFactory(t, cfg, factory.Options{}), "a")
	require.NoError(t, c.Ping(context.Background()).Err())
	proxy.Blackhole(true)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Get(ctx, "k").Err()
	require.Error(t, err)
	assert.Less(t, time.Since(start), time.Second, "a context deadline shorter than the socket timeout wins")
}

func TestIncrAfterReadTimeoutIsNotSentTwice(t *testing.T) {
	for _, tc := range []struct {
		name          string
		nonIdempotent bool
		wantIncrs     int
	}{
		{"default", false, 1},
		{"non_idempotent allowed", true, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			proxy := redistest.NewProxy(t, srv.Addr())
			cfg := load(t, `profiles:
  a:
    addr: %s
    timeouts:
      socket: 150ms
    retry:
      retries: 1
      non_idempotent: %v
      backoff:
        strategy: constant
        base: 1ms
`, proxy.Addr(), tc.nonIdempotent)
			c := client(t, newFactory(t, cfg, factory.Options{}), "a")
			ctx := context.Background()
			require.NoError(t, c.Ping(ctx).Err())
			// Writes stall on the server for longer than the socket
			// timeout; the handshake of a new connection does not.
			require.NoError(t, srv.Client(t).Do(ctx, "CLIENT", "PAUSE", 400, "WRITE").Err())
			err := c.Incr(ctx, "counter").Err()
			require.Error(t, err)
			assert.True(t, errclass.IsTimeout(err), "got %v", err)
			assert.Equal(t, tc.wantIncrs, proxy.Count("incr"), "INCRs that reached the server")
		})
	}
}

func TestRetryEventsAndClassification(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    retry:\n      retries: 2\n      on: [read_only]\n      backoff:\n        strategy: constant\n        base: 1ms\n", proxy.Addr())
	f := newFactory(t, cfg, factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.RetryAttempted, runtime.RetryExhausted)
	defer cancel()
	proxy.InjectReply(redistest.MatchCommand("set"), []byte("-READONLY You can't write against a read only replica.\r\n"), -1)
	err := client(t, f, "a").Set(context.Background(), "k", "v", 0).Err()
	require.Error(t, err)
	assert.True(t, errclass.IsReadOnly(err))
	require.Eventually(t, func() bool { return ev.count(runtime.RetryExhausted) == 1 }, 2*time.Second, 5*time.Millisecond)
	attempts := ev.list()
	require.Len(t, attempts, 3)
	for i, e := range attempts[:2] {
		assert.Equal(t, runtime.RetryAttempted, e.Kind)
		assert.Equal(t, "a", e.Profile)
		assert.Equal(t, i+2, e.Attempt, "retry.attempted carries the upcoming try: the first retry is attempt 2")
		assert.Equal(t, "read_only", e.Class)
		assert.Equal(t, "set", strings.ToLower(e.Command))
	}
	assert.Equal(t, runtime.RetryExhausted, attempts[2].Kind)
	assert.Equal(t, 3, attempts[2].Attempt, "retry.exhausted carries the number of tries made")
}
