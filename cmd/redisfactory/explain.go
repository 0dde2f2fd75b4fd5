package main

import (
	"bytes"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/redisfactory/redisfactory/schema"
)

// runExplain prints every effective key of one profile with its value and
// the source that set it:
//
//	KEY                 VALUE                         ORIGIN
//	addr                redis.internal.example:6379   redis.yaml:3 (via defaults)
//	retry.backoff.cap   1s                            built-in default
//	timeouts.socket     5s                            env APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET
//
// The last argument is the profile; the others are the paths.
func runExplain(c *cli, args []string) int {
	fs := c.flagSet("explain")
	var lf loadFlags
	lf.register(fs)
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch len(pos) {
	case 0:
		return c.usageError(fs, "missing PATH and PROFILE")
	case 1:
		return c.usageError(fs, "missing PROFILE (the last argument) or PATH: name the configuration, then the profile")
	}
	paths, profile := pos[:len(pos)-1], pos[len(pos)-1]
	res, issues := c.load(paths, lf)
	if len(issues) > 0 {
		printIssues(c.stderr, c.stderr, issues)
		return exitFailed
	}
	if _, found := res.Config.Profiles[profile]; !found {
		c.unknownProfile("explain", profile, profileNames(res))
		return exitUsage
	}
	keys, err := res.Explain(profile)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s explain: %v\n", programName, err)
		return exitFailed
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVALUE\tORIGIN")
	for _, k := range keys {
		v := k.Value
		if v == "" {
			v = `""`
		}
		// Values and sources are the user's text: escaped, so that a
		// control character can neither reach the terminal nor start a line.
		lines := wrapList(schema.EscapeText(v), maxValueWidth)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", schema.EscapeText(k.Path), lines[0], schema.EscapeText(k.Origin.String()))
		for _, l := range lines[1:] {
			fmt.Fprintf(tw, "\t%s\t\n", l)
		}
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(c.stderr, "%s explain: %v\n", programName, err)
		return exitFailed
	}
	// The continuation lines of a wrapped value end in padding.
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if line == "" {
			continue
		}
		fmt.Fprintln(c.stdout, strings.TrimRight(line, " \n"))
	}
	return exitOK
}

// maxValueWidth is the width beyond which a list value is wrapped over
// several lines, so that one long list (cache.commands) does not push the
// origin column of every row off the screen.
const maxValueWidth = 48

// wrapList splits a long "[a, b, c]" value at its commas into lines of at
// most width characters (a single longer item stays whole). Other values are
// returned as they are.
func wrapList(v string, width int) []string {
	if len(v) <= width || !strings.HasPrefix(v, "[") || !strings.HasSuffix(v, "]") {
		return []string{v}
	}
	items := strings.Split(v, ", ")
	var lines []string
	cur := ""
	for i, it := range items {
		if i < len(items)-1 {
			it += ","
		}
		switch {
		case cur == "":
			cur = it
		case len(cur)+1+len(it) <= width:
			cur += " " + it
		default:
			lines = append(lines, cur)
			cur = it
		}
	}
	return append(lines, cur)
}
