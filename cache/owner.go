package cache

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Processor is the part of a go-redis client (*redis.Client,
// *redis.ClusterClient, any redis.UniversalClient) that HookFor needs.
type Processor interface {
	Process(ctx context.Context, cmd redis.Cmder) error
}

// HookFor returns the cache's hook for the client owner, to be added to
// owner as its first hook (owner.AddHook(c.HookFor(owner))). It is Hook,
// except that only commands owner runs itself are answered from the cache.
//
// go-redis copies a client's hooks into every *redis.Tx (Watch), *redis.Conn
// (Conn) and clone (WithTimeout) it makes. Such commands are bound to one
// connection: inside Watch, a GET answered from memory cannot be seen by
// WATCH (which only sees changes made after it), so a transaction would
// write on top of a stale value; a Conn may SELECT another database, which
// the cache key does not name. With HookFor, those copies never read from
// the cache and never store in it; their writes still invalidate it, as
// every write through the client does.
//
// How a copy is told apart: go-redis builds a chain of hook functions for
// each client, calling every hook's ProcessHook once per chain, and nothing
// in that call says which client the chain is for. So each chain the hook
// makes starts undecided; the first time one of its allowed reads runs, it
// sends a probe command through owner.Process, which lands in owner's
// current chain — the hook is owner's first, so nothing else sees the
// probe — and marks that chain as owner's. A chain that did not receive its
// own probe is a copy's, and passes every read through from then on. This
// costs one function call per chain (once per Watch or Conn that reads), and
// an atomic load per read afterwards.
func (c *Cache) HookFor(owner Processor) redis.Hook {
	return hook{c: c, owner: owner}
}

// Chain roles.
const (
	chainUndecided int32 = iota
	chainOwner           // owner's own chain: reads are served from the cache
	chainCopy            // a Tx, Conn or clone: reads go to the server
)

// chain is the state of one chain of hook functions built by go-redis.
type chain struct{ role atomic.Int32 }

// probeCmd is the probe a chain sends through its owner. Embedding a go-redis
// command makes it a redis.Cmder; it is never written to a server.
type probeCmd struct {
	*redis.StatusCmd
	cache *Cache
	got   *chain // the chain the probe reached
}

// servesFromCache reports whether reads of ch may be answered from (and
// stored in) the cache.
func (h hook) servesFromCache(ctx context.Context, ch *chain) bool {
	if h.owner == nil {
		return true
	}
	switch ch.role.Load() {
	case chainOwner:
		return true
	case chainCopy:
		return false
	}
	p := &probeCmd{StatusCmd: redis.NewStatusCmd(ctx, "redisfactory-cache-chain-probe"), cache: h.c}
	_ = h.owner.Process(ctx, p)
	if p.got == ch {
		return true // receiving the probe marked it
	}
	// Another chain is owner's current one: this is a copy's, or an old
	// chain of owner's replaced by an AddHook (a call already under way,
	// which then simply goes to the server).
	ch.role.CompareAndSwap(chainUndecided, chainCopy)
	return ch.role.Load() == chainOwner
}

// receiveProbe handles a probe that reached ch: it is owner's chain.
func (h hook) receiveProbe(cmd redis.Cmder, ch *chain) bool {
	p, ok := cmd.(*probeCmd)
	if !ok || p.cache != h.c {
		return false
	}
	ch.role.Store(chainOwner)
	p.got = ch
	return true
}
