package profiles_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

// TestWarnings: TLS verification off and secret files readable by group or
// others are reported as warnings beside a valid configuration, with the
// key and the source that set it; a tight file and verification on are not.
func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte("x\n"), 0o600))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	open, tight, groupKey := write("open.pw", 0o644), write("tight.pw", 0o600), write("key.pem", 0o640)
	cert := write("cert.pem", 0o644) // a certificate is public: never a warning

	res, err := loadYAML(t, `profiles:
  open:
    password_file: `+open+`
  tight:
    password_file: `+tight+`
  insecure:
    tls: {enabled: true, insecure_skip_verify: true, cert_file: `+cert+`, key_file: `+groupKey+`}
  url:
    url: rediss://127.0.0.1:6380?skip_verify=true
  verified:
    url: rediss://127.0.0.1:6380
`)
	require.NoError(t, err)
	got := map[string]string{}
	for _, w := range res.Warnings() {
		assert.Equal(t, profiles.SeverityWarning, w.Severity)
		assert.Contains(t, w.Source, "redis.yaml:")
		got[w.Path] = w.Rule
	}
	assert.Equal(t, map[string]string{
		"profiles.open.password_file":                "file_permissions",
		"profiles.insecure.tls.insecure_skip_verify": "insecure_skip_verify",
		"profiles.insecure.tls.key_file":             "file_permissions",
		"profiles.url.url":                           "insecure_skip_verify",
	}, got)
}
