package cache

import "strings"

// keyRule says where a command's keys are.
type keyRule uint8

const (
	oneKey     keyRule = iota // args[1]
	allKeys                   // args[1:]
	numKeys                   // args[1] = n, keys args[2:2+n]
	twoKeys                   // args[1:3]
	allButLast                // args[1:len-1] (JSON.MGET key… path)
)

type cmdSpec struct {
	rule keyRule
	// refuse, if set, reports argument lists that must not be cached
	// (SORT_RO with BY or GET reads other keys).
	refuse func(args []any) bool
}

var specs = func() map[string]*cmdSpec {
	m := map[string]*cmdSpec{}
	add := func(r keyRule, names ...string) {
		for _, n := range names {
			m[strings.ToLower(n)] = &cmdSpec{rule: r}
		}
	}
	add(oneKey, "GET", "GETRANGE", "STRLEN", "SUBSTR", "GETBIT", "BITCOUNT", "BITPOS", "BITFIELD_RO",
		"HGET", "HMGET", "HGETALL", "HEXISTS", "HLEN", "HKEYS", "HVALS", "HSTRLEN", "HRANDFIELD",
		"LRANGE", "LINDEX", "LLEN", "LPOS",
		"SMEMBERS", "SISMEMBER", "SMISMEMBER", "SCARD", "SRANDMEMBER",
		"ZRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZRANK", "ZREVRANK", "ZCOUNT", "ZRANGEBYSCORE",
		"ZREVRANGE", "ZREVRANGEBYSCORE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZRANDMEMBER",
		"GEOPOS", "GEODIST", "GEOHASH", "GEOSEARCH", "XLEN", "XRANGE", "XREVRANGE",
		"TYPE", "TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME", "DUMP",
		"JSON.GET", "JSON.TYPE", "JSON.STRLEN", "JSON.ARRLEN", "JSON.OBJKEYS", "JSON.OBJLEN")
	add(allKeys, "MGET", "EXISTS", "SINTER", "SUNION", "SDIFF", "PFCOUNT")
	add(numKeys, "SINTERCARD", "ZINTER", "ZUNION", "ZDIFF")
	add(twoKeys, "LCS")
	add(allButLast, "JSON.MGET")
	m["sort_ro"] = &cmdSpec{rule: oneKey, refuse: func(args []any) bool {
		for _, a := range args[2:] {
			if s, ok := a.(string); ok && (strings.EqualFold(s, "BY") || strings.EqualFold(s, "GET")) {
				return true
			}
		}
		return false
	}}
	return m
}()

// keyRange returns the indexes [from, to) of the keys in args, or ok false.
func (s *cmdSpec) keyRange(args []any) (from, to int, ok bool) {
	switch s.rule {
	case oneKey:
		from, to = 1, 2
	case allKeys:
		from, to = 1, len(args)
	case twoKeys:
		from, to = 1, 3
	case allButLast:
		from, to = 1, len(args)-1
	case numKeys:
		if len(args) < 3 {
			return 0, 0, false
		}
		n, ok := intArg(args[1])
		if !ok || n < 1 {
			return 0, 0, false
		}
		from, to = 2, 2+int(n)
	}
	if to > len(args) || from >= to {
		return 0, 0, false
	}
	if s.refuse != nil && s.refuse(args) {
		return 0, 0, false
	}
	return from, to, true
}

func intArg(a any) (int64, bool) {
	switch v := a.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case uint:
		return int64(v), true
	case uint64:
		return int64(v), true
	case string:
		var n int64
		if v == "" {
			return 0, false
		}
		for _, ch := range []byte(v) {
			if ch < '0' || ch > '9' {
				return 0, false
			}
			n = n*10 + int64(ch-'0')
		}
		return n, true
	}
	return 0, false
}

// noKeyCommands name no keys, or only keys they do not change: they do not
// invalidate what they name. Every command with a spec is read-only and
// is added at init, so a read outside a cache's allow list does not drop
// entries.
var noKeyCommands = map[string]bool{
	"ping": true, "echo": true, "info": true, "client": true, "config": true, "hello": true,
	"auth": true, "select": true, "command": true, "time": true, "dbsize": true, "scan": true,
	"cluster": true, "readonly": true, "readwrite": true, "role": true, "memory": true,
	"slowlog": true, "latency": true, "lastsave": true, "quit": true, "wait": true,
	"publish": true, "spublish": true, "subscribe": true, "psubscribe": true, "ssubscribe": true,
	"unsubscribe": true, "punsubscribe": true, "sunsubscribe": true, "pubsub": true,
	"script": true, "function": true, "acl": true, "debug": true, "watch": true, "unwatch": true,
	"multi": true, "exec": true, "discard": true, "keys": true, "randomkey": true,
}

// allowList is a cache's allow list as an open-addressing table: a lookup
// hashes the name's length and two of its bytes, where a map would hash
// the whole string. It is consulted for every command, so it is the
// first cost of every hit and of every write.
type allowList struct {
	slots [allowSlots]allowSlot
}

type allowSlot struct {
	name string
	spec *cmdSpec
}

// allowSlots is a power of two well above the number of commands with key
// specs, so that probe chains stay short.
const allowSlots = 256

func allowHash(name string) uint {
	if name == "" {
		return 0
	}
	return (uint(len(name))*131 + uint(name[0])*31 + uint(name[len(name)-1])) & (allowSlots - 1)
}

// add allows name (lower case).
func (l *allowList) add(name string, spec *cmdSpec) {
	for i := allowHash(name); ; i = (i + 1) & (allowSlots - 1) {
		if sl := &l.slots[i]; sl.spec == nil || sl.name == name {
			sl.name, sl.spec = name, spec
			return
		}
	}
}

// get returns name's spec (name in lower case), or nil if name is not
// allowed.
func (l *allowList) get(name string) *cmdSpec {
	for i := allowHash(name); ; i = (i + 1) & (allowSlots - 1) {
		sl := &l.slots[i]
		if sl.spec == nil {
			return nil
		}
		if sl.name == name {
			return sl.spec
		}
	}
}

func init() {
	for name := range specs {
		noKeyCommands[name] = true
	}
}
