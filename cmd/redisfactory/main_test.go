package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const secret = "s3cr3t-value"

// result is what one run of the command printed and returned.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return "exit " + string(rune('0'+r.code)) + "\nstdout:\n" + r.stdout + "\nstderr:\n" + r.stderr
}

func runCLI(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, environ)
	return result{code, out.String(), errb.String()}
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

const validYAML = `defaults:
  addr: 10.0.0.1:6379
  timeouts:
    socket: 2s
profiles:
  sessions:
    db: 1
    retry:
      also_on: [busy_loading]
  cache:
    db: 2
    cache:
      enabled: true
`

const secondYAML = `profiles:
  queue:
    addr: 10.0.0.2:6379
`

const invalidYAML = `profiles:
  sessions:
    addr: localhost:6379
    timeouts:
      socket: 5
  queue:
    retry:
      backoff:
        base: 2s
        cap: 1s
  cache:
    adress: localhost:6379
`

func TestHelpAndUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		r := runCLI(t, nil, args...)
		require.Equal(t, 0, r.code, r)
		for _, cmd := range []string{"validate", "print", "explain", "schema", "help"} {
			require.Contains(t, r.stdout, cmd)
		}
	}
	// No command: usage on stderr, exit 2.
	r := runCLI(t, nil)
	require.Equal(t, 2, r.code, r)
	require.Contains(t, r.stderr, "Commands:")
	require.Empty(t, r.stdout)

	r = runCLI(t, nil, "valdate", "x.yaml")
	require.Equal(t, 2, r.code, r)
	require.Contains(t, r.stderr, `unknown command "valdate" (did you mean "validate"?)`)

	// Help that was asked for goes to stdout, whole, for every command:
	// `redisfactory help load | less` works.
	for _, cmd := range commandNames() {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}} {
			r = runCLI(t, nil, args...)
			require.Equal(t, 0, r.code, r)
			require.Contains(t, r.stdout, "Usage: redisfactory "+cmd)
			require.Empty(t, r.stderr, args)
		}
	}
	r = runCLI(t, nil, "help", "validate")
	require.Contains(t, r.stdout, "-env-prefix")

	r = runCLI(t, nil, "help", "nope")
	require.Equal(t, 2, r.code, r)

	// After a usage error, the usage goes to stderr with the error.
	r = runCLI(t, nil, "validate", "--bogus")
	require.Equal(t, 2, r.code, r)
	require.Contains(t, r.stderr, "flag provided but not defined: -bogus")
	require.Contains(t, r.stderr, "Usage: redisfactory validate")
	require.Contains(t, r.stderr, "-env-prefix")
	require.Empty(t, r.stdout)
	r = runCLI(t, nil, "validate")
	require.Contains(t, r.stderr, "missing PATH")
	require.Contains(t, r.stderr, "Usage: redisfactory validate")
	require.Empty(t, r.stdout)
}

// An unknown profile is a usage error (exit 2) in every command that takes
// a profile name, with a suggestion.
func TestUnknownProfileExitsTheSameEverywhere(t *testing.T) {
	f := write(t, t.TempDir(), "redis.yaml", validYAML)
	for _, args := range [][]string{
		{"explain", f, "sesions"},
		{"check", f, "sesions"},
		{"load", "--profile", "sesions", f},
	} {
		r := runCLI(t, nil, args...)
		assert.Equal(t, exitUsage, r.code, "%v: %v", args, r)
		assert.Contains(t, r.stderr, `no profile "sesions" (did you mean "sessions"?)`, args)
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "redis.yaml", validYAML)
	for name, args := range map[string][]string{
		"validate without PATH":    {"validate"},
		"validate bad flag":        {"validate", "--bogus", f},
		"validate bad format":      {"validate", "--format", "xml", f},
		"print without PATH":       {"print", "--format", "json"},
		"print bad format":         {"print", "--format", "toml", f},
		"explain without anything": {"explain"},
		"explain without PROFILE":  {"explain", f},
		"explain bad flag":         {"explain", "-x", f, "sessions"},
		"schema with an argument":  {"schema", "extra"},
		"flag missing its value":   {"validate", f, "--env-prefix"},
	} {
		t.Run(name, func(t *testing.T) {
			r := runCLI(t, nil, args...)
			require.Equal(t, 2, r.code, r)
			require.Contains(t, r.stderr, "Usage: redisfactory "+args[0])
		})
	}
}

func TestValidateOK(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.yaml", validYAML)
	b := write(t, dir, "b.yaml", secondYAML)
	r := runCLI(t, nil, "validate", a, b)
	require.Equal(t, 0, r.code, r)
	require.Equal(t, "ok: 3 profiles (cache, queue, sessions) from 2 files\n", r.stdout)

	// A directory counts its files; flags may follow the paths.
	r = runCLI(t, nil, "validate", dir, "--format", "text")
	require.Equal(t, 0, r.code, r)
	require.Equal(t, "ok: 3 profiles (cache, queue, sessions) from 2 files\n", r.stdout)

	r = runCLI(t, nil, "validate", "--format", "json", a)
	require.Equal(t, 0, r.code, r)
	var issues []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &issues))
	require.Empty(t, issues)
}

func TestValidateInvalid(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "redis.yaml", invalidYAML)
	r := runCLI(t, nil, "validate", f)
	require.Equal(t, 1, r.code, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.GreaterOrEqual(t, len(lines), 3, r)
	// Every line is "source: key: message", the source naming the file
	// and line.
	lineRE := regexp.MustCompile(`^` + regexp.QuoteMeta(f) + `:\d+: profiles\.[a-z_.]+: .+`)
	for _, l := range lines {
		require.Regexp(t, lineRE, l)
	}
	out := r.stdout
	require.Contains(t, out, "profiles.sessions.timeouts.socket")
	require.Contains(t, out, "profiles.queue.retry.backoff.cap")
	require.Contains(t, out, "profiles.cache.adress")
	require.Regexp(t, `redis\.yaml:10: profiles\.queue\.retry\.backoff\.cap: .*\(got "1s"\)`, out)
	require.Contains(t, r.stderr, "invalid configuration: ")
	require.Contains(t, r.stderr, "issues")

	r = runCLI(t, nil, "validate", "--format", "json", f)
	require.Equal(t, 1, r.code, r)
	var issues []struct {
		Source, Path, Rule, Message, Value string
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &issues), r)
	require.Len(t, issues, len(lines))
	for _, i := range issues {
		require.NotEmpty(t, i.Path)
		require.NotEmpty(t, i.Rule)
		require.NotEmpty(t, i.Message)
		require.True(t, strings.HasPrefix(i.Source, f+":"), i.Source)
	}

	// A missing file is an invalid configuration, not a usage error.
	r = runCLI(t, nil, "validate", filepath.Join(dir, "missing.yaml"))
	require.Equal(t, 1, r.code, r)
	require.Contains(t, r.stdout, "missing.yaml")
}

func TestValidateEnvironment(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "redis.yaml", validYAML)
	env := []string{"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=5"}
	// Without the prefix, the environment is ignored.
	require.Equal(t, 0, runCLI(t, env, "validate", f).code)
	r := runCLI(t, env, "validate", "--env-prefix", "APP_REDIS", f)
	require.Equal(t, 1, r.code, r)
	require.Contains(t, r.stdout, "env APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET: profiles.sessions.timeouts.socket: ")
}

func TestPrint(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.yaml", validYAML)
	b := write(t, dir, "b.yaml", secondYAML)
	env := []string{"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=5s"}

	r := runCLI(t, env, "print", "--env-prefix", "APP_REDIS", a, b)
	require.Equal(t, 0, r.code, r)
	var y struct {
		Profiles map[string]map[string]any `yaml:"profiles"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(r.stdout), &y), r.stdout)
	require.Len(t, y.Profiles, 3)
	s := y.Profiles["sessions"]
	require.Equal(t, "10.0.0.1:6379", s["addr"])
	require.Equal(t, 1, s["db"])
	require.Equal(t, map[string]any{"connect": "10s", "socket": "5s"}, s["timeouts"])
	require.Equal(t, []any{"busy_loading"}, s["retry"].(map[string]any)["also_on"])
	require.Equal(t, "2s", y.Profiles["cache"]["timeouts"].(map[string]any)["socket"])
	require.Equal(t, true, y.Profiles["cache"]["cache"].(map[string]any)["enabled"])
	require.Equal(t, "10.0.0.2:6379", y.Profiles["queue"]["addr"])

	r = runCLI(t, env, "print", "--format", "json", "--env-prefix", "APP_REDIS", a, b)
	require.Equal(t, 0, r.code, r)
	var j struct {
		Profiles map[string]map[string]any `json:"profiles"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &j), r.stdout)
	require.Equal(t, "5s", j.Profiles["sessions"]["timeouts"].(map[string]any)["socket"])

	// Invalid: errors on stderr, nothing on stdout, exit 1.
	bad := write(t, dir, "bad.yaml", invalidYAML)
	r = runCLI(t, nil, "print", bad)
	require.Equal(t, 1, r.code, r)
	require.Empty(t, r.stdout)
	require.Contains(t, r.stderr, "profiles.sessions.timeouts.socket")
}

func TestExplain(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "redis.yaml", validYAML)
	env := []string{"APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=5s", "APP_REDIS__PROFILES__SESSIONS__CACHE__ENABLED=true"}
	r := runCLI(t, env, "explain", "--env-prefix", "APP_REDIS", f, "sessions")
	require.Equal(t, 0, r.code, r)
	rows := map[string][]string{}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	require.Regexp(t, `^KEY\s+VALUE\s+ORIGIN$`, lines[0])
	valueCol := strings.Index(lines[0], "VALUE")
	originCol := strings.Index(lines[0], "ORIGIN")
	for _, l := range lines[1:] {
		require.LessOrEqual(t, len(l), 160, "explain output is too wide: %q", l)
		require.False(t, strings.HasSuffix(l, " "), "trailing space: %q", l)
		if strings.HasPrefix(l, " ") {
			// The continuation of a wrapped list, in the value column.
			require.NotEqual(t, byte(' '), l[valueCol], l)
			require.Equal(t, byte(' '), l[valueCol-1], l)
			continue
		}
		// Columns are aligned.
		require.NotEqual(t, byte(' '), l[valueCol], l)
		require.Equal(t, byte(' '), l[valueCol-1], l)
		require.NotEqual(t, byte(' '), l[originCol], l)
		f := strings.Fields(l)
		rows[f[0]] = []string{f[1], strings.Join(f[2:], " ")}
	}
	// The environment wins over the defaults block, and says so.
	require.Equal(t, []string{"5s", "env APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET"}, rows["timeouts.socket"])
	require.Equal(t, []string{"10.0.0.1:6379", f + ":2 (via defaults)"}, rows["addr"])
	require.Equal(t, []string{"1", f + ":7"}, rows["db"])
	require.Equal(t, []string{"1s", "built-in default"}, rows["retry.backoff.cap"])
	require.Regexp(t, `(?m)^retry\.on\s+\[connection, timeout\]\s+built-in default$`, r.stdout)
	// A long list wraps inside the value column.
	require.Regexp(t, `(?m)^cache\.commands\s+\[GET, MGET, .*,\s+built-in default\n\s+[A-Z]`, r.stdout)

	// Without the prefix the file's value shows.
	r = runCLI(t, env, "explain", f, "sessions")
	require.Equal(t, 0, r.code, r)
	require.Regexp(t, `(?m)^timeouts\.socket\s+2s\s+`+regexp.QuoteMeta(f)+`:4 \(via defaults\)$`, r.stdout)

	// Unknown profile: a usage error, as in check and load, with a suggestion.
	r = runCLI(t, nil, "explain", f, "sesions")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, `no profile "sesions" (did you mean "sessions"?)`)
	require.Empty(t, r.stdout)

	// Invalid configuration: exit 1.
	bad := write(t, dir, "bad.yaml", invalidYAML)
	r = runCLI(t, nil, "explain", bad, "sessions")
	require.Equal(t, 1, r.code, r)
	require.Contains(t, r.stderr, "profiles.sessions.timeouts.socket")
}

func TestSchema(t *testing.T) {
	r := runCLI(t, nil, "schema")
	require.Equal(t, 0, r.code, r)
	want, err := os.ReadFile(filepath.Join("..", "..", "schema", "redisfactory.schema.json"))
	require.NoError(t, err)
	require.Equal(t, string(want), r.stdout)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &doc))
	require.Equal(t, "https://json-schema.org/draft/2020-12/schema", doc["$schema"])
}

// TestSecretsNeverPrinted puts one password in every place a secret can be
// and checks that no command prints it, whether the configuration is valid
// or not.
func TestSecretsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	pwFile := write(t, dir, "secrets/password", secret+"\n")
	valid := write(t, dir, "valid.yaml", `profiles:
  direct:
    addr: localhost:6379
    password: `+secret+`
  by-url:
    url: redis://app:`+secret+`@localhost:6379/3
  from-file:
    addr: localhost:6379
    password_file: `+pwFile+`
  sentinel:
    mode: sentinel
    sentinel:
      master_name: m
      addrs: ["localhost:26379"]
      password: `+secret+`
`)
	invalid := write(t, dir, "invalid.yaml", `profiles:
  direct:
    addr: localhost:6379
    password: `+secret+`
    password_file: `+pwFile+`
  by-url:
    url: redis://app:`+secret+`@localhost:6379/3
    protocol: 4
  bad-url:
    url: "http://app:`+secret+`@x"
`)
	env := []string{"APP_REDIS__PROFILES__DIRECT__USERNAME=app", "APP_REDIS__PROFILES__BY-URL__PASSWORD=" + secret}
	runs := [][]string{
		{"validate", valid},
		{"validate", "--format", "json", valid},
		{"validate", invalid},
		{"validate", "--format", "json", invalid},
		{"print", valid},
		{"print", "--format", "json", valid},
		{"print", invalid},
		{"validate", "--env-prefix", "APP_REDIS", valid},
		{"print", "--env-prefix", "APP_REDIS", valid},
	}
	for _, p := range []string{"direct", "by-url", "from-file", "sentinel"} {
		runs = append(runs, []string{"explain", valid, p}, []string{"explain", "--env-prefix", "APP_REDIS", valid, p})
	}
	runs = append(runs, []string{"explain", invalid, "direct"})
	for _, args := range runs {
		r := runCLI(t, env, args...)
		require.NotContains(t, r.stdout, secret, "%v\n%s", args, r)
		require.NotContains(t, r.stderr, secret, "%v\n%s", args, r)
	}
	// The valid runs did show the redacted values.
	r := runCLI(t, env, "print", valid)
	require.Equal(t, 0, r.code, r)
	require.Contains(t, r.stdout, "password: <redacted>")
	require.Contains(t, r.stdout, "redis://app:<redacted>@localhost:6379/3")
	r = runCLI(t, env, "explain", valid, "from-file")
	require.Equal(t, 0, r.code, r)
	require.Regexp(t, `(?m)^password\s+<redacted>\s+`, r.stdout)
}
