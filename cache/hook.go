package cache

import (
	"context"
	"encoding/binary"
	"math"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// entry is a cached reply or a pending fetch.
type entry struct {
	value
	key     string
	args    []any    // the arguments of the command that filled it (GetHit)
	names   []string // the keys it read
	foreign []string // those of names indexed in another shard than its own
	shard   *shard
	expires int64 // monotonic ns; 0 never
	ref     atomic.Bool
	prev    *entry
	next    *entry

	// Pending fetches (guarded by the shard's lock, except done and ok,
	// which the leader sets before closing done).
	pending bool
	invalid bool
	done    chan struct{}
	ok      bool
}

// Hook returns the go-redis hook of the cache: it answers hits, fills
// misses, invalidates the keys of writes, and (for standalone and sentinel
// clients) sets tracking up on every connection it dials. Install it before
// any retry hook. Every client it is built into reads from the cache,
// including the Tx and Conn copies go-redis makes of a client's hooks:
// prefer HookFor, which keeps those away from it.
func (c *Cache) Hook() redis.Hook { return hook{c: c} }

// DialHook returns a hook that only sets tracking up on the connections it
// dials: install it on every node client of a cluster (OnNewNode).
func (c *Cache) DialHook() redis.Hook { return dialOnly{c} }

type hook struct {
	c     *Cache
	owner Processor // nil: every chain reads from the cache (see HookFor)
}

func (h hook) DialHook(next redis.DialHook) redis.DialHook { return h.c.wrapDial(next) }

func (h hook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	c := h.c
	ch := &chain{} // go-redis calls ProcessHook once per chain it builds
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if len(args) == 0 {
			return next(ctx, cmd)
		}
		name := cmd.Name()
		if spec := c.allowed.get(name); spec != nil {
			if bypassed(ctx) || !h.servesFromCache(ctx, ch) {
				return next(ctx, cmd)
			}
			return c.read(ctx, cmd, name, args, spec, next)
		}
		if h.owner != nil && h.receiveProbe(cmd, ch) {
			return nil
		}
		err := next(ctx, cmd)
		c.afterWrite(name, args)
		return err
	}
}

func (h hook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	c := h.c
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			name := cmd.Name()
			if c.allowed.get(name) == nil {
				c.afterWrite(name, cmd.Args())
			}
		}
		return err
	}
}

// Process runs cmd through the cache as the hook of its owner does, with
// next as the rest of the chain (what sends cmd to the server): a hit is
// answered, a miss is fetched with next and stored, a write invalidates.
// It lets a caller send misses another way than the hooked client's own
// connection — the factory's handle sends them through its
// auto-pipeliner — provided those connections were dialed through the
// cache's DialHook, so that the server tracks what they read. Never call
// it for a command bound to one connection (Watch, Conn).
func (c *Cache) Process(ctx context.Context, cmd redis.Cmder, next redis.ProcessHook) error {
	args := cmd.Args()
	if len(args) == 0 {
		return next(ctx, cmd)
	}
	name := cmd.Name()
	if spec := c.allowed.get(name); spec != nil {
		if bypassed(ctx) {
			return next(ctx, cmd)
		}
		return c.read(ctx, cmd, name, args, spec, next)
	}
	err := next(ctx, cmd)
	c.afterWrite(name, args)
	return err
}

// WriteHook returns the hook of a client whose reads the cache does not
// answer but whose connections and writes it must know of: it sets
// tracking up on every connection it dials, and invalidates what every
// command outside the allow list may have written, as Hook does. The
// reads it lets through are a cache's own misses, sent with Process.
func (c *Cache) WriteHook() redis.Hook { return writeHook{hook{c: c}} }

type writeHook struct{ hook }

func (w writeHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	c := w.c
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if name := cmd.Name(); c.allowed.get(name) == nil {
			if args := cmd.Args(); len(args) > 0 {
				c.afterWrite(name, args)
			}
		}
		return err
	}
}

type dialOnly struct{ c *Cache }

func (d dialOnly) DialHook(next redis.DialHook) redis.DialHook { return d.c.wrapDial(next) }
func (d dialOnly) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return next
}
func (d dialOnly) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// afterWrite invalidates what a command outside the allow list may have
// changed: every entry on a key named by one of its arguments, or all of
// them for FLUSHDB/FLUSHALL. It runs after the command returned, failed or
// not (a failed write may still have been applied).
func (c *Cache) afterWrite(name string, args []any) {
	if noKeyCommands[name] {
		return
	}
	if name == "flushdb" || name == "flushall" || name == "swapdb" {
		c.Flush(name)
		return
	}
	if c.entries.Load() == 0 && c.pendingNone() {
		return
	}
	for _, a := range args[1:] {
		switch v := a.(type) {
		case string:
			c.Invalidate(v)
		case []byte:
			c.Invalidate(string(v))
		}
	}
}

// pendingNone is a cheap check that skips invalidating writes while the
// cache holds nothing; pending fetches count as something.
func (c *Cache) pendingNone() bool { return c.inflight.Load() == 0 }

// appendKey appends the cache key of a command: its name (lower case, as
// go-redis's Cmder.Name gives it), then each argument as a type tag and
// its value, strings length-prefixed, so that no two argument lists share
// a key. Strings and byte slices share a tag: go-redis sends both alike,
// so the server's reply is the same. ok is false for arguments of a type
// that is not cached.
func appendKey(buf []byte, name string, args []any) ([]byte, bool) {
	buf = append(buf, name...)
	buf = append(buf, 0) // no name is a prefix of another's key
	for _, a := range args {
		switch v := a.(type) {
		case string:
			buf = append(buf, 's')
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
		case []byte:
			buf = append(buf, 's')
			buf = binary.AppendUvarint(buf, uint64(len(v)))
			buf = append(buf, v...)
		case int:
			buf = append(buf, 'i')
			buf = binary.AppendVarint(buf, int64(v))
		case int64:
			buf = append(buf, 'i')
			buf = binary.AppendVarint(buf, v)
		case float64:
			buf = append(buf, 'f')
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		default:
			return buf, false
		}
	}
	return buf, true
}

// read answers an allowed command from the cache or fetches it.
func (c *Cache) read(ctx context.Context, cmd redis.Cmder, name string, args []any, spec *cmdSpec, next redis.ProcessHook) error {
	from, to, ok := spec.keyRange(args)
	if !ok {
		return next(ctx, cmd)
	}
	first, ok := args[from].(string)
	if !ok {
		return next(ctx, cmd)
	}
	// Keys that do not fit (rare) cost one allocation.
	var arr [96]byte
	buf, ok := appendKey(arr[:0], name, args[1:])
	if !ok {
		return next(ctx, cmd)
	}
	s := c.shardOf(first)

	// The hit path: a read lock and a map lookup.
	s.mu.RLock()
	e := s.m[string(buf)]
	if e != nil && !e.pending && (e.expires == 0 || c.clock() < e.expires) && e.fill(cmd) {
		s.mu.RUnlock()
		if !e.ref.Load() {
			e.ref.Store(true)
		}
		s.hits.Add(1)
		if e.nilReply {
			return redis.Nil
		}
		return nil
	}
	s.mu.RUnlock()
	return c.miss(ctx, cmd, args, args[from:to], s, buf, next)
}

func (c *Cache) miss(ctx context.Context, cmd redis.Cmder, args, keys []any, s *shard, buf []byte, next redis.ProcessHook) error {
	k := kindOf(cmd)
	if k == kNone {
		return next(ctx, cmd)
	}
	if !c.tracked(keys) {
		return next(ctx, cmd) // never invalidated: not cached
	}
	epoch := c.epoch.Load()
	if c.down.Load() != 0 {
		c.misses.Add(1)
		return next(ctx, cmd)
	}
	s.mu.Lock()
	e := s.m[string(buf)]
	if e != nil && e.pending {
		// Single flight: wait for the fetch under way. A command answered
		// by it counts as a hit, as rueidis counts it: it cost no round
		// trip of its own. One that must go to the server is a miss.
		s.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			c.misses.Add(1)
			return ctx.Err()
		}
		if e.ok && e.fill(cmd) {
			s.hits.Add(1)
			if e.nilReply {
				return redis.Nil
			}
			return nil
		}
		c.misses.Add(1)
		return next(ctx, cmd)
	}
	c.misses.Add(1)
	var replaced *entry
	if e != nil {
		// Expired or of another command type: replace it.
		f, n := s.removeLocked(e, "")
		c.account(-n, -f)
		replaced = e
	}
	p := &entry{key: string(buf), args: args, shard: s, pending: true, done: make(chan struct{})}
	p.names = make([]string, 0, len(keys))
	for _, a := range keys {
		name, ok := a.(string)
		if !ok {
			s.mu.Unlock()
			if replaced != nil {
				c.unindex(replaced)
			}
			return next(ctx, cmd)
		}
		p.names = append(p.names, name)
	}
	s.m[p.key] = p
	for _, name := range p.names {
		if c.shardOf(name) == s {
			s.names[name] = append(s.names[name], p)
		} else {
			p.foreign = append(p.foreign, name)
		}
	}
	s.mu.Unlock()
	if replaced != nil {
		c.unindex(replaced)
	}
	c.inflight.Add(1)
	for _, name := range p.foreign {
		fs := c.shardOf(name)
		fs.mu.Lock()
		fs.names[name] = append(fs.names[name], p)
		fs.mu.Unlock()
	}

	err := next(ctx, cmd)

	val, ok := capture(cmd, k, err)
	s.mu.Lock()
	store := ok && !p.invalid && s.m[p.key] == p && c.epoch.Load() == epoch && c.down.Load() == 0
	if ok {
		p.value = val
		p.ok = true
	}
	if store {
		p.pending = false
		p.size = val.size + 2*int64(len(p.key)) + 160
		p.expires = c.expiry()
		s.pushBack(p)
	} else if s.m[p.key] == p {
		s.removeLocked(p, "")
	}
	s.mu.Unlock()
	close(p.done)
	c.inflight.Add(-1)
	if store {
		c.account(1, p.size)
		c.enforce(p)
	} else {
		// Also covers an Invalidate or flush that removed p before the
		// loop above had indexed it in the other shards.
		c.unindex(p)
	}
	return err
}

// tracked reports whether the server tells of changes to every key in
// keys: always in default mode, and in broadcast mode only for keys under
// one of the prefixes (all keys when there are none).
func (c *Cache) tracked(keys []any) bool {
	if c.cfg.Mode != Broadcast || len(c.cfg.Prefixes) == 0 {
		return true
	}
	for _, k := range keys {
		name, _ := k.(string)
		if !slices.ContainsFunc(c.cfg.Prefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			return false
		}
	}
	return true
}

// wrapDial wraps every connection go-redis dials so that tracking is on,
// redirected to the node's live invalidation connection, before any
// command of go-redis's is written to it.
func (c *Cache) wrapDial(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return conn, err
		}
		key := addr
		if c.cfg.ResolveByRemote {
			if ra := conn.RemoteAddr(); ra != nil {
				key = ra.String()
			}
		}
		n := c.node(ctx, key)
		if n == nil {
			return conn, nil // closed
		}
		return wrapConn(conn, n), nil
	}
}

func isHandshake(p []byte) bool {
	// A RESP array whose first bulk string is a handshake command.
	name := firstBulk(p)
	switch strings.ToUpper(name) {
	case "HELLO", "AUTH", "SELECT", "CLIENT", "READONLY", "PING":
		return true
	}
	return false
}

// isSubscribe reports whether p is a subscribing command, the first command
// go-redis writes on a PubSub connection.
func isSubscribe(p []byte) bool {
	switch strings.ToUpper(firstBulk(p)) {
	case "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE":
		return true
	}
	return false
}

// firstBulk returns the first bulk string of a RESP array of bulk strings.
func firstBulk(p []byte) string {
	if len(p) < 4 || p[0] != '*' {
		return ""
	}
	i := 1
	for i < len(p) && p[i] != '\n' {
		i++
	}
	i++
	if i >= len(p) || p[i] != '$' {
		return ""
	}
	n := 0
	i++
	for i < len(p) && p[i] >= '0' && p[i] <= '9' {
		n = n*10 + int(p[i]-'0')
		i++
	}
	i += 2
	if n > 32 || i+n > len(p) {
		return ""
	}
	return string(p[i : i+n])
}
