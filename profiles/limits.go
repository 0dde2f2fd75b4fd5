package profiles

import (
	"fmt"

	"github.com/redisfactory/redisfactory/internal/safefile"
)

// Limits bound what one Load reads, so that a hostile or broken file (an
// alias bomb, a huge or endless file, a FIFO) fails with a clear error
// instead of exhausting memory or time. A zero field means its default
// (DefaultLimits); a negative one turns that limit off.
//
// Every limit's error names the file (and line where there is one) and the
// limit, e.g. "redis.yaml:3: nesting is deeper than the limit of 32 levels
// (limit max_depth)".
type Limits struct {
	// MaxFileSize is the largest configuration file (or Source) read, in
	// bytes. Default 1 MiB, the size limit of a Kubernetes ConfigMap;
	// parsing YAML can take about 100 times a file's size in memory.
	MaxFileSize int64
	// MaxTotalSize is the largest total of all configuration files of one
	// load, in bytes. Default 8 MiB.
	MaxTotalSize int64
	// MaxReferencedFileSize is the largest file a key points to
	// (password_file, tls.ca_file, tls.cert_file, tls.key_file), in bytes.
	// Default 1 MiB (a system CA bundle is about 200 KiB).
	MaxReferencedFileSize int64
	// MaxFiles is the most configuration files one load reads (the files
	// given plus the *.yaml / *.yml files of the directories given).
	// Default 10,000.
	MaxFiles int
	// MaxDepth is the deepest nesting of maps and lists in a file,
	// counted after aliases are expanded. The format needs 5. Default 32.
	MaxDepth int
	// MaxNodes is the most YAML nodes (keys, values, list items) of all
	// files together, counted after aliases are expanded. Default 1,000,000.
	MaxNodes int
	// MaxAliasNodes is the most YAML nodes that aliases (*name) of one file
	// may expand to; it stops alias bombs ("billion laughs"), where a few
	// hundred bytes expand to billions of nodes. Default 100,000.
	MaxAliasNodes int
	// MaxProfiles is the most profiles a configuration may define.
	// Default 10,000.
	MaxProfiles int
}

// DefaultLimits returns the limits a zero Limits stands for.
func DefaultLimits() Limits {
	return Limits{
		MaxFileSize:           1 << 20,
		MaxTotalSize:          8 << 20,
		MaxReferencedFileSize: 1 << 20,
		MaxFiles:              10_000,
		MaxDepth:              32,
		MaxNodes:              1_000_000,
		MaxAliasNodes:         100_000,
		MaxProfiles:           10_000,
	}
}

// effective fills zero fields with their defaults and turns negative ones
// (no limit) into the largest value.
func (l Limits) effective() Limits {
	d := DefaultLimits()
	size := func(v, def int64) int64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 1<<63 - 2 // the reader reads limit+1 bytes
		}
		return v
	}
	count := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return int(^uint(0) >> 1)
		}
		return v
	}
	return Limits{
		MaxFileSize:           size(l.MaxFileSize, d.MaxFileSize),
		MaxTotalSize:          size(l.MaxTotalSize, d.MaxTotalSize),
		MaxReferencedFileSize: size(l.MaxReferencedFileSize, d.MaxReferencedFileSize),
		MaxFiles:              count(l.MaxFiles, d.MaxFiles),
		MaxDepth:              count(l.MaxDepth, d.MaxDepth),
		MaxNodes:              count(l.MaxNodes, d.MaxNodes),
		MaxAliasNodes:         count(l.MaxAliasNodes, d.MaxAliasNodes),
		MaxProfiles:           count(l.MaxProfiles, d.MaxProfiles),
	}
}

// limitMsg renders the tail every limit error ends with.
func limitMsg(what string, limit any, name string) string {
	return fmt.Sprintf("%s the limit of %v (limit %s)", what, limit, name)
}

// sizeText renders a byte limit.
func sizeText(n int64) string { return safefile.Size(n) }
