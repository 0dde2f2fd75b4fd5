// Package examples_test loads every example configuration the way a
// service would, and requires each to be valid.
package configs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

const envPrefix = "APP_REDIS"

func load(t *testing.T, environ []string, paths ...string) *profiles.Result {
	t.Helper()
	res, err := profiles.Load(profiles.Options{
		Paths:     paths,
		EnvPrefix: envPrefix,
		Environ:   func() []string { return environ },
	})
	require.NoError(t, err, "%v must load with zero issues", paths)
	require.NotEmpty(t, res.Config.Profiles)
	return res
}

func TestWebapp(t *testing.T) {
	res := load(t, nil, "webapp")
	ps := res.Config.Profiles
	require.ElementsMatch(t, []string{"sessions", "cache", "cache-reports"}, keys(ps))

	// The defaults block reaches every profile.
	for _, p := range ps {
		require.Equal(t, "redis.internal:6379", p.Addr)
		require.Equal(t, "3s", schema.FormatDuration(p.HealthCheckInterval))
	}
	// extends: cache-reports inherits the cache's db, overrides the rest.
	require.Equal(t, 1, ps["cache-reports"].DB)
	require.Equal(t, "5s", schema.FormatDuration(ps["cache-reports"].Timeouts.Socket))
	require.Equal(t, "webapp-reports", ps["cache-reports"].ClientName)
	require.False(t, ps["cache-reports"].Cache.Enabled)
	require.True(t, ps["cache"].Cache.Enabled)
	require.Equal(t, schema.ByteSize(128<<20), ps["cache"].Cache.MaxBytes)
	require.True(t, ps["sessions"].Retry.Budget.Enabled())
}

func TestWebappEnvironmentOverrides(t *testing.T) {
	res := load(t, []string{
		"APP_REDIS__DEFAULTS__ADDR=redis.prod.internal:6379",
		"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=750ms",
	}, "webapp")
	ps := res.Config.Profiles
	require.Equal(t, "redis.prod.internal:6379", ps["cache"].Addr)
	require.Equal(t, "750ms", schema.FormatDuration(ps["sessions"].Timeouts.Socket))
	require.Equal(t, "200ms", schema.FormatDuration(ps["cache"].Timeouts.Socket))
}

func TestSentinel(t *testing.T) {
	res := load(t, nil, "sentinel")
	ps := res.Config.Profiles
	require.ElementsMatch(t, []string{"orders", "orders-replicas"}, keys(ps))
	for _, p := range ps {
		require.Equal(t, schema.Sentinel, p.Mode)
		require.Equal(t, "mymaster", p.Sentinel.MasterName)
		require.Len(t, p.Sentinel.Addrs, 3)
	}
	require.True(t, ps["orders-replicas"].Sentinel.ReplicaOnly)
	require.False(t, ps["orders"].Sentinel.ReplicaOnly)
}

func TestCluster(t *testing.T) {
	res := load(t, nil, "cluster")
	p := res.Config.Profiles["events"]
	require.NotNil(t, p)
	require.Equal(t, schema.Cluster, p.Mode)
	require.Len(t, p.Addrs, 3)
	require.True(t, p.TLS.Enabled)
	// Cluster profiles also retry on CLUSTERDOWN by default.
	require.Equal(t, []errclass.Class{errclass.Connection, errclass.Timeout, errclass.ClusterDown, errclass.TryAgain, errclass.BusyLoading}, p.RetryClasses())
}

func TestKubernetes(t *testing.T) {
	// The Deployment points password_file at the Secret mount; here, a
	// temporary file.
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	require.NoError(t, os.WriteFile(pw, []byte("example-password\n"), 0o600))

	// As shipped, without the Deployment's environment, it is valid
	// anywhere: the Secret's path is the Deployment's business.
	load(t, nil, "kubernetes")

	// In a pod whose Secret is not mounted, the variable naming it is
	// reported.
	_, err := profiles.Load(profiles.Options{Paths: []string{"kubernetes"}, EnvPrefix: envPrefix, Environ: func() []string {
		return []string{"APP_REDIS__DEFAULTS__PASSWORD_FILE=/var/run/secrets/redis/password"}
	}})
	require.Error(t, err)
	require.Contains(t, err.Error(), "/var/run/secrets/redis/password")
	require.Contains(t, err.Error(), "APP_REDIS__DEFAULTS__PASSWORD_FILE")

	res := load(t, []string{
		"APP_REDIS__DEFAULTS__PASSWORD_FILE=" + pw,
		"APP_REDIS__PROFILES__SESSIONS__ADDR=redis-sessions-master.prod.svc.cluster.local:6379",
		// Kubernetes service links: not under the prefix, so ignored.
		"REDIS_PORT=tcp://10.0.0.12:6379",
		"REDIS_SERVICE_HOST=10.0.0.12",
	}, "kubernetes") // the directory, as mounted
	ps := res.Config.Profiles
	require.ElementsMatch(t, []string{"sessions", "rate-limits", "catalog"}, keys(ps))
	for name, p := range ps {
		require.Equal(t, "example-password", p.Password.Reveal(), name)
	}
	require.Equal(t, "redis-sessions-master.prod.svc.cluster.local:6379", ps["sessions"].Addr)
	require.Equal(t, schema.CacheBroadcast, ps["catalog"].Cache.Mode)
	require.Contains(t, res.Files(), pw)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
