package main

import (
	"fmt"

	"github.com/redisfactory/redisfactory/schema"
)

// runSchema prints the JSON Schema of the configuration file format, the
// same document as schema/redisfactory.schema.json.
func runSchema(c *cli, args []string) int {
	fs := c.flagSet("schema")
	pos, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return c.usageError(fs, "takes no arguments (got %q)", pos[0])
	}
	b, err := schema.JSONSchema()
	if err != nil {
		fmt.Fprintf(c.stderr, "%s schema: %v\n", programName, err)
		return exitFailed
	}
	_, _ = c.stdout.Write(b)
	return exitOK
}
