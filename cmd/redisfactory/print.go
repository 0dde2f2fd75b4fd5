package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/schema"
)

// runPrint prints the effective configuration, after built-in defaults, the
// defaults block, extends chains, later files and the environment, with
// secrets redacted (schema.Config.Tree).
func runPrint(c *cli, args []string) int {
	fs := c.flagSet("print")
	var lf loadFlags
	lf.register(fs)
	format := fs.String("format", "yaml", "output `format`: yaml or json")
	paths, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if !oneOf(*format, "yaml", "json") {
		return c.usageError(fs, "--format must be yaml or json (got %q)", *format)
	}
	if len(paths) == 0 {
		return c.usageError(fs, "missing PATH: name at least one configuration file or directory")
	}
	res, issues := c.load(paths, lf)
	if len(issues) > 0 {
		// The issues go to stderr: stdout is for the configuration.
		printIssues(c.stderr, c.stderr, issues)
		return exitFailed
	}
	w := bufio.NewWriter(c.stdout)
	var err error
	switch *format {
	case "json":
		var b []byte
		if b, err = json.MarshalIndent(res.Config.Tree(), "", "  "); err == nil {
			_, err = w.Write(append(b, '\n'))
		}
	default:
		err = printYAML(w, res.Config)
	}
	if err == nil {
		err = w.Flush() // a closed pipe, a full disk: not a success
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "%s print: %v\n", programName, err)
		return exitFailed
	}
	return exitOK
}

// printYAML writes cfg.Tree() as YAML one profile at a time, which is
// what encoding the whole tree at once prints: yaml.v3's encoder holds
// about 70 KB per profile until it is done, so 10,000 profiles (the
// limit) peaked at 860 MB.
func printYAML(w io.Writer, cfg *schema.Config) error {
	if len(cfg.Profiles) == 0 {
		_, err := io.WriteString(w, "profiles: {}\n")
		return err
	}
	if _, err := io.WriteString(w, "profiles:\n"); err != nil {
		return err
	}
	names, err := yamlKeyOrder(cfg.Profiles)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, name := range names {
		buf.Reset()
		one := schema.Config{Profiles: map[string]*schema.Profile{name: cfg.Profiles[name]}}
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(one.Tree()["profiles"]); err != nil {
			return err
		}
		_ = enc.Close()
		// Each line one level deeper, under "profiles:"; an empty line (in
		// a literal block) stays empty, as the encoder writes it.
		for line := range bytes.Lines(buf.Bytes()) {
			if len(line) > 1 {
				if _, err := w.Write([]byte("  ")); err != nil {
					return err
				}
			}
			if _, err := w.Write(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlKeyOrder returns m's keys in the order yaml.v3 writes a map's keys
// (numbers within names compare as numbers: p9 before p10), which is not
// the order of bytes.
func yamlKeyOrder[V any](m map[string]V) ([]string, error) {
	set := make(map[string]bool, len(m))
	for k := range m {
		set[k] = true
	}
	var n yaml.Node
	if err := n.Encode(set); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(m))
	for i := 0; i < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	if len(keys) != len(m) {
		return nil, fmt.Errorf("yaml ordered %d of %d profile names", len(keys), len(m))
	}
	return keys, nil
}
