package profiles_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func origin(t *testing.T, r *profiles.Result, profile, path string) profiles.Origin {
	t.Helper()
	o, ok := r.Origin(profile, path)
	require.True(t, ok, "no origin for %s.%s", profile, path)
	return o
}

func TestBuiltinDefaults(t *testing.T) {
	r, err := loadYAML(t, "profiles:\n  a: {}\n")
	require.NoError(t, err)
	p := r.Config.Profiles["a"]
	assert.Equal(t, schema.Standalone, p.Mode)
	assert.Equal(t, "localhost:6379", p.Addr)
	assert.Equal(t, 10*time.Second, p.Timeouts.Connect)
	assert.Equal(t, 10*time.Second, p.Timeouts.Socket)
	assert.Equal(t, 3, p.Retry.Retries)
	assert.Equal(t, schema.BackoffExponentialJitter, p.Retry.Backoff.Strategy)
	assert.Equal(t, 10*time.Millisecond, p.Retry.Backoff.Base)
	assert.Equal(t, time.Second, p.Retry.Backoff.Cap)
	assert.Equal(t, []errclass.Class{errclass.Connection, errclass.Timeout}, p.Retry.On)
	assert.Equal(t, 3, p.Protocol)
	assert.Equal(t, schema.SCHAuto, p.SCH.Mode)
	assert.Empty(t, p.Cache.Commands, "the allow list is filled only for an enabled cache")
	assert.Equal(t, profiles.BuiltinSource, origin(t, r, "a", "timeouts.socket").Source)
}

func TestClusterDefaultRetryClasses(t *testing.T) {
	r, err := loadYAML(t, "profiles:\n  c:\n    mode: cluster\n    addrs: [\"127.0.0.1:7000\"]\n  d:\n    mode: cluster\n    addrs: [\"127.0.0.1:7000\"]\n    retry:\n      also_on: [try_again]\n")
	require.NoError(t, err)
	assert.Equal(t, []errclass.Class{errclass.Connection, errclass.Timeout, errclass.ClusterDown}, r.Config.Profiles["c"].RetryClasses())
	assert.Equal(t, []errclass.Class{errclass.Connection, errclass.Timeout, errclass.ClusterDown, errclass.TryAgain}, r.Config.Profiles["d"].RetryClasses())
}

// TestPrecedence walks the whole chain: built-in < defaults block < extends
// < profile < later file < env < override.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.yaml", `defaults:
  timeouts:
    connect: 2s
    socket: 3s
  db: 1
profiles:
  base:
    timeouts:
      socket: 4s
    client_name: base
  sessions:
    extends: base
    pool:
      size: 5
`)
	b := writeFile(t, dir, "b.yaml", `profiles:
  sessions:
    pool:
      size: 6
      min_idle: 1
`)
	r, err := profiles.Load(profiles.Options{
		Paths:     []string{a, b},
		EnvPrefix: "APP_REDIS",
		Environ: func() []string {
			return []string{
				"APP_REDIS__PROFILES__SESSIONS__POOL__MIN_IDLE=2",
				"APP_REDIS__PROFILES__SESSIONS__RETRY__ALSO_ON=busy_loading, read_only",
				"APP_REDIS__PROFILES__SESSIONS__HEALTH_CHECK_INTERVAL=3s",
				"APP_REDIS__PROFILES__SESSIONS__TLS__INSECURE_SKIP_VERIFY=false",
				"OTHER_REDIS__PROFILES__SESSIONS__DB=9", // another prefix: ignored
				"APP_REDISX__PROFILES__SESSIONS__DB=9",  // not our prefix + separator
			}
		},
		Overrides: map[string]any{"profiles.sessions.health_check_interval": "4s"},
	})
	require.NoError(t, err)
	p := r.Config.Profiles["sessions"]

	assert.Equal(t, 10*time.Millisecond, p.Retry.Backoff.Base) // built-in
	assert.Equal(t, 2*time.Second, p.Timeouts.Connect)         // defaults block
	assert.Equal(t, 1, p.DB)                                   // defaults block
	assert.Equal(t, 4*time.Second, p.Timeouts.Socket)          // extends base over defaults
	assert.Equal(t, "base", p.ClientName)                      // extends
	assert.Equal(t, 6, p.Pool.Size)                            // later file wins
	assert.Equal(t, 2, p.Pool.MinIdle)                         // env wins over files
	assert.Equal(t, []errclass.Class{errclass.BusyLoading, errclass.ReadOnly}, p.Retry.AlsoOn)
	assert.Equal(t, 4*time.Second, p.HealthCheckInterval) // override wins over env

	assert.Equal(t, profiles.Origin{Source: profiles.BuiltinSource}, origin(t, r, "sessions", "retry.backoff.base"))
	assert.Equal(t, profiles.Origin{Source: a + ":3", Via: "defaults"}, origin(t, r, "sessions", "timeouts.connect"))
	assert.Equal(t, profiles.Origin{Source: a + ":9", Via: "extends base"}, origin(t, r, "sessions", "timeouts.socket"))
	assert.Equal(t, profiles.Origin{Source: b + ":4"}, origin(t, r, "sessions", "pool.size"))
	assert.Equal(t, profiles.Origin{Source: "env APP_REDIS__PROFILES__SESSIONS__POOL__MIN_IDLE"}, origin(t, r, "sessions", "pool.min_idle"))
	assert.Equal(t, profiles.Origin{Source: "override"}, origin(t, r, "sessions", "health_check_interval"))

	// The base profile is unaffected by what sessions set.
	assert.Equal(t, 0, r.Config.Profiles["base"].Pool.Size)
	assert.Equal(t, []string{a, b}, r.Files())
}

func TestEnvProfileNameIsCaseInsensitive(t *testing.T) {
	r, err := loadYAML(t, "profiles:\n  Sessions:\n    db: 1\n", "APP_REDIS__PROFILES__SESSIONS__DB=2")
	require.NoError(t, err)
	assert.Equal(t, 2, r.Config.Profiles["Sessions"].DB)
}

func TestEnvCanFillADeclaredProfile(t *testing.T) {
	// A profile whose keys all come from the environment is declared in a
	// file with no keys.
	r, err := loadYAML(t, "profiles:\n  a: {}\n  queue: {}\n",
		"APP_REDIS__PROFILES__QUEUE__ADDR=[::1]:6380", "APP_REDIS__PROFILES__QUEUE__POOL__SIZE=7")
	require.NoError(t, err)
	q := r.Config.Profiles["queue"]
	require.NotNil(t, q)
	assert.Equal(t, "[::1]:6380", q.Addr)
	assert.Equal(t, 7, q.Pool.Size)
}

func TestEnvNamingAnUnknownProfileIsAnError(t *testing.T) {
	_, err := loadYAML(t, "profiles:\n  sessions:\n    db: 1\n",
		"APP_REDIS__PROFILES__SESIONS__ADDR=10.0.0.9:6379")
	var is schema.Issues
	require.ErrorAs(t, err, &is)
	require.Len(t, is, 1)
	assert.Equal(t, "env APP_REDIS__PROFILES__SESIONS__ADDR", is[0].Source)
	assert.Equal(t, "env_unknown_profile", is[0].Rule)
	assert.Contains(t, is[0].Message, `did you mean "sessions"?`)
	assert.Contains(t, is[0].Message, "profiles: {sesions: {}}")
	assert.NotContains(t, is.Error(), "10.0.0.9", "the value is not echoed")
}

func TestExtendsChain(t *testing.T) {
	r, err := loadYAML(t, `profiles:
  root:
    db: 1
    timeouts:
      socket: 1s
  mid:
    extends: root
    db: 2
    retry:
      retries: 5
  leaf:
    extends: mid
    timeouts:
      connect: 3s
`)
	require.NoError(t, err)
	leaf := r.Config.Profiles["leaf"]
	assert.Equal(t, 2, leaf.DB)
	assert.Equal(t, time.Second, leaf.Timeouts.Socket)
	assert.Equal(t, 3*time.Second, leaf.Timeouts.Connect)
	assert.Equal(t, 5, leaf.Retry.Retries)
	assert.Equal(t, "mid", leaf.Extends)
	assert.Equal(t, "extends root", origin(t, r, "leaf", "timeouts.socket").Via)
	assert.Equal(t, "extends mid", origin(t, r, "leaf", "db").Via)
	assert.Equal(t, "", origin(t, r, "leaf", "timeouts.connect").Via)
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "secret/password", "s3cr3t-pw\n")
	r, err := loadYAML(t, "profiles:\n  a:\n    username: app\n    password_file: "+pw+"\n")
	require.NoError(t, err)
	p := r.Config.Profiles["a"]
	assert.Equal(t, "s3cr3t-pw", p.Password.Reveal())
	assert.Contains(t, r.Files(), pw)
	keys, err := r.Explain("a")
	require.NoError(t, err)
	for _, k := range keys {
		if k.Path == "password" {
			assert.Equal(t, schema.Redacted, k.Value)
			assert.Equal(t, "password_file", k.Origin.Via)
		}
	}

	// A rotated secret changes the digest.
	d1 := r.Digest()
	require.NoError(t, os.WriteFile(pw, []byte("rotated"), 0o600))
	r2, err := profiles.Load(profiles.Options{Paths: []string{r.Files()[0]}})
	require.NoError(t, err)
	assert.NotEqual(t, d1, r2.Digest())
	assert.Equal(t, "rotated", r2.Config.Profiles["a"].Password.Reveal())
}

func TestDirectoryOfFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "10-base.yaml", "profiles:\n  a:\n    db: 1\n")
	writeFile(t, dir, "20-override.yml", "profiles:\n  a:\n    db: 2\n  b: {}\n")
	writeFile(t, dir, "notes.txt", "not yaml: [")
	writeFile(t, dir, ".hidden.yaml", "not yaml: [")
	r, err := profiles.Load(profiles.Options{Paths: []string{dir}})
	require.NoError(t, err)
	assert.Equal(t, 2, r.Config.Profiles["a"].DB)
	assert.Contains(t, r.Config.Profiles, "b")
	assert.Len(t, r.Files(), 2)
	assert.True(t, strings.HasSuffix(origin(t, r, "a", "db").Source, "20-override.yml:3"))
}

func TestFreshLoadForgetsDeletedKeys(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "r.yaml", "profiles:\n  a:\n    db: 4\n  b: {}\n")
	r, err := profiles.Load(profiles.Options{Paths: []string{f}})
	require.NoError(t, err)
	assert.Equal(t, 4, r.Config.Profiles["a"].DB)
	writeFile(t, dir, "r.yaml", "profiles:\n  a: {}\n")
	r, err = profiles.Load(profiles.Options{Paths: []string{f}})
	require.NoError(t, err)
	assert.Equal(t, 0, r.Config.Profiles["a"].DB)
	assert.NotContains(t, r.Config.Profiles, "b")
}

func TestURL(t *testing.T) {
	cases := []struct {
		name  string
		doc   string
		check func(t *testing.T, p *schema.Profile, r *profiles.Result)
	}{
		{"standalone url", "url: redis://app:pw@10.0.0.5:6380/3?dial_timeout=3&read_timeout=2s&pool_size=7&client_name=web", func(t *testing.T, p *schema.Profile, r *profiles.Result) {
			assert.Equal(t, "10.0.0.5:6380", p.Addr)
			assert.Equal(t, "app", p.Username)
			assert.Equal(t, "pw", p.Password.Reveal())
			assert.Equal(t, 3, p.DB)
			assert.Equal(t, 3*time.Second, p.Timeouts.Connect) // bare integer = seconds (go-redis rule)
			assert.Equal(t, 2*time.Second, p.Timeouts.Read)
			assert.Equal(t, 7, p.Pool.Size)
			assert.Equal(t, "web", p.ClientName)
			assert.Equal(t, "url", origin(t, r, "a", "addr").Via)
		}},
		{"explicit keys win", "url: redis://10.0.0.5:6380/3?pool_size=7\n    db: 5\n    pool:\n      size: 9", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.Equal(t, 5, p.DB)
			assert.Equal(t, 9, p.Pool.Size)
			assert.Equal(t, "10.0.0.5:6380", p.Addr)
		}},
		{"rediss turns on tls", "url: rediss://h.example.com:6380", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.True(t, p.TLS.Enabled)
		}},
		{"ipv6", "url: redis://[::1]:6390", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.Equal(t, "[::1]:6390", p.Addr)
		}},
		{"unix socket", "url: unix:///run/redis.sock?db=2", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.Equal(t, "unix", p.Network)
			assert.Equal(t, "/run/redis.sock", p.Addr)
			assert.Equal(t, 2, p.DB)
		}},
		{"cluster url", "mode: cluster\n    url: redis://h1:7000?addr=h2:7001&max_redirects=5", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.Equal(t, []string{"h1:7000", "h2:7001"}, p.Addrs)
			assert.Equal(t, 5, p.Cluster.MaxRedirects)
		}},
		{"sentinel url", "mode: sentinel\n    url: redis://s1:26379?master_name=mymaster&addr=s2:26379", func(t *testing.T, p *schema.Profile, _ *profiles.Result) {
			assert.Equal(t, "mymaster", p.Sentinel.MasterName)
			assert.Equal(t, []string{"s1:26379", "s2:26379"}, p.Sentinel.Addrs)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loadYAML(t, "profiles:\n  a:\n    "+tc.doc+"\n")
			require.NoError(t, err)
			tc.check(t, r.Config.Profiles["a"], r)
		})
	}
}

func TestIPv6Addr(t *testing.T) {
	r, err := loadYAML(t, "profiles:\n  a:\n    addr: \"[::1]:6379\"\n  b:\n    mode: cluster\n    addrs: [\"[::1]:7000\", \"[fe80::1]:7001\"]\n")
	require.NoError(t, err)
	assert.Equal(t, "[::1]:6379", r.Config.Profiles["a"].Addr)
}

func TestExplain(t *testing.T) {
	r, err := loadYAML(t, "defaults:\n  db: 2\nprofiles:\n  sessions:\n    password: hunter2\n    timeouts:\n      socket: 2s\n",
		"APP_REDIS__PROFILES__SESSIONS__POOL__SIZE=4")
	require.NoError(t, err)
	keys, err := r.Explain("sessions")
	require.NoError(t, err)
	byPath := map[string]profiles.KeyOrigin{}
	for _, k := range keys {
		byPath[k.Path] = k
		assert.NotContains(t, k.Value, "hunter2")
	}
	assert.Equal(t, "2s", byPath["timeouts.socket"].Value)
	assert.True(t, strings.HasSuffix(byPath["timeouts.socket"].Origin.Source, "redis.yaml:7"))
	assert.Equal(t, "defaults", byPath["db"].Origin.Via)
	assert.Equal(t, "env APP_REDIS__PROFILES__SESSIONS__POOL__SIZE", byPath["pool.size"].Origin.Source)
	assert.Equal(t, profiles.BuiltinSource, byPath["retry.backoff.cap"].Origin.Source)
	assert.Equal(t, schema.Redacted, byPath["password"].Value)
	assert.Equal(t, "[connection, timeout]", byPath["retry.on"].Value)

	_, err = r.Explain("sesions")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `did you mean "sessions"?`)
}

func TestEmptyFileAllowed(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "00-empty.yaml", "# placeholder\n")
	full := writeFile(t, dir, "10-real.yaml", "profiles:\n  a: {}\n")
	_, err := profiles.Load(profiles.Options{Paths: []string{empty, full}})
	require.Error(t, err)
	_, err = profiles.Load(profiles.Options{Paths: []string{empty, full}, AllowEmpty: true})
	require.NoError(t, err)
}

func TestYAMLAnchorsAndMerge(t *testing.T) {
	r, err := loadYAML(t, `x-common: &common
  timeouts:
    socket: 2s
profiles:
  a:
    <<: *common
    db: 1
`)
	// Top-level x- keys hold anchors (as in docker-compose) and are ignored.
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, r.Config.Profiles["a"].Timeouts.Socket)
	assert.Equal(t, 1, r.Config.Profiles["a"].DB)

	_, err = loadYAML(t, "y-common: 1\nprofiles:\n  a: {}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "y-common")
}

func TestSources(t *testing.T) {
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{
		profiles.Bytes("inline-1", []byte("profiles:\n  a:\n    db: 1\n")),
		profiles.Bytes("inline-2", []byte("profiles:\n  a:\n    db: 2\n")),
	}})
	require.NoError(t, err)
	assert.Equal(t, 2, r.Config.Profiles["a"].DB)
	assert.Equal(t, "inline-2:3", origin(t, r, "a", "db").Source)
}

func TestMissingPath(t *testing.T) {
	_, err := profiles.Load(profiles.Options{Paths: []string{"/nonexistent/redis.yaml"}})
	is := issuesOf(t, err)
	assert.Equal(t, "/nonexistent/redis.yaml", is[0].Source)
	assert.Contains(t, is[0].Message, "no such file")
}

// TestDecodeAndValidationIssuesTogether: a key that does not decode does
// not hide the profile's other problems.
func TestDecodeAndValidationIssuesTogether(t *testing.T) {
	_, err := loadYAML(t, "profiles:\n  a:\n    timeouts:\n      socket: 5\n    retry:\n      on: [conection]\n      backoff:\n        base: 1s\n        cap: 1ms\n")
	is := issuesOf(t, err)
	var paths []string
	for _, i := range is {
		paths = append(paths, i.Path)
	}
	assert.ElementsMatch(t, []string{"profiles.a.timeouts.socket", "profiles.a.retry.on[0]", "profiles.a.retry.backoff.cap"}, paths,
		"the zero socket timeout left by the bad value is not reported a second time")
}

// TestLoadedConfigValidatesAgain: a loaded configuration (password read
// from its file) passes schema.Validate again, as a reload check does.
func TestLoadedConfigValidatesAgain(t *testing.T) {
	pw := writeFile(t, t.TempDir(), "pw", "secret\n")
	r, err := loadYAML(t, "profiles:\n  a:\n    password_file: "+pw+"\n  b:\n    mode: cluster\n    addrs: [\"h:1\"]\n")
	require.NoError(t, err)
	assert.Empty(t, schema.Validate(r.Config))
}

// TestDigestFollowsEnvValuesAndIsStable: the digest changes with an
// environment value and is the same for identical loads.
func TestDigestFollowsEnvValuesAndIsStable(t *testing.T) {
	dir := t.TempDir()
	f := writeFile(t, dir, "r.yaml", "profiles:\n  a: {}\n")
	digest := func(env ...string) [32]byte {
		r, err := profiles.Load(profiles.Options{Paths: []string{f}, EnvPrefix: "APP", Environ: func() []string { return env }})
		require.NoError(t, err)
		return r.Digest()
	}
	env := []string{"APP__PROFILES__A__DB=1", "APP__PROFILES__A__POOL__SIZE=3", "APP__PROFILES__A__CLIENT_NAME=x"}
	d := digest(env...)
	for range 20 {
		require.Equal(t, d, digest(env...))
	}
	assert.NotEqual(t, d, digest("APP__PROFILES__A__DB=2", "APP__PROFILES__A__POOL__SIZE=3", "APP__PROFILES__A__CLIENT_NAME=x"))
}
