// Package configs holds the example configurations, embedded so that
// `redisfactory demo` can run them from anywhere.
package configs

import "embed"

// FS holds every example configuration file.
//
//go:embed *.yaml kubernetes/*.yaml
var FS embed.FS
