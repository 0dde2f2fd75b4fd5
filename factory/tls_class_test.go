package factory_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
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

// TestTLSFailuresAreClassTLS: every way a TLS connection to a real
// redis-server can fail is reported as class tls — not connection (which
// the default policy retries) nor timeout — and is not retried by the
// default policy: a wrong certificate or protocol version never heals by
// dialing again.
func TestTLSFailuresAreClassTLS(t *testing.T) {
	t.Parallel()
	tlsSrv := redistest.Start(t, redistest.Options{TLS: true, Args: []string{"--tls-protocols", "TLSv1.2"}})
	// With TLS 1.3 the client finishes its handshake before the server
	// checks the client certificate: the refusal arrives as an alert on
	// the first read, not in the dial.
	tls13Srv := redistest.Start(t, redistest.Options{TLS: true, Args: []string{"--tls-protocols", "TLSv1.3"}})
	plain := redistest.Start(t, redistest.Options{})
	ca, cert, key := tlsSrv.TLS.CAFile, tlsSrv.TLS.ClientCertFile, tlsSrv.TLS.ClientKeyFile

	cases := []struct {
		name string
		tls  string // the profile's tls block (indented 4)
		addr string
		want string // in the error text
		// connect is the connect timeout: generous, so that a loaded
		// machine's slow handshake is not taken for a silent port, except
		// for the plaintext port, which is silent and costs all of it.
		connect string
	}{
		{"version mismatch", fmt.Sprintf("ca_file: %s\n      cert_file: %s\n      key_file: %s\n      min_version: \"1.3\"", ca, cert, key), tlsSrv.Addr(), "protocol version", "5s"},
		{"missing client certificate", fmt.Sprintf("ca_file: %s", ca), tlsSrv.Addr(), "handshake", "5s"},
		{"missing client certificate, TLS 1.3", fmt.Sprintf("ca_file: %s", tls13Srv.TLS.CAFile), tls13Srv.Addr(), "certificate required", "5s"},
		{"unknown authority", fmt.Sprintf("cert_file: %s\n      key_file: %s", cert, key), tlsSrv.Addr(), "certificate", "5s"},
		{"wrong server name", fmt.Sprintf("ca_file: %s\n      cert_file: %s\n      key_file: %s\n      server_name: redis.example.com", ca, cert, key), tlsSrv.Addr(), "redis.example.com", "5s"},
		{"plaintext port", fmt.Sprintf("ca_file: %s", ca), plain.Addr(), "does the server listen with TLS", "1s"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := load(t, `profiles:
  p:
    addr: %s
    timeouts: {connect: %s, socket: 5s}
    retry: {retries: 3, backoff: {strategy: constant, base: 1ms, cap: 1ms}}
    tls:
      enabled: true
      %s
`, tc.addr, tc.connect, tc.tls)
			rt := runtime.New(runtime.Options{})
			t.Cleanup(func() { _ = rt.Close(context.Background()) })
			ev, stop := collect(rt, runtime.RetryAttempted)
			defer stop()
			c, err := factory.Build("p", cfg.Profiles["p"], rt, factory.BuildOptions{})
			require.NoError(t, err)
			defer c.Close()

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = c.Ping(ctx).Err()
			require.Error(t, err)
			assert.Equal(t, errclass.TLS, errclass.Of(err), "%v", err)
			assert.Contains(t, err.Error(), tc.want)
			r := c.Check(ctx)
			assert.False(t, r.Reachable)
			assert.Equal(t, errclass.TLS, r.Class, "%#v %v", r.Err, r.Err)
			assert.Zero(t, ev.count(runtime.RetryAttempted), "the default policy does not retry tls")
		})
	}
}

// TestTLSClassesBareGoRedis: errclass classifies the same failures of a
// bare go-redis client (its own dialer), so users' own code sees tls too.
// A plaintext port is the exception: go-redis's dialer reports only that
// its deadline passed, which stays a timeout; the factory's dialer knows it
// was in the handshake.
func TestTLSClassesBareGoRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{TLS: true, Args: []string{"--tls-protocols", "TLSv1.2"}})
	good := srv.TLSConfig()

	noCert := good.Clone()
	noCert.Certificates = nil
	tls13 := good.Clone()
	tls13.MinVersion = tls.VersionTLS13
	noCA := good.Clone()
	noCA.RootCAs = nil
	for name, cfg := range map[string]*tls.Config{"missing client certificate": noCert, "version mismatch": tls13, "unknown authority": noCA} {
		t.Run(name, func(t *testing.T) {
			c := redis.NewClient(&redis.Options{Addr: srv.Addr(), TLSConfig: cfg, MaxRetries: -1, DialTimeout: 5 * time.Second})
			defer c.Close()
			err := c.Ping(context.Background()).Err()
			require.Error(t, err)
			assert.Equal(t, errclass.TLS, errclass.Of(err), "%v", err)
		})
	}
}

// TestBuildWarnsOfWeakSecurity: building a client whose profile turns TLS
// verification off publishes a config.warning event (and the client still
// works: a warning changes nothing else).
func TestBuildWarnsOfWeakSecurity(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{TLS: true})
	cfg := load(t, `profiles:
  p:
    addr: %s
    tls: {enabled: true, insecure_skip_verify: true, cert_file: %s, key_file: %s}
`, srv.Addr(), srv.TLS.ClientCertFile, srv.TLS.ClientKeyFile)
	rt := runtime.New(runtime.Options{})
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	ev, stop := collect(rt, runtime.ConfigWarning)
	defer stop()
	c, err := factory.Build("p", cfg.Profiles["p"], rt, factory.BuildOptions{})
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.Ping(context.Background()).Err())
	require.Eventually(t, func() bool { return ev.count(runtime.ConfigWarning) == 1 }, 5*time.Second, 10*time.Millisecond)
	w := ev.list()[0]
	assert.Equal(t, "p", w.Profile)
	assert.Contains(t, w.Message, "tls.insecure_skip_verify: TLS certificate verification is off")
	assert.Equal(t, slog.LevelWarn, w.Kind.Level())
}
