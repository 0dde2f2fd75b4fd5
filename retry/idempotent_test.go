package retry_test

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redisfactory/redisfactory/retry"
)

func TestIsIdempotent(t *testing.T) {
	tests := []struct {
		args []any
		want bool
	}{
		{nil, false},
		{[]any{}, false},
		{[]any{42}, false},
		{[]any{"get", "k"}, true},
		{[]any{"GET", "k"}, true},
		{[]any{[]byte("Get"), "k"}, true},
		{[]any{"mget", "a", "b"}, true},
		{[]any{"set", "k", "v"}, true},
		{[]any{"set", "k", "nx"}, true}, // the value "nx" is not an option
		{[]any{"set", "k", "v", "ex", 10}, true},
		{[]any{"set", "k", "v", "keepttl"}, true},
		{[]any{"set", "k", "v", "nx"}, false},
		{[]any{"set", "k", "v", "px", 100, "NX"}, false},
		{[]any{"set", "k", "v", "xx"}, false},
		{[]any{"set", "k", "v", []byte("get")}, false},
		{[]any{"set", "k"}, true},
		{[]any{"setnx", "k", "v"}, false},
		{[]any{"getset", "k", "v"}, false},
		{[]any{"getdel", "k"}, false},
		{[]any{"del", "a", "b"}, true},
		{[]any{"expire", "k", 10}, true},
		{[]any{"expire", "k", 10, "nx"}, false},
		{[]any{"pexpireat", "k", 1700000000000}, true},
		{[]any{"expireat", "k", 1700000000, "gt"}, false},
		{[]any{"hset", "h", "f", "v"}, true},
		{[]any{"hsetnx", "h", "f", "v"}, false},
		{[]any{"hincrby", "h", "f", 1}, false},
		{[]any{"sadd", "s", "m"}, true},
		{[]any{"zadd", "z", 1.0, "m"}, true},
		{[]any{"zadd", "z", "nx", "ch", 1.0, "m"}, true},
		{[]any{"zadd", "z", "incr", 1.0, "m"}, false},
		{[]any{"zadd", "z", "xx", "INCR", 1.0, "m"}, false},
		{[]any{"zadd", "z", 1.0, "incr"}, true}, // a member named incr
		{[]any{"zincrby", "z", 1, "m"}, false},
		{[]any{"lrem", "l", 0, "v"}, true},
		{[]any{"lrem", "l", "0", "v"}, true},
		{[]any{"lrem", "l", 1, "v"}, false},
		{[]any{"lrem", "l", int64(-2), "v"}, false},
		{[]any{"sort", "l", "limit", 0, 10}, true},
		{[]any{"sort", "l", "store", "dst"}, false},
		{[]any{"json.set", "k", "$", "{}"}, true},
		{[]any{"json.set", "k", "$", "{}", "nx"}, false},
		{[]any{"incr", "k"}, false},
		{[]any{"incrby", "k", 2}, false},
		{[]any{"decr", "k"}, false},
		{[]any{"append", "k", "v"}, false},
		{[]any{"lpush", "l", "v"}, false},
		{[]any{"rpush", "l", "v"}, false},
		{[]any{"lpop", "l"}, false},
		{[]any{"rpop", "l"}, false},
		{[]any{"spop", "s"}, false},
		{[]any{"xadd", "s", "*", "f", "v"}, false},
		{[]any{"xadd", "s", "1-1", "f", "v"}, false},
		{[]any{"eval", "return 1", 0}, false},
		{[]any{"evalsha", "abc", 0}, false},
		{[]any{"eval_ro", "return 1", 0}, true},
		{[]any{"fcall", "f", 0}, false},
		{[]any{"publish", "c", "m"}, false},
		{[]any{"sinterstore", "d", "a", "b"}, false},
		{[]any{"multi"}, false},
		{[]any{"exec"}, false},
		{[]any{"watch", "k"}, false},
		{[]any{"no-such-command"}, false},
		{[]any{"config", "get", "maxmemory"}, true},
		{[]any{"CONFIG", "SET", "maxmemory", "1"}, false},
		{[]any{"client", "setname", "x"}, true},
		{[]any{"client", "kill", "id", 1}, false},
		{[]any{"client"}, false},
		{[]any{"command"}, true},
		{[]any{"command", "docs", "get"}, true},
		{[]any{"cluster", "slots"}, true},
		{[]any{"cluster", "failover"}, false},
		{[]any{"script", "load", "return 1"}, true},
		{[]any{"script", "flush"}, false},
		{[]any{"client", "no-such-very-long-subcommand-name-beyond-the-buffer"}, false},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, retry.IsIdempotent(tt.args), "%v", tt.args)
	}
}

func TestIsIdempotentDoesNotAllocate(t *testing.T) {
	for _, args := range [][]any{
		{"get", "k"}, {"SET", "k", "v", "EX", 10}, {"zadd", "z", "nx", 1.0, "m"},
		{"client", "setname", "x"}, {"incr", "k"},
	} {
		n := testing.AllocsPerRun(100, func() { retry.IsIdempotent(args) })
		assert.Zero(t, n, "%v", args)
	}
}
