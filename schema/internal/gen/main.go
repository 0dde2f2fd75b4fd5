// Command gen writes the JSON Schema of the redisfactory configuration file
// format. It runs from go generate in package schema:
//
//	go generate ./schema
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/redisfactory/redisfactory/schema"
)

func main() {
	out := flag.String("o", "", "output file (default: standard output)")
	flag.Parse()
	b, err := schema.JSONSchema()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}
