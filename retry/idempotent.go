package retry

import (
	"bytes"
	"strconv"
	"strings"
)

// rule says when a command is idempotent.
type rule uint8

const (
	always      rule = iota + 1 // every form of the command
	setRule                     // SET without NX, XX or GET
	noOptions                   // EXPIRE and friends: key and time only (no NX/XX/GT/LT)
	zaddRule                    // ZADD without INCR
	lremRule                    // LREM with count 0 (remove every occurrence)
	sortRule                    // SORT without STORE
	jsonSetRule                 // JSON.SET without NX or XX
	subcommand                  // decided by the subcommand (second argument)
)

// idempotent lists the commands (lower case) that may safely run twice. It
// is written out as a table in the package documentation; keep both in step.
var idempotent = map[string]rule{
	// Reads.
	"get": always, "mget": always, "getrange": always, "substr": always, "strlen": always,
	"exists": always, "type": always, "ttl": always, "pttl": always, "expiretime": always,
	"pexpiretime": always, "keys": always, "scan": always, "randomkey": always, "dbsize": always,
	"touch": always, "dump": always, "getbit": always, "bitcount": always, "bitpos": always,
	"bitfield_ro": always, "lcs": always, "sort_ro": always, "pfcount": always,
	"hget": always, "hmget": always, "hgetall": always, "hkeys": always, "hvals": always,
	"hlen": always, "hexists": always, "hstrlen": always, "hscan": always, "hrandfield": always,
	"httl": always, "hpttl": always, "hexpiretime": always, "hpexpiretime": always,
	"lrange": always, "lindex": always, "llen": always, "lpos": always,
	"smembers": always, "sismember": always, "smismember": always, "scard": always,
	"sscan": always, "srandmember": always, "sinter": always, "sunion": always,
	"sdiff": always, "sintercard": always,
	"zrange": always, "zrangebyscore": always, "zrevrange": always, "zrevrangebyscore": always,
	"zrangebylex": always, "zrevrangebylex": always, "zscore": always, "zmscore": always,
	"zcard": always, "zcount": always, "zlexcount": always, "zrank": always, "zrevrank": always,
	"zscan": always, "zrandmember": always, "zinter": always, "zunion": always,
	"zdiff": always, "zintercard": always,
	"geopos": always, "geodist": always, "geohash": always, "geosearch": always,
	"georadius_ro": always, "georadiusbymember_ro": always,
	"xlen": always, "xrange": always, "xrevrange": always, "xread": always, "xpending": always,
	"eval_ro": always, "evalsha_ro": always, "fcall_ro": always,
	"json.get": always, "json.mget": always, "json.type": always, "json.strlen": always,
	"json.arrlen": always, "json.objkeys": always, "json.objlen": always,
	// Server and connection.
	"ping": always, "echo": always, "time": always, "info": always, "lastsave": always,
	"role": always, "select": always, "hello": always, "auth": always,
	"readonly": always, "readwrite": always,
	// Writes whose repeat leaves the data as one run would.
	"set": setRule, "mset": always, "setex": always, "psetex": always, "setrange": always,
	"getex": always, "del": always, "unlink": always, "persist": always,
	"expire": noOptions, "pexpire": noOptions, "expireat": noOptions, "pexpireat": noOptions,
	"hset": always, "hmset": always, "hdel": always,
	"sadd": always, "srem": always,
	"zadd": zaddRule, "zrem": always, "zremrangebyscore": always, "zremrangebylex": always,
	"lset": always, "lrem": lremRule,
	"pfadd": always, "pfmerge": always, "geoadd": always,
	"xdel": always, "xack": always, "xtrim": always,
	"flushdb": always, "flushall": always,
	"json.set": jsonSetRule, "json.del": always, "json.forget": always, "json.mset": always,
	"sort": sortRule,
	// Commands decided by their subcommand.
	"client": subcommand, "config": subcommand, "cluster": subcommand, "command": subcommand,
	"script": subcommand, "object": subcommand, "memory": subcommand, "xinfo": subcommand,
	"function": subcommand, "acl": subcommand, "pubsub": subcommand, "slowlog": subcommand,
}

// idempotentSub lists the idempotent subcommands, as "command subcommand".
var idempotentSub = map[string]bool{
	"client id": true, "client getname": true, "client setname": true, "client setinfo": true,
	"client info": true, "client list": true, "client trackinginfo": true, "client getredir": true,
	"client no-evict": true, "client no-touch": true,
	"config get":   true,
	"cluster info": true, "cluster nodes": true, "cluster slots": true, "cluster shards": true,
	"cluster myid": true, "cluster myshardid": true, "cluster keyslot": true,
	"cluster countkeysinslot": true, "cluster getkeysinslot": true, "cluster links": true,
	"command count": true, "command docs": true, "command getkeys": true,
	"command getkeysandflags": true, "command info": true, "command list": true,
	"script exists": true, "script load": true,
	"object encoding": true, "object freq": true, "object idletime": true, "object refcount": true,
	"memory usage": true, "memory stats": true, "memory doctor": true,
	"xinfo stream": true, "xinfo groups": true, "xinfo consumers": true,
	"function list": true, "function dump": true, "function stats": true,
	"acl whoami": true, "acl cat": true, "acl list": true, "acl getuser": true, "acl users": true,
	"pubsub channels": true, "pubsub numsub": true, "pubsub numpat": true,
	"pubsub shardchannels": true, "pubsub shardnumsub": true,
	"slowlog get": true, "slowlog len": true,
}

// IsIdempotent reports whether the command args (as returned by
// redis.Cmder.Args: the command name first) may safely be sent again after
// a try whose outcome is unknown: running it twice leaves the data as
// running it once would. The commands and forms that qualify are listed in
// the package documentation; every other command, including any command
// this package does not know, is not idempotent. Names are matched without
// regard to case. IsIdempotent does not allocate.
func IsIdempotent(args []any) bool {
	if len(args) == 0 {
		return false
	}
	var buf [32]byte
	name, ok := lower(args[0], buf[:0])
	if !ok {
		return false
	}
	switch idempotent[string(name)] {
	case always:
		return true
	case setRule:
		return !hasWord(args[min(3, len(args)):], "nx", "xx", "get")
	case noOptions:
		return len(args) <= 3
	case zaddRule:
		for _, a := range args[min(2, len(args)):] {
			switch {
			case wordIs(a, "incr"):
				return false
			case wordIs(a, "nx"), wordIs(a, "xx"), wordIs(a, "gt"), wordIs(a, "lt"), wordIs(a, "ch"):
			default:
				return true // the options end at the first score
			}
		}
		return true
	case lremRule:
		return len(args) == 4 && isZero(args[2])
	case sortRule:
		return !hasWord(args[min(2, len(args)):], "store")
	case jsonSetRule:
		return len(args) <= 4
	case subcommand:
		if len(args) == 1 {
			return string(name) == "command" // bare COMMAND lists the commands
		}
		name = append(name, ' ')
		full, ok := lower(args[1], name)
		return ok && idempotentSub[string(full)]
	}
	return false
}

// lower appends the lower-case text of a (a string or []byte) to buf.
func lower(a any, buf []byte) ([]byte, bool) {
	switch v := a.(type) {
	case string:
		return appendLower(buf, v), true
	case []byte:
		return appendLower(buf, v), true
	}
	return nil, false
}

func appendLower[S string | []byte](buf []byte, s S) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf
}

// hasWord reports whether any of args is one of words (any case).
func hasWord(args []any, words ...string) bool {
	for _, a := range args {
		for _, w := range words {
			if wordIs(a, w) {
				return true
			}
		}
	}
	return false
}

// wordIs reports whether a is the string or []byte w, in any case.
func wordIs(a any, w string) bool {
	switch v := a.(type) {
	case string:
		return strings.EqualFold(v, w)
	case []byte:
		return len(v) == len(w) && bytes.EqualFold(v, []byte(w))
	}
	return false
}

// isZero reports whether a is the integer 0, as a number or as text.
func isZero(a any) bool {
	switch v := a.(type) {
	case int:
		return v == 0
	case int64:
		return v == 0
	case int32:
		return v == 0
	case int16:
		return v == 0
	case int8:
		return v == 0
	case uint:
		return v == 0
	case uint64:
		return v == 0
	case uint32:
		return v == 0
	case uint16:
		return v == 0
	case uint8:
		return v == 0
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n == 0
	case []byte:
		n, err := strconv.ParseInt(string(v), 10, 64)
		return err == nil && n == 0
	}
	return false
}
