package schema

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/errclass"
)

// DefaultsYAML is the text of the built-in defaults: the one place where they
// are written. Package profiles loads it as the lowest-precedence source.
//
//go:embed defaults.yaml
var DefaultsYAML []byte

// DefaultsTree returns the built-in defaults as a fresh nested map.
func DefaultsTree() map[string]any {
	var m map[string]any
	if err := yaml.Unmarshal(DefaultsYAML, &m); err != nil {
		panic(fmt.Sprintf("schema: built-in defaults do not parse: %v", err))
	}
	return m
}

// DefaultAddr is the address of a standalone profile that names none.
const DefaultAddr = "localhost:6379"

// DefaultRetryOn returns the error classes a retry policy acts on when its
// profile does not list any: connection and timeout, and in cluster mode also
// cluster_down (as redis-py's cluster client does).
func DefaultRetryOn(m Mode) []errclass.Class {
	if m == Cluster {
		return []errclass.Class{errclass.Connection, errclass.Timeout, errclass.ClusterDown}
	}
	return []errclass.Class{errclass.Connection, errclass.Timeout}
}

// DefaultCacheCommands is the allow list of commands answered from the
// client-side cache when a profile does not list its own.
var DefaultCacheCommands = []string{
	"GET", "MGET", "GETRANGE", "STRLEN", "EXISTS",
	"HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "HKEYS", "HVALS", "HSTRLEN",
	"LRANGE", "LINDEX", "LLEN",
	"SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD",
	"ZRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZRANK", "ZREVRANK", "ZCOUNT",
}

// cacheableCommands are the read-only commands whose reply depends only on
// the keys they name, so a server invalidation of those keys is enough to
// keep a cached reply correct. cache.commands may list only these.
var cacheableCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range append(slices.Clone(DefaultCacheCommands),
		"GETBIT", "BITCOUNT", "BITPOS", "BITFIELD_RO", "SUBSTR",
		"HRANDFIELD", "LPOS", "SRANDMEMBER", "SINTER", "SUNION", "SDIFF", "SINTERCARD",
		"ZRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX",
		"ZLEXCOUNT", "ZRANDMEMBER", "ZINTER", "ZUNION", "ZDIFF",
		"GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH", "XLEN", "XRANGE", "XREVRANGE",
		"TYPE", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "DUMP", "OBJECT",
		"JSON.GET", "JSON.MGET", "JSON.TYPE", "JSON.STRLEN", "JSON.ARRLEN", "JSON.OBJKEYS", "JSON.OBJLEN",
		"PFCOUNT", "LCS", "SORT_RO",
	) {
		m[c] = true
	}
	return m
}()

// IsCacheableCommand reports whether cmd (any case) may be answered from the
// client-side cache.
func IsCacheableCommand(cmd string) bool { return cacheableCommands[strings.ToUpper(cmd)] }

// Finalize fills the defaults that depend on other keys, once every source
// has been merged into p: the retry classes of the profile's mode, the cache
// allow list (when the cache is on), the standalone address. It also normalises command names to
// upper case. It is idempotent.
func Finalize(p *Profile) {
	if len(p.Retry.On) == 0 {
		p.Retry.On = DefaultRetryOn(p.Mode)
	}
	if len(p.Cache.Commands) == 0 && p.Cache.Enabled {
		p.Cache.Commands = slices.Clone(DefaultCacheCommands)
	}
	for i, c := range p.Cache.Commands {
		p.Cache.Commands[i] = strings.ToUpper(c)
	}
	if p.Mode == Standalone && p.Addr == "" && p.URL == "" {
		p.Addr = DefaultAddr
	}
}

// RetryClasses returns the classes the profile's retry policy acts on: on
// (or the mode's default list) plus also_on, without duplicates.
func (p *Profile) RetryClasses() []errclass.Class {
	base := p.Retry.On
	if len(base) == 0 {
		base = DefaultRetryOn(p.Mode)
	}
	out := slices.Clone(base)
	for _, c := range p.Retry.AlsoOn {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}
