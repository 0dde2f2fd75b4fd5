package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// runValidate checks the configuration and reports every issue:
//
//	ok: 3 profiles (cache, queue, sessions) from 2 files
//
// or, exit 1, one issue per line on stdout and a count on stderr.
func runValidate(c *cli, args []string) int {
	fs := c.flagSet("validate")
	var lf loadFlags
	lf.register(fs)
	format := fs.String("format", "text", "output `format`: text or json (a JSON array of issues)")
	paths, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if !oneOf(*format, "text", "json") {
		return c.usageError(fs, "--format must be text or json (got %q)", *format)
	}
	if len(paths) == 0 {
		return c.usageError(fs, "missing PATH: name at least one configuration file or directory")
	}

	res, issues := c.load(paths, lf)
	var warnings schema.Issues
	if res != nil {
		warnings = res.Warnings()
		printWarnings(c.stderr, warnings)
	}
	if *format == "json" {
		// Errors and warnings ("severity": "warning") in one array;
		// warnings alone leave the exit code 0.
		all := append(schema.Issues{}, issues...)
		all = append(all, warnings...)
		b, err := json.MarshalIndent(all, "", "  ")
		if err != nil {
			fmt.Fprintf(c.stderr, "%s validate: %v\n", programName, err)
			return exitFailed
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
		if len(issues) > 0 {
			fmt.Fprintf(c.stderr, "invalid configuration: %s\n", plural(len(issues), "issue", "issues"))
			return exitFailed
		}
		return exitOK
	}
	if len(issues) > 0 {
		printIssues(c.stdout, c.stderr, issues)
		return exitFailed
	}
	names := make([]string, 0, len(res.Config.Profiles))
	for n := range res.Config.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	files, err := profiles.ExpandPaths(paths)
	if err != nil { // cannot happen: Load read them
		files = paths
	}
	fmt.Fprintf(c.stdout, "ok: %s (%s) from %s\n",
		plural(len(names), "profile", "profiles"), strings.Join(names, ", "), plural(len(files), "file", "files"))
	return exitOK
}
