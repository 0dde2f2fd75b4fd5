package factory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisfactory/redisfactory/cache"
)

//go:generate go run ./internal/genhandle -o handle_gen.go

// A go-redis upgrade that adds methods to UniversalClient fails to compile
// here until `go generate ./factory` is run.
var _ redis.UniversalClient = (*Handle)(nil)

// ErrProfileRemoved is wrapped by the error every command gets through the
// handle of a profile that a reload removed.
var ErrProfileRemoved = errors.New("redisfactory: profile removed")

// Handle is what users hold for a profile: a redis.UniversalClient that
// always sends commands to the profile's current client. It survives any
// number of reloads: after a reload that changed the profile, new commands
// go out with the new settings while commands already running finish on
// the client they started on, which is closed only once they are done (or
// the profile's drain_timeout has passed).
//
// Objects that outlive a call — a Pipeliner from Pipeline or TxPipeline, a
// PubSub from Subscribe, a *redis.Conn from Conn — belong to the client
// they were made from. That client is kept open until its in-flight calls
// end or drain_timeout passes, whichever comes first, and is closed then:
// make such objects per unit of work, or re-create them after a reload
// (watch for reload.applied events). Calls made through the handle itself
// (Pipelined, TxPipelined, Watch, every command) are tracked until they
// return.
//
// A Handle costs two atomic loads and two atomic adds (on one of 16
// counter shards) per call: ~4ns, ~14ns with two cores calling. Current
// returns the client itself for code that wants to skip even that.
type Handle struct {
	name string
	cur  atomic.Pointer[generation]

	hooksMu sync.Mutex
	hooks   []redis.Hook
}

// generation is one client of a profile, with its calls in flight.
type generation struct {
	client redis.UniversalClient
	// batched receives the commands that can be auto-pipelined (see
	// batchable): with pipeline.auto, the factory's engine's client or
	// go-redis's auto-pipeliner; else client. reads receives the reads
	// the cache may answer: with go-redis's auto-pipeliner they stay on
	// client, so that a miss fills the cache through its hook.
	auto    bool // pipeline.auto
	batched redis.UniversalClient
	reads   redis.UniversalClient
	ap      *redis.AutoPipeliner // go-redis's auto-pipeliner, when it is the engine
	batch   *redis.Client        // the client behind batched, for AddHook
	// cache answers GET hits before a command object is built (getHit).
	cache    *cache.Cache
	owner    *Client // nil for the removed-profile placeholder
	inflight [inflightShards]shard
}

// newGeneration returns the generation of a built client.
func newGeneration(c *Client) *generation {
	g := &generation{client: c.UniversalClient, batched: c.UniversalClient, reads: c.UniversalClient, owner: c}
	if c.batched != nil {
		g.auto, g.ap, g.batch, g.batched = true, c.ap, c.batch, c.batched
	}
	g.cache = c.Cache()
	if g.cache == nil || c.mux != nil {
		// Without a cache nothing is answered locally: reads batch too.
		// The factory's engine runs the cache's hook on its own client,
		// so its reads fill the cache there.
		g.reads = g.batched
	}
	return g
}

// batchable returns where a command that can be auto-pipelined goes under
// ctx: the pipelining engine. With go-redis's auto-pipeliner (sentinel
// profiles), a command whose ctx carries a deadline or is already done
// takes the pool instead: go-redis runs a queued command on the
// auto-pipeliner's own context (a deadline is not honoured once it is
// queued), while the pool bounds it exactly as bare go-redis does. The
// factory's engine runs every command on its caller's context.
func (g *generation) batchable(ctx context.Context) redis.UniversalClient {
	if !g.auto {
		return g.client // small enough to inline: the default profile pays one test
	}
	return g.toPipeliner(ctx)
}

func (g *generation) toPipeliner(ctx context.Context) redis.UniversalClient {
	if g.ap == nil || ctx == nil || ctx.Done() == nil {
		// The factory's engine runs each command on its caller's context.
		return g.batched
	}
	if _, ok := ctx.Deadline(); ok || ctx.Err() != nil {
		return g.client
	}
	return g.batched
}

// readable is batchable for the reads the cache may answer.
func (g *generation) readable(ctx context.Context) redis.UniversalClient {
	if g.reads == g.client {
		return g.client
	}
	return g.batchable(ctx)
}

// addHook adds hk to every go-redis client of g.
func (g *generation) addHook(hk redis.Hook) {
	g.client.AddHook(hk)
	switch {
	case g.owner != nil && g.owner.batch != nil:
		g.owner.addBatchHook(hk) // keeps the direct path last
	case g.batch != nil:
		g.batch.AddHook(hk)
	}
}

// inflightShards spreads the in-flight count of a generation over several
// cache lines: with one counter, every call on every core would write the
// same line, and the handle's cost would grow with the cores calling it.
const inflightShards = 16

type shard struct {
	n atomic.Int64
	_ [56]byte // one cache line per shard
}

// calls returns the number of calls in flight on g.
func (g *generation) calls() int64 {
	var n int64
	for i := range g.inflight {
		n += g.inflight[i].n.Load()
	}
	return n
}

func newHandle(name string, c *Client) *Handle {
	h := &Handle{name: name}
	h.cur.Store(newGeneration(c))
	return h
}

// acquire returns the current generation with the call counted in flight.
// A reload that swaps generations between the load and the count is seen
// by the second load, and the call moves to the new generation, so a
// generation whose count has reached zero after the swap is never used
// again and can be closed.
//
// The count goes to a shard picked at random (a per-thread generator, no
// shared state); release must be given the same shard.
func (h *Handle) acquire() (*generation, uint32) {
	s := rand.Uint32() % inflightShards
	for {
		g := h.cur.Load()
		g.inflight[s].n.Add(1)
		if h.cur.Load() == g {
			return g, s
		}
		g.inflight[s].n.Add(-1)
	}
}

func (g *generation) release(s uint32) { g.inflight[s].n.Add(-1) }

// swap makes g the current generation and returns the previous one.
func (h *Handle) swap(g *generation) *generation {
	h.hooksMu.Lock()
	for _, hk := range h.hooks {
		g.addHook(hk)
	}
	old := h.cur.Swap(g)
	h.hooksMu.Unlock()
	return old
}

// drain waits until no call runs on g or ctx ends. It reports whether the
// generation drained.
func (g *generation) drain(ctx context.Context) bool {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for g.calls() > 0 {
		select {
		case <-ctx.Done():
			return g.calls() <= 0
		case <-t.C:
		}
	}
	return true
}

// Name returns the profile's name.
func (h *Handle) Name() string { return h.name }

// Current returns the profile's current go-redis client: a *redis.Client
// (standalone, sentinel) or *redis.ClusterClient. Calls made on it directly
// are not tracked for draining; keep it for the duration of one unit of
// work, not across reloads.
func (h *Handle) Current() redis.UniversalClient { return h.cur.Load().client }

// Close does nothing and returns nil; the handle keeps working. A handle is
// shared: every f.Client(name) of a profile returns the same one, so
// closing the profile's client for one holder would break every other
// part of the program using the profile. The factory owns the clients and
// closes them in Factory.Close, after which every call through every handle
// fails with redis.ErrClosed (error class closed), as calls on a closed
// go-redis client do. Close exists so that a Handle can be passed to code
// that closes the redis.UniversalClient it is given.
func (h *Handle) Close() error { return nil }

// AddHook adds a hook to the profile's current client and to every client
// a later reload builds for it.
func (h *Handle) AddHook(hook redis.Hook) {
	h.hooksMu.Lock()
	defer h.hooksMu.Unlock()
	h.hooks = append(h.hooks, hook)
	h.cur.Load().addHook(hook)
}

// removedGeneration is what a removed profile's handle delegates to: a
// client that never connects and fails every command with an error naming
// the profile.
func removedGeneration(name string) *generation {
	return failingGeneration(fmt.Errorf("%w: %q is no longer in the configuration", ErrProfileRemoved, name))
}

// closedGeneration is what every handle delegates to once the factory is
// closed: every call fails with redis.ErrClosed, as on a closed go-redis
// client.
func closedGeneration() *generation { return failingGeneration(redis.ErrClosed) }

// failingGeneration is a placeholder client that fails every command,
// pipeline and transaction with err without sending it. Its hooks answer
// before go-redis looks at its pool, so it is closed at once: it holds no
// connection and no goroutine (RESP2 and maintenance notifications off, so
// go-redis starts none for it either).
func failingGeneration(err error) *generation {
	c := redis.NewClient(&redis.Options{
		Addr:                     "closed.invalid:0",
		Protocol:                 2,
		MaxRetries:               -1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		Dialer: func(context.Context, string, string) (net.Conn, error) {
			return nil, err
		},
	})
	c.AddHook(failHook{err})
	_ = c.Close()
	return &generation{client: c, batched: c, reads: c}
}

// failHook answers every command with err without sending it.
type failHook struct{ err error }

func (f failHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f failHook) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(_ context.Context, cmd redis.Cmder) error {
		cmd.SetErr(f.err)
		return f.err
	}
}
func (f failHook) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(_ context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			c.SetErr(f.err)
		}
		return f.err
	}
}

// Get calls Get on the profile's current client. With a client-side cache
// a hit is answered here, before go-redis builds a command, for one
// allocation (cache.GetHit); a miss goes through the cache's hook, which
// fills the cache.
func (h *Handle) Get(ctx context.Context, key string) *redis.StringCmd {
	g, s := h.acquire()
	defer g.release(s)
	if g.cache != nil {
		if cmd := g.cache.GetHit(ctx, key); cmd != nil {
			return cmd
		}
		if g.ap != nil && g.batchable(ctx) == g.batched {
			// With go-redis's auto-pipeliner, a miss rides it through the
			// cache's fill (single flight, invalidation race): its
			// connections are dialed with tracking on. (The factory's
			// engine has the cache's hook on its own client: see reads.)
			cmd := redis.NewStringCmd(ctx, "get", key)
			_ = g.cache.Process(ctx, cmd, g.ap.Process)
			return cmd
		}
	}
	return g.readable(ctx).Get(ctx, key)
}
