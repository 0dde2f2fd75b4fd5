package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/suggest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// checkLine is the outcome of checking one profile, as printed.
type checkLine struct {
	Profile       string `json:"profile"`
	Reachable     bool   `json:"reachable"`
	ServerVersion string `json:"server_version,omitempty"`
	Protocol      int    `json:"protocol,omitempty"`
	RTT           string `json:"rtt,omitempty"`
	RTTNanos      int64  `json:"rtt_ns,omitempty"`
	ErrorClass    string `json:"error_class,omitempty"`
	Error         string `json:"error,omitempty"`
	// Warnings are the profile's security warnings (profiles.Warnings),
	// one line each; they do not make the check fail.
	Warnings []string `json:"warnings,omitempty"`
}

// runCheck builds each profile's client, PINGs its server under the
// profile's own policy and prints one line per profile:
//
//	PROFILE    REACHABLE   VERSION   RESP   RTT     ERROR
//	cache      yes         7.2.4     3      412µs
//	sessions   no          -         -      -       connection: dial tcp: lookup redis.internal.example: no such host
//
// Exit 0 when every profile's server answered, 1 when one did not (or the
// configuration is invalid), 2 on a usage error.
func runCheck(c *cli, args []string) int {
	fs := c.flagSet("check")
	var lf loadFlags
	lf.register(fs)
	format := fs.String("format", "text", "output `format`: text or json (a JSON array, one object per profile)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up on a profile after `D` (each try of its PING is bounded by the profile's timeouts, and tried again as its retry policy says); 0: no bound")
	once := fs.Bool("once", false, "try each PING once, ignoring the profiles' retry policies (quick reachability)")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if !oneOf(*format, "text", "json") {
		return c.usageError(fs, "--format must be text or json (got %q)", *format)
	}
	if *timeout < 0 {
		return c.usageError(fs, "--timeout must not be negative (got %s)", *timeout)
	}
	paths, names := splitPathsProfiles(pos)
	if len(paths) == 0 {
		if len(names) > 0 {
			return c.usageError(fs, "missing PATH: %q is not a file or directory", names[0])
		}
		return c.usageError(fs, "missing PATH: name at least one configuration file or directory")
	}

	res, issues := c.load(paths, lf)
	if len(issues) > 0 {
		if *format == "json" {
			printIssues(c.stderr, c.stderr, issues) // stdout is for the JSON array
		} else {
			printIssues(c.stdout, c.stderr, issues)
		}
		return exitFailed
	}
	all := profileNames(res)
	if len(names) == 0 {
		names = all
	}
	seen := map[string]bool{}
	var selected []string
	for _, n := range names {
		if _, found := res.Config.Profiles[n]; !found {
			c.unknownProfile("check", n, all)
			return exitUsage
		}
		if !seen[n] {
			seen[n] = true
			selected = append(selected, n)
		}
	}
	if len(selected) == 0 {
		fmt.Fprintf(c.stderr, "%s check: the configuration has no profiles\n", programName)
		return exitFailed
	}

	if *once {
		for _, n := range selected {
			p := *res.Config.Profiles[n]
			p.Retry.Retries = 0
			res.Config.Profiles[n] = &p
		}
	}
	lines := checkProfiles(res, selected, *timeout)
	warnings := res.Warnings()
	printWarnings(c.stderr, warnings)
	for i := range lines {
		for _, w := range warnings {
			if strings.HasPrefix(w.Path, "profiles."+lines[i].Profile+".") {
				lines[i].Warnings = append(lines[i].Warnings, w.Error())
			}
		}
	}

	failed := []string{}
	for _, l := range lines {
		if !l.Reachable {
			failed = append(failed, l.Profile)
		}
	}
	if *format == "json" {
		b, err := json.MarshalIndent(lines, "", "  ")
		if err != nil {
			fmt.Fprintf(c.stderr, "%s check: %v\n", programName, err)
			return exitFailed
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
	} else {
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "PROFILE\tREACHABLE\tVERSION\tRESP\tRTT\tERROR")
		for _, l := range lines {
			// What the server or a library said is escaped: it may hold
			// control characters.
			if l.Reachable {
				fmt.Fprintf(tw, "%s\tyes\t%s\t%s\t%s\t\n", l.Profile, schema.EscapeText(dash(l.ServerVersion)), dash(protoString(l.Protocol)), dash(l.RTT))
			} else {
				fmt.Fprintf(tw, "%s\tno\t-\t-\t-\t%s: %s\n", l.Profile, l.ErrorClass, schema.EscapeText(l.Error))
			}
		}
		_ = tw.Flush()
		for _, line := range strings.SplitAfter(buf.String(), "\n") {
			if line != "" {
				fmt.Fprintln(c.stdout, strings.TrimRight(line, " \n"))
			}
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(c.stderr, "check failed: %d of %s unreachable (%s)\n",
			len(failed), plural(len(lines), "profile", "profiles"), strings.Join(failed, ", "))
		return exitFailed
	}
	return exitOK
}

// checkProfiles checks the profiles concurrently, each with its own client
// and under its own policy, and returns the lines in the order of names.
func checkProfiles(res *profiles.Result, names []string, timeout time.Duration) []checkLine {
	rt := runtime.New(runtime.Options{DiscardLogs: true}) // the command prints what matters itself
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	}()
	lines := make([]checkLine, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lines[i] = checkProfile(name, res.Config.Profiles[name], rt, timeout)
		}()
	}
	wg.Wait()
	return lines
}

func checkProfile(name string, p *schema.Profile, rt *runtime.Runtime, timeout time.Duration) checkLine {
	red := profileSecrets(p)
	line := checkLine{Profile: name}
	fail := func(class errclass.Class, err error) checkLine {
		if class == errclass.None {
			class = errclass.Unknown
		}
		line.ErrorClass = string(class)
		line.Error = red.clean(err.Error())
		return line
	}
	client, err := factory.Build(name, p, rt, factory.BuildOptions{})
	if err != nil {
		return fail(errclass.Of(err), err)
	}
	defer client.Close()
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	r := client.Check(ctx)
	if !r.Reachable {
		err := r.Err
		if err == nil {
			err = fmt.Errorf("server did not answer")
		}
		return fail(r.Class, err)
	}
	line.Reachable = true
	line.ServerVersion = red.clean(r.ServerVersion)
	line.Protocol = r.Protocol
	// The first PING paid for the dial and the handshake; time one over
	// the open connection for the round trip proper.
	rtt := r.RTT
	if again, err := client.Probe(ctx, 0); err == nil {
		rtt = again
	}
	line.RTT = roundDuration(rtt).String()
	line.RTTNanos = rtt.Nanoseconds()
	return line
}

// splitPathsProfiles splits the positional arguments of check: the
// trailing ones that are not existing files or directories are profile
// names, the others paths.
func splitPathsProfiles(pos []string) (paths, names []string) {
	i := len(pos)
	for i > 0 {
		if _, err := os.Stat(pos[i-1]); err == nil {
			break
		}
		i--
	}
	return pos[:i], pos[i:]
}

func profileNames(res *profiles.Result) []string {
	names := make([]string, 0, len(res.Config.Profiles))
	for n := range res.Config.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unknownProfile reports a profile name the configuration does not have.
func (c *cli) unknownProfile(cmd, name string, all []string) {
	msg := fmt.Sprintf("%s %s: no profile %q", programName, cmd, name)
	if s := suggest.Closest(name, all); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	fmt.Fprintf(c.stderr, "%s; the profiles are: %s\n", msg, strings.Join(all, ", "))
}

// redactor replaces a profile's secrets in text meant for output. go-redis's
// errors name addresses but never passwords; this is a second line of
// defence, for whatever text a server or a library may echo.
type redactor []string

// profileSecrets collects the secret values of a profile: its passwords and
// the password of its URL, each also in its URL-escaped forms.
func profileSecrets(p *schema.Profile) redactor {
	var r redactor
	add := func(s string) {
		if s == "" {
			return
		}
		for _, v := range []string{s, url.QueryEscape(s), url.PathEscape(s), url.UserPassword("", s).String()[1:]} {
			if v != "" && !contains(r, v) {
				r = append(r, v)
			}
		}
	}
	add(p.Password.Reveal())
	add(p.Sentinel.Password.Reveal())
	if raw := p.URL.Reveal(); raw != "" {
		if u, err := url.Parse(raw); err == nil {
			if pw, ok := u.User.Password(); ok {
				add(pw)
			}
			for k, vs := range u.Query() {
				if strings.Contains(strings.ToLower(k), "pass") {
					for _, v := range vs {
						add(v)
					}
				}
			}
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	sort.Slice(r, func(i, j int) bool { return len(r[i]) > len(r[j]) })
	return r
}

// clean returns s with every secret of the profile and every URL
// credential (schema.RedactText) replaced by <redacted>, and line breaks
// turned into spaces, so that one result stays on one line.
func (r redactor) clean(s string) string {
	for _, sec := range r {
		s = strings.ReplaceAll(s, sec, schema.Redacted)
	}
	return strings.Join(strings.Fields(schema.RedactText(s)), " ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// roundDuration keeps about three significant digits.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

func protoString(p int) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(p)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
