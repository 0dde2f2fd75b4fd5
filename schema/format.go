package schema

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
)

// The configuration types print their fields through fmt, slog and JSON
// like plain structs, but always from a redacted copy (Profile.Redacted):
// whatever verb a caller uses (%s %q %v %+v %#v %x %d %t …) no credential
// reaches the output. Secrets format themselves (Secret.Format); these
// methods cover credentials in other fields, such as a URL with a password
// written into addr.
//
// One verb is beyond any type's reach: %p given a value that is not a
// pointer. fmt then prints "%!p(TYPE=VALUE)" with the raw value, without
// calling any formatting method. Never format configuration values with
// %p (go vet reports it).

// profileFields has Profile's fields and none of its methods, so that
// formatting it does not recurse into Profile.Format.
type profileFields Profile

// Redacted returns a copy of p that is safe to print: every text field
// passed through RedactText (URL credentials anywhere), a user name taken
// from a URL's lone user-info replaced by <redacted>, the secrets kept as
// Secrets (which print redacted).
func (p Profile) Redacted() Profile {
	redactStrings(reflect.ValueOf(&p).Elem())
	if lone := LoneUserinfo(p.URL.Reveal()); lone != "" {
		if p.Username == lone {
			p.Username = Redacted
		}
		if p.Sentinel.Username == lone {
			p.Sentinel.Username = Redacted
		}
	}
	return p
}

// redactStrings applies RedactText to every string and []string field of a
// struct (recursively), leaving Secrets alone.
func redactStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				redactStrings(v.Field(i))
			}
		}
	case reflect.String:
		if v.Type() != secretType && v.CanSet() {
			v.SetString(RedactText(v.String()))
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.String && v.Len() > 0 {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			for i := range c.Len() {
				redactStrings(c.Index(i))
			}
			v.Set(c)
		}
	}
}

// Format prints the redacted copy of p with any verb.
func (p Profile) Format(f fmt.State, verb rune) {
	formatAs(f, verb, profileFields(p.Redacted()), "schema.profileFields", "schema.Profile")
}

// LogValue logs the redacted copy of p.
func (p Profile) LogValue() slog.Value { return slog.AnyValue(profileFields(p.Redacted())) }

// MarshalJSON encodes the redacted copy of p, with the same keys as p.
func (p Profile) MarshalJSON() ([]byte, error) { return json.Marshal(profileFields(p.Redacted())) }

type sentinelFields SentinelConfig

func (s SentinelConfig) redacted() sentinelFields {
	redactStrings(reflect.ValueOf(&s).Elem())
	return sentinelFields(s)
}

// Format prints s with URL credentials in its addresses redacted.
func (s SentinelConfig) Format(f fmt.State, verb rune) {
	formatAs(f, verb, s.redacted(), "schema.sentinelFields", "schema.SentinelConfig")
}

// LogValue logs s with URL credentials in its addresses redacted.
func (s SentinelConfig) LogValue() slog.Value { return slog.AnyValue(s.redacted()) }

// MarshalJSON encodes s with URL credentials in its addresses redacted.
func (s SentinelConfig) MarshalJSON() ([]byte, error) { return json.Marshal(s.redacted()) }

type configFields Config

// Format prints c through its fields (each profile redacted by its own
// Format; a map of pointers prints their addresses, as for any struct).
func (c Config) Format(f fmt.State, verb rune) {
	formatAs(f, verb, configFields(c), "schema.configFields", "schema.Config")
}

// formatAs formats v with the verb and flags of f, renaming the method-less
// copy's type back to the public one in %#v.
func formatAs(f fmt.State, verb rune, v any, from, to string) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), v)
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, from, to, 1)
	}
	_, _ = f.Write([]byte(s))
}
