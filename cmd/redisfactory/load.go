package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// loadFlags are the flags of every command that loads a configuration.
type loadFlags struct {
	envPrefix string
}

func (l *loadFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.envPrefix, "env-prefix", "",
		"read environment overrides named `PREFIX`__PROFILES__<NAME>__<KEY> (default: the environment is ignored)")
}

// load loads and validates the configuration at paths. On failure it
// returns the issues (a load error that is not a list of issues becomes one
// issue).
func (c *cli) load(paths []string, l loadFlags) (*profiles.Result, schema.Issues) {
	res, err := profiles.Load(profiles.Options{
		Paths:     paths,
		EnvPrefix: l.envPrefix,
		Environ:   func() []string { return c.environ },
	})
	if err == nil {
		return res, nil
	}
	var is schema.Issues
	if errors.As(err, &is) && len(is) > 0 {
		return nil, is
	}
	return nil, schema.Issues{{Rule: "load", Message: err.Error()}}
}

// printIssues writes one issue per line, as "source: key: message (got
// value)", then a count line to countTo.
func printIssues(w, countTo io.Writer, is schema.Issues) {
	for _, i := range is {
		fmt.Fprintln(w, issueLine(i))
	}
	fmt.Fprintf(countTo, "invalid configuration: %s\n", plural(len(is), "issue", "issues"))
}

// issueLine renders an issue on one line, redacted and with control
// characters escaped (schema.Issue.Error); one without a key path drops
// the empty key.
func issueLine(i schema.Issue) string { return i.Error() }

// printWarnings writes one "warning: …" line per warning. Warnings never
// change an exit code.
func printWarnings(w io.Writer, ws schema.Issues) {
	for _, i := range ws {
		fmt.Fprintln(w, "warning: "+issueLine(i))
	}
}
