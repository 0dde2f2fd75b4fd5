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
	limits    profiles.Limits
}

func (l *loadFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.envPrefix, "env-prefix", "",
		"read environment overrides named `PREFIX`__PROFILES__<NAME>__<KEY> (default: the environment is ignored)")
	d := profiles.DefaultLimits()
	// The limits of what a load reads; 0 keeps the default, -1 lifts it.
	fs.Int64Var(&l.limits.MaxFileSize, "max-file-size", 0, fmt.Sprintf("largest configuration file read, in `bytes` (default %d)", d.MaxFileSize))
	fs.Int64Var(&l.limits.MaxTotalSize, "max-total-size", 0, fmt.Sprintf("largest total of the configuration files, in `bytes` (default %d)", d.MaxTotalSize))
	fs.Int64Var(&l.limits.MaxReferencedFileSize, "max-referenced-file-size", 0, fmt.Sprintf("largest password_file or TLS file, in `bytes` (default %d)", d.MaxReferencedFileSize))
	fs.IntVar(&l.limits.MaxFiles, "max-files", 0, fmt.Sprintf("most configuration files read, `N` (default %d)", d.MaxFiles))
	fs.IntVar(&l.limits.MaxDepth, "max-depth", 0, fmt.Sprintf("deepest nesting of maps and lists, `N` levels (default %d)", d.MaxDepth))
	fs.IntVar(&l.limits.MaxNodes, "max-nodes", 0, fmt.Sprintf("most YAML nodes of all files, aliases expanded, `N` (default %d)", d.MaxNodes))
	fs.IntVar(&l.limits.MaxAliasNodes, "max-alias-nodes", 0, fmt.Sprintf("most nodes the aliases of one file expand to, `N` (default %d)", d.MaxAliasNodes))
	fs.IntVar(&l.limits.MaxProfiles, "max-profiles", 0, fmt.Sprintf("most profiles, `N` (default %d)", d.MaxProfiles))
}

// options returns the load options of paths under these flags.
func (l loadFlags) options(c *cli, paths []string) profiles.Options {
	return profiles.Options{
		Paths:     paths,
		EnvPrefix: l.envPrefix,
		Environ:   func() []string { return c.environ },
		Limits:    l.limits,
	}
}

// load loads and validates the configuration at paths. On failure it
// returns the issues (a load error that is not a list of issues becomes one
// issue).
func (c *cli) load(paths []string, l loadFlags) (*profiles.Result, schema.Issues) {
	res, err := profiles.Load(l.options(c, paths))
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
