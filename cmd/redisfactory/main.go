// Command redisfactory checks, prints and explains redisfactory
// configurations: YAML profiles for go-redis clients plus the environment
// variables that override them.
//
// Usage:
//
//	redisfactory <command> [flags] [arguments]
//
// Run "redisfactory help" for the list of commands. Exit codes: 0 success,
// 1 an invalid configuration or a failed check or load, 2 a usage error
// (unknown command, flag or profile, missing argument).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/redisfactory/redisfactory/internal/suggest"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the configuration is invalid or a check failed
	exitUsage   = 2 // unknown command, flag or profile; missing argument
	programName = "redisfactory"
)

// command is one subcommand. Adding a subcommand is one entry in commands.
type command struct {
	name     string
	synopsis string // arguments, after "redisfactory NAME"
	summary  string // one line for the command list
	run      func(c *cli, args []string) int
}

// commands lists the subcommands in the order help shows them. It is filled
// in init because the commands' help refers back to this table.
var commands []command

func init() {
	commands = []command{
		{"demo", "[--embedded]", "the zero-setup tour: a server, the example profiles, a reload applied and an invalid edit rejected", runDemo},
		{"validate", "[--env-prefix P] [--format text|json] PATH...", "check configuration files and report every issue", runValidate},
		{"print", "[--env-prefix P] [--format yaml|json] PATH...", "print the effective configuration (secrets redacted)", runPrint},
		{"explain", "[--env-prefix P] PATH... PROFILE", "show every key of a profile with its value and where it came from", runExplain},
		{"schema", "", "print the JSON Schema of the configuration file format", runSchema},
		{"check", "[--env-prefix P] [--format text|json] [--timeout D] [--once] PATH... [PROFILE...]", "connect to each profile's server under its policy and report version, RESP and round trip", runCheck},
		{"watch", "[--env-prefix P] [--debounce D] [--probe D] [--stats D] [--sighup=false] [--metrics-addr HOST:PORT] [--exit-after D] PATH...", "build every profile, apply each change of the files (or SIGHUP) and print one line per event", runWatch},
		{"rehearse", "--upstream ADDR [--listen ADDR] [--peer-listen ADDR --peer-upstream ADDR] [--max-conns N] [--max-args N] [--idle-timeout D] [--no-auto-cut]", "run a maintenance proxy and send the MOVING/MIGRATING/FAILING_OVER notifications typed on stdin to the clients", runRehearse},
		{"load", "[--env-prefix P] --profile NAME [--duration D] [--concurrency N] [--ratio R:W] [--keys K] [--verify] [--watch] [--metrics-addr HOST:PORT] [--format text|json] PATH...", "drive a GET/SET workload through a profile's client and report failures, retries and latency", runLoad},
	}
}

// cli is what every subcommand runs with.
type cli struct {
	stdout, stderr io.Writer
	environ        []string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, os.Environ()))
}

// run executes the command line args (without the program name) and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer, environ []string) int {
	c := &cli{stdout: stdout, stderr: stderr, environ: environ}
	if len(args) == 0 {
		c.usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			if cmd := lookup(rest[0]); cmd != nil {
				// "help CMD" is "CMD -h".
				return cmd.run(c, []string{"-h"})
			}
			c.unknown(rest[0])
			return exitUsage
		}
		c.usage(stdout)
		return exitOK
	}
	cmd := lookup(name)
	if cmd == nil {
		c.unknown(name)
		return exitUsage
	}
	return cmd.run(c, rest)
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func (c *cli) unknown(name string) {
	fmt.Fprintf(c.stderr, "%s: unknown command %q", programName, name)
	if s := suggest.Closest(name, commandNames()); s != "" {
		fmt.Fprintf(c.stderr, " (did you mean %q?)", s)
	}
	fmt.Fprintf(c.stderr, "\nRun '%s help' for usage.\n", programName)
}

func commandNames() []string {
	out := make([]string, len(commands))
	for i, cmd := range commands {
		out[i] = cmd.name
	}
	return out
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintf(w, `%[1]s builds go-redis clients from declarative YAML profiles; this tool
checks, prints and explains those configurations.

Usage:

	%[1]s <command> [flags] [arguments]

Commands:

`, programName)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, cmd := range commands {
		fmt.Fprintf(tw, "\t%s\t%s\n", cmd.name, cmd.summary)
	}
	fmt.Fprintf(tw, "\t%s\t%s\n", "help", "show this text, or 'help COMMAND' for a command's flags")
	_ = tw.Flush()
	fmt.Fprintf(w, `
PATH is a YAML file or a directory (its *.yaml and *.yml files, in name order);
later paths win over earlier ones. With --env-prefix P, variables named
P__PROFILES__<NAME>__<KEY> override the files (double underscore = nesting).
Every command that reads PATHs also takes the limits of what it reads
(--max-file-size, --max-total-size, --max-referenced-file-size, --max-files,
--max-depth, --max-nodes, --max-alias-nodes, --max-profiles; see 'help COMMAND').

Exit codes: 0 ok; 1 invalid configuration, or a check, load or reload that
failed; 2 usage error (unknown command, flag or profile, missing argument).
`)
}

// flagSet returns a flag set for the named subcommand that returns errors
// instead of exiting. Its usage text goes to stdout when it was asked for
// (-h, "help CMD": so that `redisfactory help load | less` works) and to
// stderr after an error.
func (c *cli) flagSet(cmd string) *flag.FlagSet {
	fs := flag.NewFlagSet(programName+" "+cmd, flag.ContinueOnError)
	errOut := &errorWriter{w: c.stderr}
	fs.SetOutput(errOut)
	fs.Usage = func() {
		w := c.stdout
		if errOut.written {
			w = c.stderr
		}
		command := lookup(cmd)
		fmt.Fprintf(w, "Usage: %s %s %s\n\n%s.\n", programName, cmd, command.synopsis, upperFirst(command.summary))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
			fs.SetOutput(errOut)
		}
	}
	return fs
}

// errorWriter is a flag set's output: the flag package writes an error
// there before it prints the usage, so whether anything was written tells
// a usage error from a request for help.
type errorWriter struct {
	w       io.Writer
	written bool
}

func (e *errorWriter) Write(p []byte) (int, error) {
	e.written = true
	return e.w.Write(p)
}

// parse parses flags that may come before, between or after the positional
// arguments ("validate a.yaml --format json" works); "--" ends the flags.
// It returns the positional arguments, or ok false and the exit code: 0 for
// -h, 2 for a bad flag.
func parse(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError reports a usage error of a subcommand and returns exit code 2.
func (c *cli) usageError(fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(fs.Output(), "%s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}

// oneOf checks the value of an enumerated flag.
func oneOf(v string, allowed ...string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
