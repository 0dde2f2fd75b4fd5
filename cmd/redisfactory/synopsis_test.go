package main

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// definedFlags returns the flags a subcommand defines, read from its own
// "CMD -h" output (the flag package's PrintDefaults lines "  -name ...").
func definedFlags(t *testing.T, name string) []string {
	t.Helper()
	r := runCLI(t, nil, name, "-h")
	require.Equal(t, exitOK, r.code, r)
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z0-9-]*)`).FindAllStringSubmatch(r.stdout, -1) {
		out = append(out, m[1])
	}
	return out
}

// limitFlags are the flags every command that loads a configuration takes
// (loadFlags): the synopses leave them out; the usage text and the README
// name them once for all commands.
func limitFlags() map[string]bool {
	fs := flag.NewFlagSet("limits", flag.ContinueOnError)
	var lf loadFlags
	lf.register(fs)
	out := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "env-prefix" {
			out[f.Name] = true
		}
	})
	return out
}

// mentions reports whether text names the flag --name (not a longer flag
// that starts with it).
func mentions(text, name string) bool {
	return regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `([^a-z0-9-]|$)`).MatchString(text)
}

// readmeSynopses returns, per command, the synopsis lines of the README's
// CLI section ("redisfactory NAME ..." and its indented continuation lines).
func readmeSynopses(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "\n## The CLI\n")
	require.GreaterOrEqual(t, i, 0, "README.md has a section '## The CLI'")
	s = s[i:]
	start := strings.Index(s, "\n```\n")
	require.GreaterOrEqual(t, start, 0)
	s = s[start+5:]
	s = s[:strings.Index(s, "\n```")]
	out := map[string]string{}
	cur := ""
	for _, line := range strings.Split(s, "\n") {
		if m := regexp.MustCompile(`^redisfactory ([a-z]+)\b(.*)$`).FindStringSubmatch(line); m != nil {
			cur = m[1]
			out[cur] += m[2]
			continue
		}
		require.True(t, strings.HasPrefix(line, " ") && cur != "", "README.md synopsis: unexpected line %q", line)
		out[cur] += " " + strings.TrimSpace(line)
	}
	return out
}

// Every flag a subcommand defines is in its synopsis, in the command's
// usage (main.go) and in the README's; a synopsis names no flag the
// command lacks; and a flag with a default is shown as optional.
func TestSynopsesListEveryFlag(t *testing.T) {
	limits := limitFlags()
	readme := readmeSynopses(t)
	var usage strings.Builder
	(&cli{}).usage(&usage)
	for name := range limits {
		assert.True(t, mentions(usage.String(), name), "the usage text does not name the limit flag --%s", name)
	}
	for _, cmd := range commands {
		t.Run(cmd.name, func(t *testing.T) {
			rd, ok := readme[cmd.name]
			require.True(t, ok, "README.md's CLI synopsis has no line for %s", cmd.name)
			defined := map[string]bool{}
			for _, f := range definedFlags(t, cmd.name) {
				defined[f] = true
				if limits[f] {
					continue
				}
				assert.True(t, mentions(cmd.synopsis, f), "main.go's synopsis of %s lacks --%s: %q", cmd.name, f, cmd.synopsis)
				assert.True(t, mentions(rd, f), "README.md's synopsis of %s lacks --%s: %q", cmd.name, f, rd)
			}
			for _, syn := range []string{cmd.synopsis, rd} {
				for _, m := range regexp.MustCompile(`--([a-z][a-z0-9-]*)`).FindAllStringSubmatch(syn, -1) {
					assert.True(t, defined[m[1]], "the synopsis of %s names --%s, which it does not define: %q", cmd.name, m[1], syn)
				}
			}
			// A flag shown outside brackets is required: the command must
			// refuse to run without it. Only --profile (load) and
			// --upstream (rehearse) are.
			for _, syn := range []string{cmd.synopsis, rd} {
				depth := 0
				for i := 0; i < len(syn); i++ {
					switch syn[i] {
					case '[':
						depth++
					case ']':
						depth--
					case '-':
						if depth == 0 && strings.HasPrefix(syn[i:], "--") {
							f := regexp.MustCompile(`^--([a-z0-9-]+)`).FindStringSubmatch(syn[i:])[1]
							assert.Contains(t, []string{"profile", "upstream"}, f, "the synopsis of %s shows --%s as required", cmd.name, f)
							i += len(f) + 1
						}
					}
				}
			}
		})
	}
	for name := range readme {
		if name != "help" {
			assert.NotNil(t, lookup(name), "README.md shows a synopsis of an unknown command %q", name)
		}
	}
}

// The required flags really are: without them the command is a usage error.
func TestRequiredFlagsAreRequired(t *testing.T) {
	r := runCLI(t, nil, "rehearse")
	assert.Equal(t, exitUsage, r.code, r)
	assert.Contains(t, r.stderr, "missing --upstream")
	r = runCLI(t, nil, "load", "redis.yaml")
	assert.Equal(t, exitUsage, r.code, r)
	assert.Contains(t, r.stderr, "--profile")
}
