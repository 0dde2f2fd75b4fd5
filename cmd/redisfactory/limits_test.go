package main

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

// Every --max-* flag, and the matching profiles.Options.Limits field,
// changes the outcome: a configuration the defaults accept is refused
// under a lower limit, with an error that names the file (and the line,
// where there is one) and the limit; a limit of -1 lifts it.
func TestLimitsChangeTheOutcome(t *testing.T) {
	dir := t.TempDir()
	// Nesting: profiles (1) > a (2) > retry (3) > retries (4).
	deep := write(t, dir, "deep.yaml", "profiles:\n  a:\n    addr: 127.0.0.1:1\n    retry:\n      retries: 1\n")
	two := write(t, dir, "two.yaml", "profiles:\n  a:\n    addr: 127.0.0.1:1\n  b:\n    addr: 127.0.0.1:1\n")
	alias := write(t, dir, "alias.yaml", "x-base: &base {addr: \"127.0.0.1:1\", db: 1}\nprofiles:\n  a: *base\n")
	pw := write(t, dir, "secret/pw", "0123456789\n")
	withFile := write(t, dir, "file.yaml", "profiles:\n  a:\n    addr: 127.0.0.1:1\n    password_file: "+pw+"\n")
	confDir := filepath.Join(dir, "conf.d")
	write(t, confDir, "1.yaml", "profiles:\n  a:\n    addr: 127.0.0.1:1\n")
	write(t, confDir, "2.yaml", "profiles:\n  b:\n    addr: 127.0.0.1:1\n")

	for _, c := range []struct {
		flag, value string
		limits      profiles.Limits
		lifted      profiles.Limits
		path        string
		want        string
	}{
		{"--max-depth", "3", profiles.Limits{MaxDepth: 3}, profiles.Limits{MaxDepth: -1}, deep,
			"deep.yaml:5: nesting (aliases expanded) is deeper than the limit of 3 levels (limit max_depth)"},
		{"--max-file-size", "40", profiles.Limits{MaxFileSize: 40}, profiles.Limits{MaxFileSize: -1}, deep,
			"deep.yaml: the file is larger than the limit of 40 bytes (limit max_file_size)"},
		{"--max-total-size", "40", profiles.Limits{MaxTotalSize: 40}, profiles.Limits{MaxTotalSize: -1}, confDir,
			"the configuration files together are larger than the limit of 40 bytes (limit max_total_size)"},
		{"--max-files", "1", profiles.Limits{MaxFiles: 1}, profiles.Limits{MaxFiles: -1}, confDir,
			"conf.d: the paths hold more configuration files than the limit of 1 (limit max_files)"},
		{"--max-nodes", "5", profiles.Limits{MaxNodes: 5}, profiles.Limits{MaxNodes: -1}, deep,
			"deep.yaml:3: the configuration has more YAML nodes (keys, values, list items; aliases expanded) than the limit of 5 (limit max_nodes)"},
		{"--max-alias-nodes", "2", profiles.Limits{MaxAliasNodes: 2}, profiles.Limits{MaxAliasNodes: -1}, alias,
			"alias.yaml:3: aliases expand to more nodes than the limit of 2 (limit max_alias_nodes)"},
		{"--max-profiles", "1", profiles.Limits{MaxProfiles: 1}, profiles.Limits{MaxProfiles: -1}, two,
			"two.yaml:1: profiles: 2 profiles are more than the limit of 1 (limit max_profiles)"},
		{"--max-referenced-file-size", "5", profiles.Limits{MaxReferencedFileSize: 5}, profiles.Limits{MaxReferencedFileSize: -1}, withFile,
			"file.yaml:4: profiles.a.password_file: cannot be read: the file is larger than the limit of 5 bytes (limit max_referenced_file_size)"},
	} {
		t.Run(c.flag, func(t *testing.T) {
			// The defaults accept it.
			r := runCLI(t, nil, "validate", c.path)
			require.Equal(t, exitOK, r.code, "%s", r)
			// The lower limit refuses it, on every command that loads.
			for _, cmd := range []string{"validate", "print", "check"} {
				r = runCLI(t, nil, cmd, c.flag, c.value, c.path)
				require.Equal(t, exitFailed, r.code, "%s %s %s: %s", cmd, c.flag, c.value, r)
				assert.Contains(t, r.stdout+r.stderr, c.want, "%s %s %s", cmd, c.flag, c.value)
			}
			// -1 lifts it.
			r = runCLI(t, nil, "validate", c.flag, "-1", c.path)
			require.Equal(t, exitOK, r.code, "%s -1: %s", c.flag, r)

			// The same through the library.
			_, err := profiles.Load(profiles.Options{Paths: []string{c.path}})
			require.NoError(t, err)
			_, err = profiles.Load(profiles.Options{Paths: []string{c.path}, Limits: c.limits})
			require.ErrorContains(t, err, c.want)
			_, err = profiles.Load(profiles.Options{Paths: []string{c.path}, Limits: c.lifted})
			require.NoError(t, err)
		})
	}
}
