package profiles

import (
	"fmt"
	"os"

	"github.com/redisfactory/redisfactory/schema"
)

// SeverityWarning marks an issue that weakens security without making the
// configuration invalid (schema.Issue.Severity).
const SeverityWarning = "warning"

// Warnings returns what weakens the security of one profile without making
// it invalid, each as an issue of severity "warning" whose path starts
// with profiles.NAME:
//
//   - TLS certificate verification is off (tls.insecure_skip_verify, or
//     skip_verify=true in a rediss:// URL): anyone on the network path can
//     impersonate the server and read the password;
//   - a file holding a secret (password_file, sentinel.password_file,
//     tls.key_file) is readable by its group or by others, the check ssh
//     makes of private keys.
//
// Warnings never change whether a configuration loads or an exit code;
// Load reports them in Result.Warnings, the factory publishes them as
// runtime.ConfigWarning events when it builds a client.
func Warnings(name string, p *schema.Profile) schema.Issues {
	if p == nil {
		return nil
	}
	prefix := "profiles." + name + "."
	var out schema.Issues
	if p.TLS.Enabled && p.TLS.InsecureSkipVerify {
		out = append(out, schema.Issue{Path: prefix + "tls.insecure_skip_verify", Rule: "insecure_skip_verify", Severity: SeverityWarning,
			Message: "TLS certificate verification is off: anyone on the network path can pose as the server and read the password; use it for testing only, or trust the server's CA with tls.ca_file"})
	}
	for _, f := range []struct{ rel, path string }{
		{"password_file", p.PasswordFile}, {"sentinel.password_file", p.Sentinel.PasswordFile}, {"tls.key_file", p.TLS.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil || !st.Mode().IsRegular() {
			continue // the loader reports files it cannot read
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			out = append(out, schema.Issue{Path: prefix + f.rel, Rule: "file_permissions", Severity: SeverityWarning,
				Message: fmt.Sprintf("the file holds a secret but is readable by its group or by others (mode %04o); restrict it, e.g. chmod 600 (in Kubernetes, defaultMode: 0400)", perm),
				Value:   schema.DisplayValue(f.rel, f.path), HasValue: true})
		}
	}
	return out
}
