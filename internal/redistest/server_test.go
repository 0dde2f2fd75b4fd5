package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeTB records Skip/Fatal calls instead of stopping the goroutine.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	if f.skipped == "" && f.fatal == "" {
		f.skipped = toString(args)
	}
}
func (f *fakeTB) Fatal(args ...any) {
	if f.skipped == "" && f.fatal == "" {
		f.fatal = toString(args)
	}
}

func toString(args []any) string {
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.(string))
	}
	return b.String()
}

func TestRequireWithoutRedisServer(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	assert.False(t, Available())

	t.Setenv("CI", "")
	f := &fakeTB{TB: t}
	Require(f)
	assert.Contains(t, f.skipped, "redis-server not found")
	assert.Empty(t, f.fatal)

	t.Setenv("CI", "true")
	f = &fakeTB{TB: t}
	Require(f)
	assert.Contains(t, f.fatal, "CI is set")
	assert.Empty(t, f.skipped)
}

func TestStartStopRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, Options{})
	assert.Equal(t, "127.0.0.1:"+itoa(s.Port()), s.Addr())
	assert.Contains(t, s.Log(), "Ready to accept connections")

	opts := s.RedisOptions()
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	// Defaults: no persistence, debug command enabled, loopback only.
	save, err := c.ConfigGet(ctx, "save").Result()
	require.NoError(t, err)
	assert.Equal(t, "", save["save"])
	aof, err := c.ConfigGet(ctx, "appendonly").Result()
	require.NoError(t, err)
	assert.Equal(t, "no", aof["appendonly"])
	bind, err := c.ConfigGet(ctx, "bind").Result()
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1 -::1", bind["bind"])
	require.NoError(t, c.Do(ctx, "DEBUG", "SLEEP", "0").Err())

	port, pid := s.Port(), s.Pid()
	require.NotZero(t, pid)
	s.Stop()
	assert.Zero(t, s.Pid())
	require.Error(t, c.Ping(ctx).Err())

	s.Restart(t)
	assert.Equal(t, port, s.Port())
	assert.NotEqual(t, pid, s.Pid())
	require.NoError(t, c.Ping(ctx).Err())
	require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil, "nothing is persisted")

	s.Kill()
	s.Kill() // idempotent
	s.Restart(t)
	require.NoError(t, c.Ping(ctx).Err())
	s.Restart(t) // restart of a running server stops it first
	require.NoError(t, c.Ping(ctx).Err())
}

func TestStartFixedPortAndArgs(t *testing.T) {
	t.Parallel()
	port := FreePort(t)
	s := Start(t, Options{Port: port, Args: []string{"--maxmemory", "10mb", "--save", "900 1"}})
	assert.Equal(t, port, s.Port())
	cfg, err := s.Client(t).ConfigGet(context.Background(), "maxmemory").Result()
	require.NoError(t, err)
	assert.Equal(t, "10485760", cfg["maxmemory"])
	cfg, err = s.Client(t).ConfigGet(context.Background(), "save").Result()
	require.NoError(t, err)
	assert.Equal(t, "900 1", cfg["save"], "Args override the defaults")
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, Options{})
	opts := s.RedisOptions()
	opts.ReadTimeout = 200 * time.Millisecond
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	defer c.Close()
	require.NoError(t, c.Ping(ctx).Err())

	s.Pause()
	err := c.Ping(ctx).Err()
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "want a timeout, got %v", err)

	s.Resume()
	require.NoError(t, c.Ping(ctx).Err())

	// A paused server can be stopped gracefully and restarted.
	s.Pause()
	s.Stop()
	assert.Zero(t, s.Pid())
	s.Restart(t)
	require.NoError(t, c.Ping(ctx).Err())

	// A paused server is still killed by the cleanup.
	s.Pause()
}

// logTB pretends the test failed and captures Logf output.
type logTB struct {
	testing.TB
	logs *strings.Builder
}

func (l logTB) Failed() bool { return true }
func (l logTB) Logf(format string, args ...any) {
	fmt.Fprintf(l.logs, format, args...)
}

func TestServerLogPrintedOnFailure(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	t.Run("inner", func(t *testing.T) {
		Start(logTB{TB: t, logs: &logs}, Options{})
	})
	assert.Contains(t, logs.String(), "failed test; server log")
	assert.Contains(t, logs.String(), "Ready to accept connections")
}

func TestPasswordAndACLUsers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, Options{
		Password: "s3cret",
		Users: []ACLUser{
			{Name: "alice", Password: "alicepw", Rules: "~* &* +@all"},
			{Name: "reader", Password: "readerpw", Rules: "~* +get +ping"},
		},
	})
	require.NoError(t, s.Client(t).Ping(ctx).Err())

	anon := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer anon.Close()
	require.ErrorContains(t, anon.Ping(ctx).Err(), "NOAUTH")

	alice := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "alice", Password: "alicepw"})
	defer alice.Close()
	require.NoError(t, alice.Set(ctx, "k", "v", 0).Err())

	reader := redis.NewClient(&redis.Options{Addr: s.Addr(), Username: "reader", Password: "readerpw", Protocol: 2, DisableIdentity: true})
	defer reader.Close()
	v, err := reader.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	require.ErrorContains(t, reader.Set(ctx, "k", "w", 0).Err(), "NOPERM")
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Start(t, Options{TLS: true, Password: "pw"})
	require.NotNil(t, s.TLS)
	for _, f := range []string{s.TLS.CAFile, s.TLS.CertFile, s.TLS.KeyFile, s.TLS.ClientCertFile, s.TLS.ClientKeyFile} {
		_, err := os.Stat(f)
		require.NoError(t, err)
	}
	require.NoError(t, s.Client(t).Ping(ctx).Err())

	// A client built only from the files works too.
	c := redis.NewClient(&redis.Options{Addr: "localhost:" + itoa(s.Port()), Password: "pw", TLSConfig: s.TLSConfig()})
	defer c.Close()
	require.NoError(t, c.Ping(ctx).Err())

	plain := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "pw", MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer plain.Close()
	require.Error(t, plain.Ping(ctx).Err(), "the port is TLS-only")

	s.Kill()
	s.Restart(t)
	require.NoError(t, s.Client(t).Ping(ctx).Err())
}

func TestFreePort(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", "127.0.0.1:"+itoa(p))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}

func itoa(i int) string { return strconv.Itoa(i) }
