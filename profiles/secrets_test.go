package profiles_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

const marker = "S3CRETmarker"

// TestSecretsInTheWrongPlaceAreNotPrinted: a secret where YAML, a URL or a
// key gives it another meaning is rejected (or redacted), and no issue —
// its text, its fields, any fmt verb — contains it.
func TestSecretsInTheWrongPlaceAreNotPrinted(t *testing.T) {
	cases := []struct {
		name, doc, want string
		env             []string
	}{
		{"password is an unknown alias", "profiles:\n  a:\n    password: *" + marker + "\n", "quote it", nil},
		{"password is an alias in a flow map", "profiles:\n  a: {password: *" + marker + "x}\n", "quote it", nil},
		{"password is an anchor", "profiles:\n  a:\n    password: &" + marker + "\n", "reads as an anchor", nil},
		{"password is a tag", "profiles:\n  a:\n    password: !" + marker + " x\n", "reads as a tag", nil},
		{"sentinel password is a tag", "profiles:\n  a:\n    mode: sentinel\n    sentinel:\n      password: !x " + marker + "\n", "reads as a tag", nil},
		{"url is an alias", "x-a: &u redis://h:1\nprofiles:\n  a:\n    url: *u\n", "reads as an alias", nil},
		{"url password with #", "profiles:\n  a:\n    url: redis://:" + marker + "#x@127.0.0.1:6379\n", "percent-encode it", nil},
		{"url password with /", "profiles:\n  a:\n    url: redis://u:ab/" + marker + "@127.0.0.1:6379/0\n", "percent-encode it", nil},
		{"url password with ?", "profiles:\n  a:\n    url: rediss://:x?" + marker + "@127.0.0.1:6379\n", "percent-encode it", nil},
		{"url in addr", "profiles:\n  a:\n    addr: redis://:" + marker + "@127.0.0.1:6379\n", "is a URL, not host:port", nil},
		{"url in addrs", "profiles:\n  a:\n    mode: cluster\n    addrs: [\"redis://:" + marker + "@h:1\"]\n", "is a URL, not host:port", nil},
		{"url in sentinel.addrs", "profiles:\n  a:\n    mode: sentinel\n    sentinel: {master_name: m, addrs: [\"redis://:" + marker + "@h:1\"]}\n", "is a URL, not host:port", nil},
		{"profile as a url", "profiles:\n  a: \"redis://:" + marker + "@h:1\"\n", "{url:", nil},
		{"url in addr from env", "profiles:\n  a: {}\n", "is a URL, not host:port", []string{"APP_REDIS__PROFILES__A__ADDR=redis://:" + marker + "@h:1"}},
		{"password typed into password_file", "profiles:\n  a:\n    password_file: " + marker + "\n", "may be the secret itself", nil},
		{"password and password_file", "profiles:\n  a:\n    password: " + marker + "\n    password_file: " + marker + "\n", "not both", nil},
		{"password is a number-like map", "profiles:\n  a:\n    password: {" + marker + ": 1}\n", "must be text", nil},
		{"url that is not a url", "profiles:\n  a:\n    url: \"" + marker + "\"\n", "url", nil},
		{"url cannot be parsed", "profiles:\n  a:\n    url: \"redis://:" + marker + "@h:1/db\"\n", "url", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadYAML(t, tc.doc, tc.env...)
			is := issuesOf(t, err)
			assert.Contains(t, is.Error(), tc.want)
			for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x"} {
				assert.NotContains(t, fmt.Sprintf(verb, err), marker, verb)
				assert.NotContains(t, fmt.Sprintf(verb, is), marker, verb)
			}
			for _, i := range is {
				assert.NotContains(t, fmt.Sprintf("%s|%s|%s|%s", i.Source, i.Path, i.Message, i.Value), marker)
			}
		})
	}
}

// TestSecretsWrittenRightStillWork: quoting a secret that starts with a
// YAML indicator, or percent-encoding a URL password, loads the exact
// secret.
func TestSecretsWrittenRightStillWork(t *testing.T) {
	res, err := loadYAML(t, "profiles:\n  a:\n    password: \"*"+marker+"\"\n  b:\n    url: redis://:"+marker+"%23x@127.0.0.1:6379\n  c:\n    url: redis://u:p@ss@127.0.0.1:6379\n")
	require.NoError(t, err)
	assert.Equal(t, "*"+marker, res.Config.Profiles["a"].Password.Reveal())
	assert.Equal(t, marker+"#x", res.Config.Profiles["b"].Password.Reveal())
	assert.Equal(t, "127.0.0.1:6379", res.Config.Profiles["b"].Addr)
	assert.Equal(t, "p@ss", res.Config.Profiles["c"].Password.Reveal(), "go-redis splits at the last '@', so it is accepted")
}

// TestLoneUserinfoUsername: redis://X@host sets username X, as go-redis v9
// reads it, and X is printed redacted everywhere, as the url is.
func TestLoneUserinfoUsername(t *testing.T) {
	res, err := loadYAML(t, "profiles:\n  a:\n    url: redis://"+marker+"@127.0.0.1:6379\n")
	require.NoError(t, err)
	p := res.Config.Profiles["a"]
	assert.Equal(t, marker, p.Username)
	keys, err := res.Explain("a")
	require.NoError(t, err)
	assert.NotContains(t, fmt.Sprint(keys), marker)
	assert.NotContains(t, fmt.Sprint(res.Config.Tree()), marker)
	assert.NotContains(t, fmt.Sprintf("%+v", p), marker)
}

// TestOptionsNeverPrintSecrets: overrides and in-memory documents print
// redacted with every verb.
func TestOptionsNeverPrintSecrets(t *testing.T) {
	o := profiles.Options{
		Sources:   []profiles.Source{profiles.Bytes("mem.yaml", []byte("profiles:\n  a:\n    password: "+marker+"\n"))},
		Overrides: map[string]any{"profiles.a.password": marker, "profiles.a.url": "redis://:" + marker + "@h:1", "profiles.a.addr": "redis://u:" + marker + "@h:1"},
	}
	w := profiles.WatchOptions{Load: o}
	res, err := profiles.Load(o)
	require.NoError(t, err)
	w.Current = res
	watcher, err := profiles.Watch(context.Background(), w, func(profiles.Change) error { return nil })
	require.NoError(t, err)
	defer watcher.Close()
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%d", "%t"} {
		for _, v := range []any{o, &o, w, &w, res, watcher} {
			assert.NotContains(t, fmt.Sprintf(verb, v), marker, "%s on %T", verb, v)
		}
	}
}

// TestYAMLErrorKeepsNonSecretTokens: redaction of yaml.v3's errors is
// limited to tokens from secret values; an unknown alias elsewhere is named.
func TestYAMLErrorKeepsNonSecretTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    client_name: *nosuch\n"), 0o600))
	_, err := profiles.Load(profiles.Options{Paths: []string{path}})
	assert.Contains(t, issuesOf(t, err).Error(), "unknown anchor 'nosuch'")
}
