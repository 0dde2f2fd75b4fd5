package schema_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/schema"
)

// builtin decodes the built-in defaults into a Profile, as the loader does.
func builtin(t *testing.T) schema.Profile {
	t.Helper()
	var p schema.Profile
	p.Mode = schema.Standalone
	p.Network = "tcp"
	p.Protocol = 3
	p.Timeouts = schema.Timeouts{Connect: 10 * time.Second, Socket: 10 * time.Second}
	p.Retry = schema.Retry{Retries: 3, Backoff: schema.Backoff{Strategy: schema.BackoffExponentialJitter, Base: 10 * time.Millisecond, Cap: time.Second}}
	p.Cache = schema.Cache{MaxEntries: 10000, MaxBytes: 64 << 20, TTL: time.Minute, Mode: schema.CacheDefault}
	p.SCH = schema.SCH{Mode: schema.SCHAuto, EndpointType: "auto", RelaxedTimeout: 10 * time.Second, HandoffTimeout: 15 * time.Second}
	p.DrainTimeout = 10 * time.Second
	schema.Finalize(&p)
	return p
}

func TestProfileTreeRendersDefaults(t *testing.T) {
	p := builtin(t)
	tree := p.Tree()
	// Keys with a built-in default are there even when zero.
	require.Equal(t, "standalone", tree["mode"])
	require.Equal(t, 0, tree["db"])
	require.Equal(t, "0s", tree["health_check_interval"])
	require.Equal(t, "localhost:6379", tree["addr"])
	timeouts := tree["timeouts"].(map[string]any)
	require.Equal(t, map[string]any{"connect": "10s", "socket": "10s"}, timeouts)
	retry := tree["retry"].(map[string]any)
	require.Equal(t, 3, retry["retries"])
	require.Equal(t, false, retry["non_idempotent"])
	require.Equal(t, map[string]any{"strategy": "exponential_jitter", "base": "10ms", "cap": "1s"}, retry["backoff"])
	require.Equal(t, []string{"connection", "timeout"}, retry["on"])
	require.NotContains(t, retry, "also_on")
	require.NotContains(t, retry, "budget")
	cache := tree["cache"].(map[string]any)
	require.Equal(t, "64MiB", cache["max_bytes"])
	require.Equal(t, "1m", cache["ttl"])
	require.Equal(t, false, cache["enabled"])
	// Unset optional keys and blocks are left out.
	for _, k := range []string{"extends", "url", "addrs", "username", "password", "password_file", "client_name", "tls", "sentinel", "cluster", "pool"} {
		require.NotContains(t, tree, k)
	}
	require.NotContains(t, timeouts, "read")
}

func TestProfileTreeRendersSetKeys(t *testing.T) {
	p := builtin(t)
	p.Password = "s3cr3t-value"
	p.Username = "app"
	p.URL = "redis://app:s3cr3t-value@cache.internal:6379/2"
	p.Timeouts.Read = 1500 * time.Millisecond
	p.Retry.AlsoOn = []errclass.Class{errclass.BusyLoading, errclass.ReadOnly}
	p.Retry.Budget = schema.Budget{MaxTokens: 10, TokenRatio: 0.1}
	p.Pool.Size = 20
	p.TLS.Enabled = true
	p.HealthCheckInterval = 90 * time.Second
	p.Cache.MaxBytes = 1000
	tree := p.Tree()
	require.Equal(t, schema.Redacted, tree["password"])
	require.Equal(t, "redis://app:<redacted>@cache.internal:6379/2", tree["url"])
	require.Equal(t, "app", tree["username"])
	require.Equal(t, "1.5s", tree["timeouts"].(map[string]any)["read"])
	require.Equal(t, "1m30s", tree["health_check_interval"])
	require.Equal(t, []string{"busy_loading", "read_only"}, tree["retry"].(map[string]any)["also_on"])
	require.Equal(t, map[string]any{"max_tokens": 10.0, "token_ratio": 0.1}, tree["retry"].(map[string]any)["budget"])
	require.Equal(t, map[string]any{"size": 20}, tree["pool"])
	require.Equal(t, map[string]any{"enabled": true}, tree["tls"])
	require.Equal(t, "1000", tree["cache"].(map[string]any)["max_bytes"])
}

func TestTreeNeverShowsSecrets(t *testing.T) {
	for _, u := range []string{
		"redis://:s3cr3t-value@h:6379",
		"redis://s3cr3t-value@h:6379",
		"rediss://user:s3cr3t-value@h:6380/1?protocol=3",
		"redis://h:26379?master_name=m&password=s3cr3t-value",
		"not a url s3cr3t-value",
	} {
		p := builtin(t)
		p.URL = schema.Secret(u)
		p.Password = "s3cr3t-value"
		p.Sentinel.Password = "s3cr3t-value"
		c := schema.Config{Profiles: map[string]*schema.Profile{"x": &p}}
		y, err := yaml.Marshal(c.Tree())
		require.NoError(t, err)
		j, err := json.Marshal(c.Tree())
		require.NoError(t, err)
		for _, out := range []string{string(y), string(j), fmt.Sprint(c.Tree())} {
			require.NotContains(t, out, "s3cr3t-value", "url %q", u)
			require.Contains(t, out, "redacted")
		}
	}
}

func TestConfigTree(t *testing.T) {
	a, b := builtin(t), builtin(t)
	b.Mode = schema.Cluster
	b.Addrs = []string{"n1:7000", "n2:7000"}
	c := schema.Config{
		Defaults: schema.Profile{Username: "ignored"},
		Profiles: map[string]*schema.Profile{"a": &a, "b": &b},
	}
	tree := c.Tree()
	require.Equal(t, []string{"profiles"}, keys(tree))
	ps := tree["profiles"].(map[string]any)
	require.Equal(t, []string{"a", "b"}, keys(ps))
	require.Equal(t, []string{"n1:7000", "n2:7000"}, ps["b"].(map[string]any)["addrs"])

	// A tree is plain data: it round-trips through YAML.
	y, err := yaml.Marshal(tree)
	require.NoError(t, err)
	var back map[string]any
	require.NoError(t, yaml.Unmarshal(y, &back))
	require.Equal(t, "cluster", back["profiles"].(map[string]any)["b"].(map[string]any)["mode"])
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                           "0s",
		500 * time.Millisecond:      "500ms",
		10 * time.Second:            "10s",
		time.Minute:                 "1m",
		90 * time.Second:            "1m30s",
		time.Hour:                   "1h",
		time.Hour + 30*time.Second:  "1h0m30s",
		2*time.Hour + 5*time.Minute: "2h5m",
		1500 * time.Microsecond:     "1.5ms",
		-2 * time.Second:            "-2s",
	} {
		require.Equal(t, want, schema.FormatDuration(d))
		// What is printed parses back to the same duration.
		back, err := time.ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, d, back)
		if d != 0 {
			require.Regexp(t, schema.DurationPattern, want)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	// sort without importing sort for two keys
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if strings.Compare(out[j], out[i]) < 0 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
