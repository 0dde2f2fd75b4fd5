package schema

import (
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/redisfactory/redisfactory/errclass"
)

// Tree renders the effective configuration as a nested map, ready to be
// printed as YAML or JSON:
//
//	profiles:
//	  NAME: (Profile.Tree of each profile)
//
// The defaults block is not rendered: after loading it is already merged
// into every profile, and printing it again would suggest it still applies
// on top of them.
func (c *Config) Tree() map[string]any {
	ps := make(map[string]any, len(c.Profiles))
	for name, p := range c.Profiles {
		if p == nil {
			ps[name] = map[string]any{}
			continue
		}
		ps[name] = p.Tree()
	}
	return map[string]any{"profiles": ps}
}

// Tree renders the profile as a nested map keyed as in a file (the koanf
// tags). Values are rendered the way a file writes them:
//
//   - durations as strings with a unit ("10s", "1m30s", "1m");
//   - sizes with ByteSize.String ("64MiB");
//   - error classes and other named strings as plain strings, lists as
//     []string;
//   - secrets (password, sentinel.password) as "<redacted>" when set; a url
//     keeps its shape with its password (and any password query parameter)
//     replaced by "<redacted>".
//
// Which keys appear: a key that has a built-in default (schema/defaults.yaml:
// mode, network, db, protocol, timeouts.connect and .socket, the whole retry
// policy but its lists and budget, health_check_interval, cache.*, sch.*,
// drain_timeout) is always shown, even when its value is zero, because the
// zero is then a deliberate setting (db 0, health_check_interval 0s = off,
// retry.retries 0 = never). Every other key is shown only when it is set:
// non-zero, non-empty, or true. A block is shown when it shows at least one
// key. So two profiles that differ only in an unset optional key render the
// same, and every key that changes behaviour is visible.
func (p *Profile) Tree() map[string]any {
	if p == nil {
		return nil
	}
	// From the redacted copy: a user name that came from a URL's lone
	// user-info (redis://X@host) is shown redacted, as the url itself is
	// (go-redis v9 reads X as a user name, but many write the password
	// there), and no text field shows a URL's credentials.
	return renderStruct(reflect.ValueOf(p.Redacted()), "", alwaysShown())
}

// LoneUserinfo returns X of a URL written scheme://X@host (a user-info
// without a ':' and a password), or "".
func LoneUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	if _, has := u.User.Password(); has {
		return ""
	}
	return u.User.Username()
}

// alwaysShown returns the dotted paths of every key with a built-in default.
// It is computed once: parsing the defaults for each profile was three
// quarters of printing 10,000 profiles. Callers only read it.
var alwaysShown = sync.OnceValue(func() map[string]bool {
	out := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if sub, ok := v.(map[string]any); ok {
				walk(path+".", sub)
				continue
			}
			out[path] = true
		}
	}
	walk("", DefaultsTree())
	return out
})

func renderStruct(v reflect.Value, prefix string, always map[string]bool) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
		if key == "" || key == "-" || !f.IsExported() {
			continue
		}
		path := prefix + key
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if sub := renderStruct(fv, path+".", always); len(sub) > 0 {
				out[key] = sub
			}
			continue
		}
		if !always[path] && isUnset(fv) {
			continue
		}
		out[key] = renderValue(fv)
	}
	return out
}

func isUnset(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return v.IsZero()
}

func renderValue(v reflect.Value) any {
	switch v.Type() {
	case durationType:
		return FormatDuration(time.Duration(v.Int()))
	case byteSizeType:
		return ByteSize(v.Int()).String()
	case secretType:
		return Secret(v.String()).String()
	case classType:
		return v.String()
	}
	switch v.Kind() {
	case reflect.Slice:
		out := make([]string, v.Len())
		for i := range v.Len() {
			e := v.Index(i)
			if e.Type() == classType {
				out[i] = errclass.Class(e.String()).String()
			} else {
				out[i] = e.String()
			}
		}
		return out
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int())
	case reflect.Float32, reflect.Float64:
		return v.Float()
	case reflect.Bool:
		return v.Bool()
	}
	return v.Interface()
}

// FormatDuration renders d as a file would write it: "10s", "1m", "1h",
// "1m30s", "500ms", "0s" (time.Duration.String without its trailing zero
// units).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
