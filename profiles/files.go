package profiles

import (
	"errors"
	"strings"

	"github.com/redisfactory/redisfactory/internal/safefile"
	"github.com/redisfactory/redisfactory/schema"
)

// readReferencedFiles reads password_file keys into their password and
// checks that TLS files exist and can be read. Every file read is recorded
// (the watcher watches them) and hashed into the digest.
func (l *loader) readReferencedFiles(res *Result) {
	seen := map[string]bool{}
	read := func(name, rel, path string) ([]byte, bool) {
		data, err := safefile.Read(path, l.limits.MaxReferencedFileSize)
		if err != nil {
			o, _ := lookupOrigin(res.origins[name], rel)
			msg := "cannot be read: " + rootCause(err)
			var tl *safefile.TooLargeError
			if errors.As(err, &tl) {
				msg = "cannot be read: " + limitMsg("the file is larger than", sizeText(l.limits.MaxReferencedFileSize), "max_referenced_file_size")
			}
			shown := schema.DisplayValue(rel, path)
			if shown == schema.Redacted {
				msg += "; the value is not shown because it does not look like a file path and may be the secret itself (write ./NAME for a file in the working directory)"
			}
			is := schema.Issue{Source: o.Source, Path: "profiles." + name + "." + rel, Rule: "file", Message: msg, Value: shown, HasValue: true}
			if o.Via == "defaults" {
				is.Path = "defaults." + rel
			}
			l.issues = append(l.issues, is)
			return nil, false
		}
		if !seen[path] {
			seen[path] = true
			l.files = append(l.files, path)
			l.hashPart(path, data)
		}
		return data, true
	}
	for _, name := range sortedProfileNames(res.Config) {
		p := res.Config.Profiles[name]
		if l.exclusive(res, name, p.Password, p.PasswordFile, "password", "password_file") ||
			l.exclusive(res, name, p.Sentinel.Password, p.Sentinel.PasswordFile, "sentinel.password", "sentinel.password_file") {
			continue
		}
		if p.PasswordFile != "" {
			if data, ok := read(name, "password_file", p.PasswordFile); ok {
				pw := strings.TrimRight(string(data), "\r\n")
				if pw == "" {
					l.emptySecret(res, name, "password_file", p.PasswordFile)
				}
				p.Password = schema.Secret(pw)
			}
		}
		if p.Sentinel.PasswordFile != "" {
			if data, ok := read(name, "sentinel.password_file", p.Sentinel.PasswordFile); ok {
				pw := strings.TrimRight(string(data), "\r\n")
				if pw == "" {
					l.emptySecret(res, name, "sentinel.password_file", p.Sentinel.PasswordFile)
				}
				p.Sentinel.Password = schema.Secret(pw)
			}
		}
		for _, f := range []struct{ rel, path string }{
			{"tls.ca_file", p.TLS.CAFile}, {"tls.cert_file", p.TLS.CertFile}, {"tls.key_file", p.TLS.KeyFile},
		} {
			if f.path != "" {
				read(name, f.rel, f.path)
			}
		}
	}
}

func (l *loader) emptySecret(res *Result, name, rel, path string) {
	o, _ := lookupOrigin(res.origins[name], rel)
	l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles." + name + "." + rel, Rule: "file", Message: "the file is empty; it must hold the password", Value: schema.DisplayValue(rel, path), HasValue: true})
}

// exclusive reports (and records) a profile that sets both a password and
// the file that should hold it.
func (l *loader) exclusive(res *Result, name string, pw schema.Secret, file, pwKey, fileKey string) bool {
	if pw == "" || file == "" {
		return false
	}
	o, _ := lookupOrigin(res.origins[name], fileKey)
	is := schema.Issue{Source: o.Source, Path: "profiles." + name + "." + fileKey, Rule: "exclusive",
		Message: "set either " + pwKey + " or " + fileKey + ", not both", Value: schema.DisplayValue(fileKey, file), HasValue: true}
	if o.Via == "defaults" {
		is.Path = "defaults." + fileKey
	}
	l.issues = append(l.issues, is)
	return true
}
