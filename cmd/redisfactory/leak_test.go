package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// leakMarker is the secret of TestSecretLeak. Its hex forms are looked for
// too (it has no characters that URL-escaping would change).
const leakMarker = "Mk7LeakZ9q"

// leakForms are the ways the marker could appear in output: as is, in hex
// as %x, %X, % x and % X print it, as a Go escaped string ("\x4d\x6b…")
// prints it, and in base64 (a []byte in JSON).
var leakForms = []string{
	leakMarker,
	fmt.Sprintf("%x", leakMarker), fmt.Sprintf("%X", leakMarker),
	fmt.Sprintf("% x", leakMarker), fmt.Sprintf("% X", leakMarker),
	hexEscaped(leakMarker),
	base64.StdEncoding.EncodeToString([]byte(leakMarker))[:12], // whole groups of 3 bytes: no padding
}

// hexEscaped writes s as \x escapes.
func hexEscaped(s string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, "\\x%02x", s[i])
	}
	return b.String()
}

func assertNoLeak(t *testing.T, what, out string) {
	t.Helper()
	for _, f := range leakForms {
		if strings.Contains(out, f) {
			t.Errorf("%s leaks the secret (%q):\n%s", what, f, out)
			return
		}
	}
}

// TestSecretLeak puts one marker secret in every place a secret can be —
// password, sentinel.password, password_file and sentinel.password_file
// (their content), a TLS key file (before its PEM block, and alone in a
// file that is no key), url (password, lone user-info, query password), a
// URL in addr / addrs / sentinel.addrs, a profile written as a URL, a
// password or sentinel.password YAML reads as an alias or an anchor, a
// password read as a tag, a URL with an unescaped '#', '/' or '?', a
// password typed into password_file, an environment variable, a password
// file that becomes invalid under a running watcher — and greps every
// output channel, for the marker and its hex and base64 forms: CLI stdout
// and stderr of validate, print, explain, check and watch (text and JSON),
// the slog log and runtime events of a factory serving the valid profiles
// against a real server, the Error() text of every load, build and command
// error, and every fmt verb on the loaded configuration types, Origin,
// KeyOrigin, the Watcher and the Changes it reports. Expected: zero leaks.
func TestSecretLeak(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: leakMarker})
	dir := t.TempDir()
	pwFile := write(t, dir, "secrets/password", leakMarker+"\n")
	sentinelPwFile := write(t, dir, "secrets/sentinel-password", leakMarker+"\n")
	// A TLS key file with the marker before its PEM block (which PEM
	// readers skip), and one holding only the marker (not a key at all).
	tlsFiles := redistest.GenerateTLS(t, filepath.Join(dir, "tls"))
	pemKey, err := os.ReadFile(tlsFiles.ClientKeyFile)
	require.NoError(t, err)
	keyFile := write(t, dir, "secrets/client.key", leakMarker+"\n"+string(pemKey))
	badKeyFile := write(t, dir, "secrets/bad.key", leakMarker+"\n")

	valid := write(t, dir, "valid.yaml", fmt.Sprintf(`profiles:
  direct:
    addr: %[1]s
    password: %[2]s
  by-url:
    url: redis://app:%[2]s@%[1]s/3
  lone-userinfo:
    url: redis://%[2]s@%[1]s
  from-file:
    addr: %[1]s
    password_file: %[3]s
  wrong-password:
    addr: %[1]s
    password: x%[2]s
  sentinel:
    mode: sentinel
    timeouts: {connect: 200ms}
    retry: {retries: 0}
    sentinel:
      master_name: m
      addrs: ["%[4]s"]
      password: %[2]s
  sentinel-url:
    mode: sentinel
    timeouts: {connect: 200ms}
    retry: {retries: 0}
    url: redis://:%[2]s@%[4]s?master_name=m&password=%[2]s
  insecure:
    addr: %[1]s
    password: %[2]s
    timeouts: {connect: 300ms, socket: 300ms}
    retry: {retries: 0}
    tls: {enabled: true, insecure_skip_verify: true}
  sentinel-file:
    mode: sentinel
    timeouts: {connect: 200ms}
    retry: {retries: 0}
    sentinel:
      master_name: m
      addrs: ["%[4]s"]
      password_file: %[5]s
  tls-key:
    addr: %[4]s
    timeouts: {connect: 200ms}
    retry: {retries: 0}
    tls: {enabled: true, ca_file: %[6]s, cert_file: %[7]s, key_file: %[8]s}
`, srv.Addr(), leakMarker, pwFile, deadAddr(t), sentinelPwFile, tlsFiles.CAFile, tlsFiles.ClientCertFile, keyFile))
	// Loads, but the key file is no key: factory.New and check fail.
	badKey := write(t, dir, "badkey.yaml", fmt.Sprintf("profiles:\n  a:\n    addr: %s\n    tls: {enabled: true, cert_file: %s, key_file: %s}\n",
		deadAddr(t), tlsFiles.ClientCertFile, badKeyFile))

	invalid := map[string]string{
		"alias.yaml":           "profiles:\n  a:\n    password: *" + leakMarker + "\n",
		"alias-flow.yaml":      "profiles:\n  a: {addr: \"h:1\", password: *" + leakMarker + "}\n",
		"anchor.yaml":          "profiles:\n  a:\n    password: &" + leakMarker + "\n",
		"tag.yaml":             "profiles:\n  a:\n    password: !" + leakMarker + " x\n",
		"tag-value.yaml":       "profiles:\n  a:\n    password: !x " + leakMarker + "\n",
		"url-hash.yaml":        "profiles:\n  a:\n    url: redis://:" + leakMarker + "#x@127.0.0.1:6379\n",
		"url-slash.yaml":       "profiles:\n  a:\n    url: redis://:ab/" + leakMarker + "@127.0.0.1:6379/0\n",
		"url-query.yaml":       "profiles:\n  a:\n    url: rediss://u:x?" + leakMarker + "@127.0.0.1:6379\n",
		"addr-url.yaml":        "profiles:\n  a:\n    addr: redis://:" + leakMarker + "@127.0.0.1:6379\n",
		"addrs-url.yaml":       "profiles:\n  a:\n    mode: cluster\n    addrs: [\"redis://u:" + leakMarker + "@h:1\"]\n",
		"sentinel-addrs.yaml":  "profiles:\n  a:\n    mode: sentinel\n    sentinel: {master_name: m, addrs: [\"redis://:" + leakMarker + "@h:1\"]}\n",
		"profile-url.yaml":     "profiles:\n  a: \"redis://:" + leakMarker + "@h:1\"\n",
		"typed-in-file.yaml":   "profiles:\n  a:\n    password_file: " + leakMarker + "\n",
		"both.yaml":            "profiles:\n  a:\n    password: " + leakMarker + "\n    password_file: " + pwFile + "\n",
		"bad-scheme.yaml":      "profiles:\n  a:\n    url: \"http://app:" + leakMarker + "@x\"\n",
		"bad-db.yaml":          "profiles:\n  a:\n    url: \"redis://:" + leakMarker + "@h:1/db\"\n",
		"cluster-bad.yaml":     "profiles:\n  a:\n    mode: cluster\n    url: \"redis://:" + leakMarker + "@h:1?max_redirects=x\"\n",
		"password-map.yaml":    "profiles:\n  a:\n    password: {" + leakMarker + ": 1}\n",
		"sentinel-alias.yaml":  "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      master_name: m\n      addrs: [\"h:1\"]\n      password: *" + leakMarker + "\n",
		"sentinel-anchor.yaml": "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      master_name: m\n      addrs: [\"h:1\"]\n      password: &" + leakMarker + "\n",
	}
	env := []string{
		"APP_REDIS__PROFILES__DIRECT__USERNAME=default",
		"APP_REDIS__PROFILES__FROM-FILE__CLIENT_NAME=leaktest",
	}
	badEnv := []string{
		"APP_REDIS__PROFILES__DIRECT__ADDR=redis://:" + leakMarker + "@h:1",
		"APP_REDIS__PROFILES__BY-URL__URL=redis://:" + leakMarker + "#x@h:1",
		"APP_REDIS__PROFILES__FROM-FILE__PASSWORD=" + leakMarker,
	}

	// CLI channels.
	type cliRun struct {
		env  []string
		args []string
	}
	runs := []cliRun{
		{env, []string{"validate", valid}},
		{env, []string{"validate", "--format", "json", valid}},
		{env, []string{"validate", "--env-prefix", "APP_REDIS", valid}},
		{badEnv, []string{"validate", "--env-prefix", "APP_REDIS", valid}},
		{badEnv, []string{"validate", "--env-prefix", "APP_REDIS", "--format", "json", valid}},
		{env, []string{"print", valid}},
		{env, []string{"print", "--format", "json", "--env-prefix", "APP_REDIS", valid}},
		{env, []string{"check", "--timeout", "5s", valid}},
		{env, []string{"check", "--timeout", "5s", "--format", "json", valid}},
		{badEnv, []string{"check", "--env-prefix", "APP_REDIS", valid}},
		{env, []string{"watch", "--exit-after", "1500ms", "--probe", "100ms", "--stats", "0", valid}},
		{env, []string{"load", "--profile", "wrong-password", "--duration", "300ms", "--concurrency", "1", valid}},
		{env, []string{"load", "--profile", "direct", "--duration", "300ms", "--concurrency", "1", "--format", "json", valid}},
	}
	for _, p := range []string{"direct", "by-url", "lone-userinfo", "from-file", "sentinel", "sentinel-url", "insecure", "sentinel-file", "tls-key"} {
		runs = append(runs, cliRun{env, []string{"explain", valid, p}})
	}
	for _, cmd := range [][]string{{"validate"}, {"print"}, {"check"}, {"check", "--format", "json"}, {"watch", "--exit-after", "100ms"}} {
		runs = append(runs, cliRun{env, append(cmd, badKey)})
	}
	for name, doc := range invalid {
		path := write(t, dir, "invalid/"+name, doc)
		for _, cmd := range [][]string{{"validate"}, {"validate", "--format", "json"}, {"print"}, {"check"}, {"watch", "--exit-after", "100ms"}} {
			runs = append(runs, cliRun{env, append(cmd, path)})
		}
		runs = append(runs, cliRun{env, []string{"explain", path, "a"}})
	}
	for _, r := range runs {
		res := runCLI(t, r.env, r.args...)
		assertNoLeak(t, fmt.Sprint(r.args, " stdout"), res.stdout)
		assertNoLeak(t, fmt.Sprint(r.args, " stderr"), res.stderr)
	}
	// The invalid files were all rejected (they are not leaks by being
	// accepted quietly).
	for name := range invalid {
		res := runCLI(t, env, "validate", filepath.Join(dir, "invalid", name))
		assert.Equal(t, exitFailed, res.code, "%s: %s", name, res)
	}

	// Error() of every load error, and every fmt verb on it.
	verbs := []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%t"}
	for name := range invalid {
		_, err := profiles.Load(profiles.Options{Paths: []string{filepath.Join(dir, "invalid", name)}})
		require.Error(t, err, name)
		assertNoLeak(t, name+" Error()", err.Error())
		for _, v := range verbs {
			assertNoLeak(t, name+" "+v, fmt.Sprintf(v, err))
		}
	}
	_, err = profiles.Load(profiles.Options{Paths: []string{valid}, EnvPrefix: "APP_REDIS", Environ: func() []string { return badEnv }})
	require.Error(t, err)
	assertNoLeak(t, "env Error()", err.Error())

	// The loaded configuration types, every verb; the options too.
	opts := profiles.Options{Paths: []string{valid}, Overrides: map[string]any{"profiles.direct.password": leakMarker}}
	res, err := profiles.Load(opts)
	require.NoError(t, err)
	values := []any{res.Config, *res.Config, opts, &opts, profiles.WatchOptions{Load: opts, Current: res}}
	for _, name := range res.Profiles() {
		p := res.Config.Profiles[name]
		values = append(values, p, *p, p.Password, p.URL, p.Sentinel, p.Sentinel.Password, p.TLS)
		keys, err := res.Explain(name)
		require.NoError(t, err)
		values = append(values, keys)
	}
	values = append(values, res.Warnings(), res)
	for _, name := range res.Profiles() {
		keys, err := res.Explain(name)
		require.NoError(t, err)
		for _, k := range keys {
			values = append(values, k, k.Origin)
		}
	}
	// A watcher with those options (the override holds the marker), and
	// the changes it reports: a valid reload, and one whose password file
	// became invalid (over max_referenced_file_size, full of the marker).
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	changes := make(chan profiles.Change, 16)
	w, err := profiles.Watch(wctx, profiles.WatchOptions{Load: opts, Current: res, Debounce: 20 * time.Millisecond},
		func(c profiles.Change) error { changes <- c; return nil })
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(pwFile, []byte(strings.Repeat(leakMarker+"\n", (1<<20)/len(leakMarker)+1)), 0o600))
	var bad profiles.Change
	select {
	case bad = <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("the watcher did not report the invalid password file")
	}
	require.Error(t, bad.Err)
	require.Contains(t, bad.Err.Error(), "max_referenced_file_size")
	require.NoError(t, os.WriteFile(pwFile, []byte(leakMarker+"\n"), 0o600))
	good, err := w.Reload(wctx)
	require.NoError(t, err)
	values = append(values, w, bad, &bad, bad.Err, good, &good)
	require.NoError(t, w.Close())
	for _, v := range values {
		for _, verb := range verbs {
			assertNoLeak(t, fmt.Sprintf("%s on %T", verb, v), fmt.Sprintf(verb, v))
		}
	}

	// A key file that is no key: the build error.
	bres, err := profiles.Load(profiles.Options{Paths: []string{badKey}})
	require.NoError(t, err)
	_, err = factory.New(bres.Config, factory.Options{})
	require.Error(t, err, "factory.New with a key file that is no key")
	assertNoLeak(t, "factory.New Error()", err.Error())
	for _, v := range verbs {
		assertNoLeak(t, "factory.New error "+v, fmt.Sprintf(v, err))
	}

	// A factory serving the valid profiles: its slog log, its events and
	// the errors its clients return.
	var logBuf redistest.SyncBuffer
	rt := runtime.New(runtime.Options{Logger: slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	var evMu sync.Mutex
	var evText strings.Builder
	cancelEv := rt.Events().SubscribeFunc(func(e runtime.Event) {
		evMu.Lock()
		fmt.Fprintf(&evText, "%s\n%+v\n", e.String(), e)
		evMu.Unlock()
	}, runtime.WithBuffer(100000))
	f, err := factory.New(res.Config, factory.Options{Runtime: rt, ProbeInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cmdErrs []error
	for _, name := range res.Profiles() {
		c, err := f.Client(name)
		require.NoError(t, err)
		cmdErrs = append(cmdErrs, c.Ping(ctx).Err(), c.Set(ctx, "k", leakMarker, 0).Err(), c.Get(ctx, "nokey").Err())
		cl, err := f.Lookup(name)
		require.NoError(t, err)
		cmdErrs = append(cmdErrs, cl.Check(ctx).Err)
		// The factory's own types, every verb: no field prints a secret.
		for _, v := range []any{c, cl, cl.Health(), f} {
			for _, verb := range verbs {
				assertNoLeak(t, fmt.Sprintf("%s on %T", verb, v), fmt.Sprintf(verb, v))
			}
		}
	}
	require.NoError(t, errors.Join(f.Close(ctx), rt.Close(ctx)))
	cancelEv()
	for _, e := range cmdErrs {
		if e != nil {
			assertNoLeak(t, "command error", e.Error())
		}
	}
	evMu.Lock()
	assertNoLeak(t, "events", evText.String())
	evMu.Unlock()
	assertNoLeak(t, "slog", logBuf.String())
	require.NotEmpty(t, logBuf.String(), "the factory logged its events")
}

// TestOutputEscaping: a profile name, a key or a value holding an ANSI
// escape or a newline reaches no text output raw and forges no line; JSON
// output keeps the exact text.
func TestOutputEscaping(t *testing.T) {
	dir := t.TempDir()
	evil := "x\x1b]0;pwned\x07\nbuilt-in default: forged"
	invalid := write(t, dir, "invalid.yaml", fmt.Sprintf("profiles:\n  %q:\n    addr: 127.0.0.1:1\n  ok:\n    %q: 1\n", evil, evil))
	valid := write(t, dir, "valid.yaml", fmt.Sprintf("profiles:\n  a:\n    addr: 127.0.0.1:1\n    username: %q\n    cache: {mode: broadcast, prefixes: [%q]}\n", evil, evil))
	for _, args := range [][]string{
		{"validate", invalid}, {"print", invalid}, {"check", invalid}, {"explain", invalid, "ok"},
		{"explain", valid, "a"}, {"print", valid}, {"validate", valid},
	} {
		r := runCLI(t, nil, args...)
		for _, out := range []string{r.stdout, r.stderr} {
			assert.NotContains(t, out, "\x1b", "%v", args)
			assert.NotContains(t, out, "\x07", "%v", args)
			assert.NotRegexp(t, `(?m)^built-in default: forged`, out, "%v", args)
		}
	}
	r := runCLI(t, nil, "validate", "--format", "json", invalid)
	assert.Contains(t, r.stdout, `x\u001b]0;pwned\u0007\nbuilt-in default: forged`, "JSON keeps the exact text, escaped as JSON")
	r = runCLI(t, nil, "explain", valid, "a")
	assert.Contains(t, r.stdout, `x\x1b]0;pwned\x07\nbuilt-in default: forged`)
	_ = schema.Redacted
}
