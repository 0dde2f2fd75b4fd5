package cache

import (
	"context"
	"encoding/binary"

	"github.com/redis/go-redis/v9"
)

// GetHit answers GET key from the cache without a go-redis command having
// been built: it returns the command GET key would have returned — the
// cached value, or redis.Nil for a key the server said is missing — or nil
// when the cache cannot answer (GET not on the allow list, ctx made by
// Bypass, no fresh entry). A caller holding a Handle gets this for free:
// Handle.Get asks GetHit first.
//
// A hit costs one allocation, the returned command. Its arguments are
// those of the command that filled the entry (equal to GET key), shared
// by every hit on the entry: they must not be modified.
func (c *Cache) GetHit(ctx context.Context, key string) *redis.StringCmd {
	if c.allowed.get("get") == nil || bypassed(ctx) {
		return nil
	}
	var arr [96]byte
	buf := appendGetKey(arr[:0], key)
	s := c.shardOf(key)
	s.mu.RLock()
	e := s.m[string(buf)]
	if e == nil || e.pending || e.kind != kString || len(e.args) != 2 || (e.expires != 0 && c.clock() >= e.expires) {
		s.mu.RUnlock()
		return nil
	}
	val, isNil, args := e.s, e.nilReply, e.args
	s.mu.RUnlock()
	if !e.ref.Load() {
		e.ref.Store(true)
	}
	s.hits.Add(1)
	cmd := redis.NewStringCmd(ctx, args...)
	if isNil {
		cmd.SetErr(redis.Nil)
	} else {
		cmd.SetVal(val)
	}
	return cmd
}

// appendGetKey appends the cache key of GET key: what appendKey appends
// for the name "get" and the one argument key, without boxing key in an
// interface (which would allocate).
func appendGetKey(buf []byte, key string) []byte {
	buf = append(buf, "get\x00s"...)
	buf = binary.AppendUvarint(buf, uint64(len(key)))
	return append(buf, key...)
}
