package profiles

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/redisfactory/redisfactory/schema"
)

type optionsFields Options

// Format prints the options with the values of Overrides redacted (a
// secret key's value whole, URL credentials in any other) and in-memory
// sources by name and size, for every verb.
func (o Options) Format(f fmt.State, verb rune) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), optionsFields(o.redacted()))
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, "profiles.optionsFields", "profiles.Options", 1)
	}
	_, _ = f.Write([]byte(s))
}

// LogValue logs the redacted options.
func (o Options) LogValue() slog.Value { return slog.AnyValue(optionsFields(o.redacted())) }

func (o Options) redacted() Options {
	if o.Overrides != nil {
		red := make(map[string]any, len(o.Overrides))
		for k, v := range o.Overrides {
			red[schema.RedactText(k)] = schema.DisplayValue(k, v)
		}
		o.Overrides = red
	}
	return o
}

// Format prints the loaded profiles and files, for every verb: never the
// fields, which hold the configuration and its secrets.
func (r *Result) Format(f fmt.State, verb rune) {
	if r == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	s := fmt.Sprintf("profiles.Result{profiles: %v, files: %v}", r.Profiles(), r.files)
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}

// Format prints the watcher's kind and configuration paths, for every
// verb: never its options, whose overrides may hold secrets.
func (w *Watcher) Format(f fmt.State, verb rune) {
	if w == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	s := fmt.Sprintf("profiles.Watcher{paths: %v}", w.opts.Load.Paths)
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}
