package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/schema"
)

// serverVersion asks a live server for its version.
func serverVersion(t *testing.T, srv *redistest.Server) string {
	t.Helper()
	info, err := srv.Client(t).Info(context.Background(), "server").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`redis_version:(\S+)`).FindStringSubmatch(info)
	require.NotNil(t, m, info)
	return m[1]
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
}

// quickFail keeps a failing check short: fast timeouts, small backoff.
const quickFail = `
    timeouts: {connect: 1s, socket: 1s}
    retry: {retries: 2, backoff: {strategy: constant, base: 10ms, cap: 10ms}}`

func TestCheckLiveServer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	version := serverVersion(t, srv)
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf(`profiles:
  sessions:
    addr: %[1]s
  legacy:
    addr: %[1]s
    protocol: 2
`, srv.Addr()))

	r := runCLI(t, nil, "check", cfg)
	require.Equal(t, exitOK, r.code, r)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	require.Len(t, lines, 3, r)
	require.Regexp(t, `^PROFILE\s+REACHABLE\s+VERSION\s+RESP\s+RTT\s+ERROR$`, lines[0])
	// Sorted by name, aligned, with the real version and RESP version.
	require.Regexp(t, `^legacy\s+yes\s+`+regexp.QuoteMeta(version)+`\s+2\s+[0-9.]+(µs|ms|s)$`, lines[1])
	require.Regexp(t, `^sessions\s+yes\s+`+regexp.QuoteMeta(version)+`\s+3\s+[0-9.]+(µs|ms|s)$`, lines[2])
	require.Equal(t, strings.Index(lines[0], "RESP"), strings.Index(lines[1], "2"), "columns are aligned:\n%s", r.stdout)

	// Trailing profile names select profiles; paths may be several.
	r = runCLI(t, nil, "check", cfg, "sessions")
	require.Equal(t, exitOK, r.code, r)
	require.Contains(t, r.stdout, "sessions")
	require.NotContains(t, r.stdout, "legacy")
}

func TestCheckDeadServer(t *testing.T) {
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf(`profiles:
  gone:
    addr: %s%s
`, deadAddr(t), quickFail))
	r := runCLI(t, nil, "check", cfg)
	require.Equal(t, exitFailed, r.code, r)
	require.Regexp(t, `(?m)^gone\s+no\s+-\s+-\s+-\s+connection: .*connection refused$`, r.stdout)
	require.Contains(t, r.stderr, "check failed: 1 of 1 profile unreachable (gone)")
}

func TestCheckWrongPassword(t *testing.T) {
	const wrong = "wr0ng-s3cret-pw"
	srv := redistest.Start(t, redistest.Options{Password: "the-right-one"})
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf(`profiles:
  app:
    addr: %s
    password: %s%s
`, srv.Addr(), wrong, quickFail))
	for _, format := range []string{"text", "json"} {
		r := runCLI(t, nil, "check", "--format", format, cfg)
		require.Equal(t, exitFailed, r.code, r)
		require.NotContains(t, r.stdout+r.stderr, wrong)
		if format == "text" {
			require.Regexp(t, `(?m)^app\s+no\s+.*auth: \S+`, r.stdout)
		} else {
			require.Contains(t, r.stdout, `"error_class": "auth"`)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	version := serverVersion(t, srv)
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf(`profiles:
  live:
    addr: %s
  dead:
    addr: %s%s
`, srv.Addr(), deadAddr(t), quickFail))
	r := runCLI(t, nil, "check", cfg, "--format", "json")
	require.Equal(t, exitFailed, r.code, r)
	var got []checkLine
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got), r.stdout)
	require.Len(t, got, 2)
	require.Equal(t, "dead", got[0].Profile)
	require.False(t, got[0].Reachable)
	require.Equal(t, "connection", got[0].ErrorClass)
	require.NotEmpty(t, got[0].Error)
	require.Equal(t, "live", got[1].Profile)
	require.True(t, got[1].Reachable)
	require.Equal(t, version, got[1].ServerVersion)
	require.Equal(t, 3, got[1].Protocol)
	require.Positive(t, got[1].RTTNanos)
	require.Empty(t, got[1].Error)
}

func TestCheckUsageAndConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfg := write(t, dir, "redis.yaml", validYAML)

	r := runCLI(t, nil, "check", cfg, "sesions")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, `no profile "sesions" (did you mean "sessions"?)`)

	r = runCLI(t, nil, "check")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, "missing PATH")

	r = runCLI(t, nil, "check", dir+"/nope.yaml")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, `"`+dir+`/nope.yaml" is not a file or directory`)

	r = runCLI(t, nil, "check", "--format", "xml", cfg)
	require.Equal(t, exitUsage, r.code, r)

	bad := write(t, dir, "bad.yaml", invalidYAML)
	r = runCLI(t, nil, "check", bad)
	require.Equal(t, exitFailed, r.code, r)
	require.Contains(t, r.stdout, "profiles.sessions.timeouts.socket: a duration needs a unit")
	require.Contains(t, r.stderr, "invalid configuration: ")

	r = runCLI(t, nil, "help", "check")
	require.Equal(t, exitOK, r.code, r)
	require.Contains(t, r.stdout, "Usage: redisfactory check")
	require.Contains(t, r.stdout, "-once")
}

func TestRedactorCleansEverySecretForm(t *testing.T) {
	p := &schema.Profile{
		Password: "p@ss word",
		URL:      "redis://user:url%2Fsecret@host:6379/0",
	}
	p.Sentinel.Password = "sentinel-pw"
	red := profileSecrets(p)
	in := "auth p@ss word, p%40ss+word, p%40ss%20word, redis://user:url%2Fsecret@host, url/secret\nsentinel-pw"
	out := red.clean(in)
	for _, s := range []string{"p@ss", "ss+word", "ss%20word", "url%2Fsecret", "url/secret", "sentinel-pw"} {
		require.NotContains(t, out, s)
	}
	require.NotContains(t, out, "\n")
	require.Contains(t, out, "redis://user:<redacted>@host")
	require.Equal(t, "nothing secret", profileSecrets(&schema.Profile{}).clean("nothing  secret"))
}

// check PINGs under the profile's retry policy: against a server that
// accepts connections but never answers (paused), every try waits out the
// read timeout, so four tries take at least four timeouts; --once stops
// after the first.
func TestCheckAppliesTheRetryPolicy(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	// The profile reaches the server through a proxy that counts the
	// connections: every try of a PING that timed out is made on a new
	// connection (go-redis drops a connection after a timeout).
	proxy := redistest.NewProxy(t, srv.Addr())
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf(`profiles:
  stuck:
    addr: %s
    timeouts: {connect: 300ms, socket: 300ms}
    retry:
      retries: 3
      backoff: {strategy: constant, base: 10ms}
`, proxy.Addr()))
	srv.Pause()
	defer srv.Resume()
	const timeout = 300 * time.Millisecond

	start := time.Now()
	r := runCLI(t, nil, "check", cfg)
	elapsed := time.Since(start)
	require.Equal(t, exitFailed, r.code, r)
	require.Regexp(t, `(?m)^stuck\s+no\s+.*timeout: `, r.stdout)
	assert.Equal(t, 4, proxy.TotalConns(), "the policy's 1 try and 3 retries")
	assert.GreaterOrEqual(t, elapsed, 4*timeout, "check gave up before the policy's 3 retries")

	before := proxy.TotalConns()
	start = time.Now()
	r = runCLI(t, nil, "check", "--once", cfg)
	once := time.Since(start)
	require.Equal(t, exitFailed, r.code, r)
	require.Regexp(t, `(?m)^stuck\s+no\s+.*timeout: `, r.stdout)
	assert.Equal(t, 1, proxy.TotalConns()-before, "--once tries once")
	assert.GreaterOrEqual(t, once, timeout, "the one try waits for its read timeout")
	assert.Less(t, once, 2*timeout, "--once waits for one read timeout, not two")
	t.Logf("with the policy: %s; --once: %s", elapsed, once)
}
