package factory_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// pingCalls returns how many PINGs the server has executed since the last
// CONFIG RESETSTAT.
func pingCalls(t *testing.T, admin *redis.Client) int {
	t.Helper()
	stats, err := admin.InfoMap(context.Background(), "commandstats").Result()
	require.NoError(t, err)
	line := stats["Commandstats"]["cmdstat_ping"]
	if line == "" {
		return 0
	}
	var calls int
	_, err = fmtSscanf(line, &calls)
	require.NoError(t, err)
	return calls
}

// TestHealthCheckReplacesADeadTLSConnection: go-redis's own idle check does
// nothing for TLS connections; the profile's health check PINGs the idle
// connection, finds it dead, drops it, and the command succeeds on a new
// one without spending a retry.
func TestHealthCheckReplacesADeadTLSConnection(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{TLS: true})
	cfg := load(t, `profiles:
  a:
    addr: %s
    health_check_interval: 100ms
    pool:
      size: 1
    retry:
      retries: 1
    tls:
      enabled: true
      ca_file: %s
      cert_file: %s
      key_file: %s
      server_name: localhost
`, srv.Addr(), srv.TLS.CAFile, srv.TLS.ClientCertFile, srv.TLS.ClientKeyFile)
	f := newFactory(t, cfg, factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.HealthCheckFailed, runtime.ConnReplaced, runtime.RetryAttempted)
	defer cancel()
	fc, err := f.Lookup("a")
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, fc.Set(ctx, "k", "v", 0).Err())

	// The connection is killed behind the client's back, then sits idle
	// for longer than the interval.
	admin := srv.Client(t)
	killed, err := admin.ClientKillByFilter(ctx, "TYPE", "normal", "SKIPME", "yes").Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), killed)
	time.Sleep(150 * time.Millisecond) // the scenario: an idle period longer than the interval

	v, err := fc.Get(ctx, "k").Result()
	require.NoError(t, err)
	assert.Equal(t, "v", v)
	checks, failed := fc.HealthChecks()
	assert.Equal(t, uint64(1), checks, "one PING before the GET")
	assert.Equal(t, uint64(1), failed, "it found the connection dead")
	require.Eventually(t, func() bool { return ev.count(runtime.ConnReplaced) == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, ev.count(runtime.HealthCheckFailed))
}

// TestHealthCheckCostsNothingForBusyConnections: connections used within
// the interval are never PINGed; an idle one is PINGed once.
func TestHealthCheckCostsNothingForBusyConnections(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    health_check_interval: 300ms\n    pool:\n      size: 1\n", srv.Addr())
	fc, err := newFactory(t, cfg, factory.Options{}).Lookup("a")
	require.NoError(t, err)
	require.NoError(t, fc.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, admin.ConfigResetStat(ctx).Err())

	deadline := time.Now().Add(200 * time.Millisecond) // well within the interval
	n := 0
	for time.Now().Before(deadline) {
		require.NoError(t, fc.Get(ctx, "k").Err())
		n++
	}
	checks, _ := fc.HealthChecks()
	assert.Zero(t, checks, "%d commands on a busy connection, no PING", n)
	assert.Zero(t, pingCalls(t, admin))

	time.Sleep(400 * time.Millisecond) // the scenario: idle for longer than the interval
	require.NoError(t, fc.Get(ctx, "k").Err())
	checks, failed := fc.HealthChecks()
	assert.Equal(t, uint64(1), checks)
	assert.Zero(t, failed)
	assert.Equal(t, 1, pingCalls(t, admin), "the server saw exactly one health-check PING")
}

func TestHealthProbeState(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    timeouts:\n      socket: 200ms\n    retry:\n      retries: 0\n", srv.Addr())
	f := newFactory(t, cfg, factory.Options{ProbeInterval: 20 * time.Millisecond})
	ev, cancel := collect(f.Runtime(), runtime.HealthChanged)
	defer cancel()
	up := func() bool { h, _ := f.Health("a"); return h.State == factory.StateUp }
	require.Eventually(t, up, 10*time.Second, 5*time.Millisecond)
	srv.Pause()
	require.Eventually(t, func() bool { h, _ := f.Health("a"); return h.State == factory.StateDown }, 10*time.Second, 5*time.Millisecond)
	h, _ := f.Health("a")
	assert.Equal(t, "timeout", string(h.Class))
	srv.Resume()
	require.Eventually(t, up, 10*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return ev.count(runtime.HealthChanged) >= 2 }, 5*time.Second, 5*time.Millisecond)
}

// TestFailedHealthCheckCostsNothing: the only pooled connection goes
// silent while idle (the fault proxy swallows its traffic: no FIN, no RST),
// and a GET, then an INCR, is sent after the health-check interval. The
// check's PING times out, the connection is dropped before the command is
// written, and the command runs on a new connection: it succeeds within the
// socket timeout plus a new connection's round trip, without a retry, even
// with retries off or limited to connection errors, and the INCR is applied
// once.
func TestFailedHealthCheckCostsNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	const interval, socket = 200 * time.Millisecond, 300 * time.Millisecond
	for _, retry := range []string{"retries: 0", "retries: 3", "on: [connection]"} {
		t.Run(retry, func(t *testing.T) {
			proxy := redistest.NewProxy(t, srv.Addr())
			cfg := load(t, `profiles:
  a:
    addr: %s
    health_check_interval: %s
    timeouts:
      socket: %s
    pool:
      size: 1
    retry:
      %s
`, proxy.Addr(), interval, socket, retry)
			f := newFactory(t, cfg, factory.Options{})
			bus := f.Runtime().Events()
			fc, err := f.Lookup("a")
			require.NoError(t, err)
			key := "hc:" + t.Name()
			require.NoError(t, admin.Del(ctx, key).Err())

			// A new connection's round trip through the proxy: dial,
			// handshake and one command.
			probe := redis.NewClient(&redis.Options{Addr: proxy.Addr()})
			start := time.Now()
			require.NoError(t, probe.Ping(ctx).Err())
			newConnRTT := time.Since(start)
			require.NoError(t, probe.Close())

			for _, cmd := range []struct {
				name string
				run  func() error
			}{
				{"GET", func() error { return fc.Get(ctx, key).Err() }},
				{"INCR", func() error { return fc.Incr(ctx, key).Err() }},
			} {
				// The client's only connection, used once, then idle for
				// longer than the interval, then silent.
				err := fc.Ping(ctx).Err()
				require.NoError(t, err)
				require.Equal(t, uint32(1), fc.PoolStats().TotalConns)
				time.Sleep(interval + 50*time.Millisecond) // the scenario: an idle period longer than the interval
				require.Equal(t, 1, proxy.BlackholeOpen(), "the pooled connection blackholed")
				retriesBefore := bus.Count(runtime.RetryAttempted)
				_, failedBefore := fc.HealthChecks()

				start := time.Now()
				err = cmd.run()
				took := time.Since(start)
				if cmd.name == "GET" {
					require.ErrorIs(t, err, redis.Nil, cmd.name)
				} else {
					require.NoError(t, err, cmd.name)
				}
				// The PING's timeout, a new connection, the command: with a
				// margin for a loaded machine under -race.
				limit := socket + 3*newConnRTT + 250*time.Millisecond
				assert.Less(t, took, limit, "%s took %s (new connection round trip %s)", cmd.name, took, newConnRTT)
				t.Logf("%s: %s (socket timeout %s, new connection round trip %s)", cmd.name, took, socket, newConnRTT)
				assert.GreaterOrEqual(t, took, socket, "%s waited for the health check's PING to time out", cmd.name)
				_, failed := fc.HealthChecks()
				assert.Equal(t, failedBefore+1, failed, "%s: the health check found the connection dead", cmd.name)
				assert.Zero(t, bus.Count(runtime.RetryAttempted)-retriesBefore, "%s: no retry spent", cmd.name)
			}
			n, err := admin.Get(ctx, key).Int()
			require.NoError(t, err)
			assert.Equal(t, 1, n, "INCR applied once")
		})
	}
}
