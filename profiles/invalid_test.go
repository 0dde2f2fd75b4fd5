package profiles_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// loadYAML writes doc to a temp file named redis.yaml and loads it.
func loadYAML(t *testing.T, doc string, env ...string) (*profiles.Result, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	return profiles.Load(profiles.Options{
		Paths:     []string{path},
		EnvPrefix: "APP_REDIS",
		Environ:   func() []string { return env },
	})
}

func issuesOf(t *testing.T, err error) schema.Issues {
	t.Helper()
	require.Error(t, err)
	var is schema.Issues
	require.True(t, errors.As(err, &is), "error is not schema.Issues: %v", err)
	return is
}

// TestInvalidConfigurations: each case must be rejected with an issue at
// the given key path whose message contains the given text.
func TestInvalidConfigurations(t *testing.T) {
	tmp := t.TempDir()
	readable := filepath.Join(tmp, "ca.pem")
	require.NoError(t, os.WriteFile(readable, []byte("pem"), 0o600))

	cases := []struct {
		name    string
		doc     string
		env     []string
		path    string
		message string
		line    int // expected line in the source, 0 to skip
	}{
		{"unknown profile key", "profiles:\n  a:\n    adr: x:1\n", nil, "profiles.a.adr", `unknown key (did you mean "addr"?)`, 3},
		{"unknown nested key", "profiles:\n  a:\n    retry:\n      retires: 2\n", nil, "profiles.a.retry.retires", `did you mean "retries"?`, 4},
		{"unknown top-level key", "profile:\n  a: {}\n", nil, "profile", `did you mean "profiles"?`, 1},
		{"profile key at top level", "addr: x:1\nprofiles:\n  a: {}\n", nil, "addr", "is a profile key", 1},
		{"duration without unit", "profiles:\n  a:\n    timeouts:\n      socket: 5\n", nil, "profiles.a.timeouts.socket", "a duration needs a unit, e.g. 5s", 4},
		{"duration garbage", "profiles:\n  a:\n    timeouts:\n      connect: soon\n", nil, "profiles.a.timeouts.connect", "must be a duration with a unit", 4},
		{"negative duration", "profiles:\n  a:\n    health_check_interval: -3s\n", nil, "profiles.a.health_check_interval", "must not be negative", 3},
		{"zero socket timeout", "profiles:\n  a:\n    timeouts:\n      socket: 0s\n", nil, "profiles.a.timeouts.socket", "must be greater than 0", 4},
		{"negative drain timeout", "profiles:\n  a:\n    drain_timeout: -1s\n", nil, "profiles.a.drain_timeout", "must not be negative", 3},
		{"bad mode", "profiles:\n  a:\n    mode: clustr\n", nil, "profiles.a.mode", `must be one of standalone, sentinel, cluster (did you mean "cluster"?)`, 3},
		{"bad protocol", "profiles:\n  a:\n    protocol: 4\n", nil, "profiles.a.protocol", "must be one of 2, 3", 3},
		{"db out of range", "profiles:\n  a:\n    db: 16\n", nil, "profiles.a.db", "must be at most 15", 3},
		{"negative db", "profiles:\n  a:\n    db: -1\n", nil, "profiles.a.db", "must be at least 0", 3},
		{"db as text", "profiles:\n  a:\n    db: three\n", nil, "profiles.a.db", "must be a whole number", 3},
		{"bool as text", "profiles:\n  a:\n    tls:\n      enabled: yes please\n", nil, "profiles.a.tls.enabled", "must be true or false", 4},
		{"addr without port", "profiles:\n  a:\n    addr: localhost\n", nil, "profiles.a.addr", "is not host:port", 3},
		{"addr bad port", "profiles:\n  a:\n    addr: localhost:70000\n", nil, "profiles.a.addr", "invalid port", 3},
		{"ipv6 without brackets", "profiles:\n  a:\n    addr: \"::1:6379\"\n", nil, "profiles.a.addr", "is not host:port", 3},
		{"cluster addr invalid", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"127.0.0.1:7000\", \"bad\"]\n", nil, "profiles.a.addrs[1]", "is not a valid address", 4},
		{"cluster without addrs", "profiles:\n  a:\n    mode: cluster\n", nil, "profiles.a.addrs", "needs at least one seed node", 0},
		{"cluster with db", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"h:1\"]\n    db: 2\n", nil, "profiles.a.db", "only database 0", 5},
		{"cluster with addr", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"h:1\"]\n    addr: h:2\n", nil, "profiles.a.addr", "lists its seed nodes in addrs", 5},
		{"standalone with addrs", "profiles:\n  a:\n    addrs: [\"h:1\", \"h:2\"]\n", nil, "profiles.a.addrs", "use addr", 3},
		{"sentinel without master", "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      addrs: [\"h:26379\"]\n", nil, "profiles.a.sentinel.master_name", "needs the name of the monitored master", 0},
		{"sentinel without addrs", "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      master_name: m\n", nil, "profiles.a.sentinel.addrs", "at least one sentinel address", 0},
		{"sentinel keys outside sentinel", "profiles:\n  a:\n    sentinel:\n      master_name: m\n", nil, "profiles.a.sentinel", "only apply in sentinel mode", 4},
		{"cluster keys outside cluster", "profiles:\n  a:\n    cluster:\n      read_only: true\n", nil, "profiles.a.cluster", "only apply in cluster mode", 4},
		{"both routings", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"h:1\"]\n    cluster:\n      route_by_latency: true\n      route_randomly: true\n", nil, "profiles.a.cluster.route_randomly", "choose one", 7},
		{"cap below base", "profiles:\n  sessions:\n    retry:\n      backoff:\n        base: 100ms\n        cap: 50ms\n", nil, "profiles.sessions.retry.backoff.cap", "must not be less than retry.backoff.base (100ms)", 6},
		{"unknown strategy", "profiles:\n  a:\n    retry:\n      backoff:\n        strategy: expo\n", nil, "profiles.a.retry.backoff.strategy", "must be one of none, constant, exponential", 5},
		{"constant without base", "profiles:\n  a:\n    retry:\n      backoff:\n        strategy: constant\n        base: 0s\n", nil, "profiles.a.retry.backoff.base", "constant backoff waits base", 6},
		{"negative retries", "profiles:\n  a:\n    retry:\n      retries: -1\n", nil, "profiles.a.retry.retries", "must be at least 0", 4},
		{"too many retries", "profiles:\n  a:\n    retry:\n      retries: 1000\n", nil, "profiles.a.retry.retries", "must be at most 100", 4},
		{"unknown error class", "profiles:\n  a:\n    retry:\n      on: [conection]\n", nil, "profiles.a.retry.on[0]", `unknown error class "conection" (did you mean "connection"?)`, 4},
		{"unknown also_on class", "profiles:\n  a:\n    retry:\n      also_on: [timeout, loading]\n", nil, "profiles.a.retry.also_on[1]", "unknown error class", 4},
		{"unretryable class", "profiles:\n  a:\n    retry:\n      on: [nil]\n", nil, "profiles.a.retry.on[0]", "cannot be retried", 4},
		{"on is not a list", "profiles:\n  a:\n    retry:\n      on: connection\n", nil, "profiles.a.retry.on", "must be a list", 4},
		{"budget without ratio", "profiles:\n  a:\n    retry:\n      budget:\n        max_tokens: 10\n", nil, "profiles.a.retry.budget.token_ratio", "never refills", 5},
		{"ratio without budget", "profiles:\n  a:\n    retry:\n      budget:\n        token_ratio: 0.1\n", nil, "profiles.a.retry.budget.max_tokens", "needs max_tokens", 5},
		{"extends unknown", "profiles:\n  base: {}\n  a:\n    extends: bsae\n", nil, "profiles.a.extends", `names no profile (did you mean "base"?)`, 4},
		{"extends loop", "profiles:\n  a:\n    extends: b\n  b:\n    extends: a\n", nil, "profiles.b.extends", "extends loops: a -> b -> a", 5},
		{"extends itself", "profiles:\n  a:\n    extends: a\n", nil, "profiles.a.extends", "extends loops", 3},
		{"extends in defaults", "defaults:\n  extends: a\nprofiles:\n  a: {}\n", nil, "defaults.extends", "cannot extend", 2},
		{"tls file missing", "profiles:\n  a:\n    tls:\n      enabled: true\n      ca_file: /nonexistent/ca.pem\n", nil, "profiles.a.tls.ca_file", "cannot be read: no such file or directory", 5},
		{"tls keys while disabled", "profiles:\n  a:\n    tls:\n      ca_file: " + readable + "\n", nil, "profiles.a.tls.enabled", "tls.enabled is false", 0},
		{"cert without key", "profiles:\n  a:\n    tls:\n      enabled: true\n      cert_file: " + readable + "\n", nil, "profiles.a.tls.key_file", "tls.cert_file needs tls.key_file", 0},
		{"tls min version", "profiles:\n  a:\n    tls:\n      enabled: true\n      min_version: \"1.1\"\n", nil, "profiles.a.tls.min_version", "must be one of 1.2, 1.3", 5},
		{"password and password_file", "profiles:\n  a:\n    password: x\n    password_file: " + readable + "\n", nil, "profiles.a.password_file", "either password or password_file", 4},
		{"password_file missing", "profiles:\n  a:\n    password_file: /nonexistent/pw\n", nil, "profiles.a.password_file", "cannot be read", 3},
		{"pool min_idle above size", "profiles:\n  a:\n    pool:\n      size: 2\n      min_idle: 5\n", nil, "profiles.a.pool.min_idle", "must not exceed pool.size (2)", 5},
		{"pool negative size", "profiles:\n  a:\n    pool:\n      size: -2\n", nil, "profiles.a.pool.size", "must be at least 0", 4},
		{"cache command not read-only", "profiles:\n  a:\n    cache:\n      enabled: true\n      commands: [GET, INCR]\n", nil, "profiles.a.cache.commands[1]", "INCR is not a read-only command", 5},
		{"cache prefixes without broadcast", "profiles:\n  a:\n    cache:\n      enabled: true\n      prefixes: [\"user:\"]\n", nil, "profiles.a.cache.prefixes", "only apply with cache.mode: broadcast", 5},
		{"cache unbounded", "profiles:\n  a:\n    cache:\n      enabled: true\n      max_entries: 0\n      max_bytes: 0\n", nil, "profiles.a.cache.max_entries", "needs a bound", 0},
		{"cache bad size", "profiles:\n  a:\n    cache:\n      max_bytes: lots\n", nil, "profiles.a.cache.max_bytes", "must be a size such as 64MiB", 4},
		{"cache bad mode", "profiles:\n  a:\n    cache:\n      mode: broadcst\n", nil, "profiles.a.cache.mode", `did you mean "broadcast"?`, 4},
		{"sch enabled on a unix socket", "profiles:\n  a:\n    network: unix\n    addr: /tmp/redis.sock\n    sch:\n      mode: enabled\n", nil, "profiles.a.sch.mode", "do not apply over a unix socket", 6},
		{"sch enabled on resp2", "profiles:\n  a:\n    protocol: 2\n    sch:\n      mode: enabled\n", nil, "profiles.a.sch.mode", "set protocol: 3", 5},
		{"pipeline auto on cluster", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"h:7000\"]\n    pipeline:\n      auto: true\n", nil, "profiles.a.pipeline.auto", "standalone and sentinel profiles", 6},
		{"pipeline flush delay too long", "profiles:\n  a:\n    pipeline:\n      auto: true\n      flush_delay: 1s\n", nil, "profiles.a.pipeline.flush_delay", "must be at most 10ms", 5},
		{"pipeline negative batch", "profiles:\n  a:\n    pipeline:\n      max_batch: -1\n", nil, "profiles.a.pipeline.max_batch", "must be at least 0", 4},
		{"pipeline too many batches", "profiles:\n  a:\n    pipeline:\n      concurrent_batches: 65\n", nil, "profiles.a.pipeline.concurrent_batches", "must be at most 64", 4},
		{"sch bad endpoint type", "profiles:\n  a:\n    sch:\n      endpoint_type: internal\n", nil, "profiles.a.sch.endpoint_type", "must be one of auto, internal-ip", 4},
		{"client name with space", "profiles:\n  a:\n    client_name: my app\n", nil, "profiles.a.client_name", "without spaces", 3},
		{"bad profile name", "profiles:\n  \"my profile\":\n    addr: h:1\n", nil, "profiles.my profile", "profile names use letters", 0},
		{"profile not a map", "profiles:\n  a: 3\n", nil, "profiles.a", "must be a map of profile keys", 2},
		{"no profiles", "defaults:\n  db: 1\n", nil, "profiles", "defines no profile", 0},
		{"bad url", "profiles:\n  a:\n    url: http://h:1\n", nil, "profiles.a.url", "invalid URL scheme", 3},
		{"url bad option", "profiles:\n  a:\n    url: redis://h:1?bogus=1\n", nil, "profiles.a.url", "unexpected option", 3},
		{"unix addr not absolute", "profiles:\n  a:\n    network: unix\n    addr: redis.sock\n", nil, "profiles.a.addr", "absolute path", 4},
		{"error in defaults block", "defaults:\n  timeouts:\n    socket: 3\nprofiles:\n  a: {}\n  b: {}\n", nil, "defaults.timeouts.socket", "needs a unit", 3},
		{"env duration without unit", "profiles:\n  sessions: {}\n", []string{"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=5"}, "profiles.sessions.timeouts.socket", "needs a unit", 0},
		{"env unknown key", "profiles:\n  sessions: {}\n", []string{"APP_REDIS__PROFILES__SESSIONS__POOL__SISE=5"}, "profiles.sessions.pool.sise", `did you mean "size"?`, 0},
		{"env bad bool", "profiles:\n  sessions: {}\n", []string{"APP_REDIS__PROFILES__SESSIONS__TLS__ENABLED=maybe"}, "profiles.sessions.tls.enabled", "true or false", 0},
		{"yaml syntax", "profiles:\n  a:\n    addr: [\n", nil, "", "invalid YAML", 0},
		{"duplicate key", "profiles:\n  a:\n    db: 1\n    db: 2\n", nil, "", `key "profiles.a.db" is defined twice (first at line 3)`, 0},
		{"empty file", "# nothing here\n", nil, "", "the file is empty", 0},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.doc, tc.env...)
			is := issuesOf(t, err)
			var found *schema.Issue
			for i := range is {
				if is[i].Path == tc.path && strings.Contains(is[i].Message+" "+is[i].Error(), tc.message) {
					found = &is[i]
				}
			}
			require.NotNil(t, found, "no issue at %q containing %q in:\n%v", tc.path, tc.message, err)
			switch {
			case len(tc.env) > 0:
				assert.True(t, strings.HasPrefix(found.Source, "env APP_REDIS__"), "source %q should name the variable", found.Source)
			case tc.line > 0:
				assert.True(t, strings.HasSuffix(found.Source, "redis.yaml:"+itoa(tc.line)), "source %q should be redis.yaml:%d", found.Source, tc.line)
			default:
				assert.NotEmpty(t, found.Source)
			}
			assert.NotEmpty(t, found.Rule)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// sch.mode enabled is valid for a sentinel profile: smart client handoffs
// are the factory's own, and work on the master's connections.
func TestSCHEnabledOnSentinelIsValid(t *testing.T) {
	r, err := loadYAML(t, "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      master_name: m\n      addrs: [\"h:26379\"]\n    sch:\n      mode: enabled\n")
	require.NoError(t, err)
	require.Equal(t, schema.SCHEnabled, r.Config.Profiles["a"].SCH.Mode)
}

// TestEveryErrorAtOnce: one load reports the problems of several profiles
// and sources together.
func TestEveryErrorAtOnce(t *testing.T) {
	_, err := loadYAML(t, `profiles:
  a:
    mode: clustr
    timeouts:
      socket: 5
  b:
    retry:
      on: [conection]
      backoff:
        base: 1s
        cap: 10ms
`, "APP_REDIS__PROFILES__B__DB=99")
	is := issuesOf(t, err)
	paths := map[string]bool{}
	for _, i := range is {
		paths[i.Path] = true
	}
	for _, p := range []string{"profiles.a.timeouts.socket", "profiles.b.retry.on[0]", "profiles.b.retry.backoff.cap", "profiles.b.db"} {
		assert.True(t, paths[p], "missing issue at %s in:\n%v", p, err)
	}
	// Every line has the form "source: key: message".
	for _, line := range strings.Split(err.Error(), "\n") {
		parts := strings.SplitN(line, ": ", 3)
		require.Len(t, parts, 3, line)
	}
}

// TestSecretsNeverInErrors: a bad password-bearing value is reported
// without the secret.
func TestSecretsNeverInErrors(t *testing.T) {
	_, err := loadYAML(t, `profiles:
  a:
    url: redis://user:hunter2-secret@h:1?bogus=1
  b:
    password: [hunter3-secret]
`)
	is := issuesOf(t, err)
	assert.NotContains(t, err.Error(), "hunter2-secret")
	assert.NotContains(t, err.Error(), "hunter3-secret")
	assert.Contains(t, err.Error(), "redis://user:<redacted>@h:1")
	assert.Len(t, is, 2)
}
