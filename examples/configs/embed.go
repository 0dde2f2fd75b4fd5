// Package configs holds the example configurations, embedded so that
// `redisfactory demo` can run them from anywhere.
package configs

import "embed"

// FS holds every example configuration, one directory each
// (webapp/redis.yaml, sentinel/redis.yaml, …).
//
//go:embed */*.yaml
var FS embed.FS
