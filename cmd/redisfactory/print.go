package main

import (
	"bytes"
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
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
	tree := res.Config.Tree()
	var out []byte
	switch *format {
	case "json":
		b, err := json.MarshalIndent(tree, "", "  ")
		if err != nil {
			fmt.Fprintf(c.stderr, "%s print: %v\n", programName, err)
			return exitFailed
		}
		out = append(b, '\n')
	default:
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(tree); err != nil {
			fmt.Fprintf(c.stderr, "%s print: %v\n", programName, err)
			return exitFailed
		}
		_ = enc.Close()
		out = buf.Bytes()
	}
	_, _ = c.stdout.Write(out)
	return exitOK
}
