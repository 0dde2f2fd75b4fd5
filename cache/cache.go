package cache

import (
	"context"
	"errors"
	"hash/maphash"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mode is how the server tracks keys.
type Mode int

// The tracking modes.
const (
	// Default tracks the keys this client read.
	Default Mode = iota
	// Broadcast is told of every change to keys under Prefixes.
	Broadcast
)

// Config configures a Cache.
type Config struct {
	// MaxEntries and MaxBytes bound the cache; zero means no bound of that
	// kind (at least one should be set).
	MaxEntries int
	MaxBytes   int64
	// TTL is the longest an entry lives; zero means until invalidated or
	// evicted. A TTL of a second or more is checked against a clock that
	// one goroutine advances every 10 ms (reading the system clock on
	// every hit would cost a third of the hit): an entry then lives at
	// most the TTL unless that goroutine is kept from running for longer
	// than a tick (a CPU quota throttle, a stopped process), by that much.
	TTL time.Duration
	// Mode and Prefixes select the tracking mode.
	Mode     Mode
	Prefixes []string
	// Commands is the allow list (any case). Commands without key
	// positions known to this package are ignored.
	Commands []string
	// Budget, if set, bounds the bytes of every cache sharing it.
	Budget *Budget

	// Dial opens a connection to a server address (TLS included). The
	// invalidation connections use it.
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Username and Password authenticate the invalidation connections.
	Username, Password string
	// ClientName names the invalidation connections (a suffix is added).
	ClientName string
	// Timeout bounds dialling and every handshake reply; default 5s.
	Timeout time.Duration
	// PingInterval is how often an idle invalidation connection is
	// PINGed; a connection that stays silent for three intervals is
	// considered lost. Default 1s.
	PingInterval time.Duration
	// ResolveByRemote names nodes by the remote address of the dialled
	// connection rather than the address dialled (sentinel: go-redis
	// dials "FailoverClient"). A data connection to a new address means a
	// failover: the cache is flushed.
	ResolveByRemote bool
	// ExpectMaster makes the invalidation connection check with ROLE, at
	// every keep-alive, that its server is still a master; when it is not
	// (a failover), the cache is flushed and stops storing until data
	// connections reach the new master.
	ExpectMaster bool

	// OnFlush is called after the cache was flushed, with the reason.
	OnFlush func(reason string)
	// OnChannel is called when an invalidation connection goes down
	// (err set) or comes up.
	OnChannel func(addr string, up bool, err error)
	// OnInvalidate, for tests and metrics, is called for every
	// invalidation push an invalidation connection receives, after the
	// entries it names were dropped: keys are the key names of the push
	// (a fresh slice the callee may keep), nil for a flush (FLUSHDB,
	// FLUSHALL). Pushes of one connection are applied one at a time, in
	// the order the server sent them, so when OnInvalidate reports a key
	// every invalidation that server sent before it has been applied. It
	// runs on the invalidation connection's goroutine and must not block.
	OnInvalidate func(keys []string)
}

// Stats are a cache's counters.
type Stats struct {
	Hits          uint64 `json:"hits"`
	Misses        uint64 `json:"misses"`
	Evictions     uint64 `json:"evictions"`
	Invalidations uint64 `json:"invalidations"`
	Flushes       uint64 `json:"flushes"`
	Entries       int64  `json:"entries"`
	Bytes         int64  `json:"bytes"`
	// ChannelsUp and ChannelsDown count the invalidation connections up
	// and not (yet) up.
	ChannelsUp   int `json:"channels_up"`
	ChannelsDown int `json:"channels_down"`
}

// HitRatio returns hits / (hits + misses), or 0.
func (s Stats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Budget bounds the bytes held by every cache that shares it. When a store
// would exceed it, the storing cache evicts its own entries first.
type Budget struct {
	max  int64
	used atomic.Int64
}

// NewBudget returns a budget of maxBytes.
func NewBudget(maxBytes int64) *Budget { return &Budget{max: maxBytes} }

// Max returns the budget's size in bytes.
func (b *Budget) Max() int64 { return b.max }

// Used returns the bytes currently held under the budget.
func (b *Budget) Used() int64 { return b.used.Load() }

type bypassKey struct{}

// Bypass returns a context whose commands neither read nor fill the cache.
func Bypass(ctx context.Context) context.Context {
	return context.WithValue(ctx, bypassKey{}, true)
}

func bypassed(ctx context.Context) bool {
	if ctx == nil {
		return false
	}
	v, _ := ctx.Value(bypassKey{}).(bool)
	return v
}

// ErrClosed is returned for an operation on a closed cache.
var ErrClosed = errors.New("redisfactory/cache: closed")

const nShards = 32

// Cache is one client's client-side cache.
type Cache struct {
	cfg      Config
	allowed  allowList
	maxBytes int64
	seed     maphash.Seed
	shards   [nShards]shard

	epoch   atomic.Uint64 // bumped by every flush
	down    atomic.Int64  // invalidation connections not up
	entries atomic.Int64
	bytes   atomic.Int64

	misses        atomic.Uint64
	evictions     atomic.Uint64
	invalidations atomic.Uint64
	flushes       atomic.Uint64
	cursor        atomic.Uint32
	inflight      atomic.Int64

	coarseTTL bool // expiries are checked against the coarse clock

	nodesMu sync.Mutex
	nodes   map[string]*node
	primary string // ResolveByRemote: the address data connections go to
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
}

type shard struct {
	mu    sync.RWMutex
	m     map[string]*entry
	names map[string][]*entry
	head  *entry // LRU list of stored entries, oldest first
	tail  *entry
	hits  atomic.Uint64
	_     [40]byte
}

// New returns a cache. Close releases its invalidation connections and,
// for a TTL of a second or more, its share of the clock goroutine: a cache
// that is dropped without Close keeps that goroutine running.
func New(cfg Config) *Cache {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = time.Second
	}
	c := &Cache{cfg: cfg, seed: maphash.MakeSeed(), nodes: map[string]*node{}, stop: make(chan struct{})}
	c.maxBytes = cfg.MaxBytes
	for _, name := range cfg.Commands {
		if s, ok := specs[strings.ToLower(name)]; ok {
			c.allowed.add(strings.ToLower(name), s)
		}
	}
	for i := range c.shards {
		c.shards[i].m = map[string]*entry{}
		c.shards[i].names = map[string][]*entry{}
	}
	if cfg.TTL >= coarseMinTTL {
		c.coarseTTL = true
		acquireCoarse()
	}
	return c
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache) Stats() Stats {
	s := Stats{
		Misses:        c.misses.Load(),
		Evictions:     c.evictions.Load(),
		Invalidations: c.invalidations.Load(),
		Flushes:       c.flushes.Load(),
		Entries:       c.entries.Load(),
		Bytes:         c.bytes.Load(),
	}
	for i := range c.shards {
		s.Hits += c.shards[i].hits.Load()
	}
	c.nodesMu.Lock()
	for _, n := range c.nodes {
		if n.state.Load().id != 0 {
			s.ChannelsUp++
		} else {
			s.ChannelsDown++
		}
	}
	c.nodesMu.Unlock()
	return s
}

// Allowed reports whether cmd (any case) is answered from the cache.
func (c *Cache) Allowed(cmd string) bool { return c.allowed.get(strings.ToLower(cmd)) != nil }

// Close flushes the cache and closes its invalidation connections, waiting
// for their goroutines.
func (c *Cache) Close() error {
	c.nodesMu.Lock()
	if c.closed {
		c.nodesMu.Unlock()
		return nil
	}
	c.closed = true
	close(c.stop)
	nodes := c.nodes
	c.nodes = map[string]*node{}
	c.nodesMu.Unlock()
	for _, n := range nodes {
		n.close()
	}
	c.wg.Wait()
	c.down.Add(1) // never trusted again
	c.flush("", false)
	if c.coarseTTL {
		releaseCoarse() // after the flush: no hit is checked against a stopped clock
	}
	return nil
}

func (c *Cache) isClosed() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *Cache) shardOf(name string) *shard {
	return &c.shards[maphash.String(c.seed, name)%nShards]
}

// clock returns the time that entries' expiries are checked against: the
// coarse clock for TTLs long enough that its tick does not matter.
func (c *Cache) clock() int64 {
	if c.coarseTTL {
		return coarse.now.Load()
	}
	return now()
}

// expiry returns the expiry of an entry stored now: the TTL from now,
// shortened by the coarse clock's tick so that a clock up to a tick late
// still expires the entry within the TTL.
func (c *Cache) expiry() int64 {
	if c.cfg.TTL <= 0 {
		return 0
	}
	ttl := c.cfg.TTL
	if c.coarseTTL {
		ttl -= coarseTick
	}
	return now() + int64(ttl)
}

// Flush drops every entry (and keeps pending fetches from being stored).
func (c *Cache) Flush(reason string) { c.flush(reason, true) }

func (c *Cache) flush(reason string, count bool) {
	c.epoch.Add(1)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		var freed, n int64
		for _, e := range s.m {
			if e.pending {
				e.invalid = true
				continue
			}
			freed += e.size
			n++
		}
		clear(s.m)
		clear(s.names)
		s.head, s.tail = nil, nil
		s.mu.Unlock()
		c.account(-n, -freed)
	}
	if count {
		c.flushes.Add(1)
		if c.cfg.OnFlush != nil {
			c.cfg.OnFlush(reason)
		}
	}
}

func (c *Cache) account(n, bytes int64) {
	if n == 0 && bytes == 0 {
		return
	}
	c.entries.Add(n)
	c.bytes.Add(bytes)
	if c.cfg.Budget != nil {
		c.cfg.Budget.used.Add(bytes)
	}
}

// Invalidate drops every entry on key name (pending ones are marked so
// that their replies are not stored). Entries homed in another shard (a
// multi-key command's, stored in its first key's shard) stay in name's
// index until they are dropped: a concurrent Invalidate of the same name
// must find them too, or it could return while they still answer hits.
func (c *Cache) Invalidate(name string) {
	c.invalidations.Add(1)
	s := c.shardOf(name)
	s.mu.Lock()
	list, ok := s.names[name]
	if !ok {
		s.mu.Unlock()
		return
	}
	var foreign, unindex []*entry
	var freed, n int64
	for _, e := range list {
		if e.shard != s {
			foreign = append(foreign, e)
			continue
		}
		f, k := s.removeLocked(e, name)
		freed, n = freed+f, n+k
		if len(e.foreign) > 0 {
			unindex = append(unindex, e)
		}
	}
	if len(foreign) == 0 {
		delete(s.names, name)
	} else {
		s.names[name] = slices.Clone(foreign) // until they are removed, below
	}
	s.mu.Unlock()
	c.account(-n, -freed)
	for _, e := range unindex {
		c.unindex(e)
	}
	for _, e := range foreign {
		es := e.shard
		es.mu.Lock()
		f, k := es.removeLocked(e, name)
		es.mu.Unlock()
		c.account(-k, -f)
		c.unindex(e) // name's index included
	}
}

// removeLocked removes e from its shard (whose lock is held) if it is still
// there; skip is a name whose index entry the caller already dropped. It
// returns the bytes and entries freed. Index entries of e under names of
// other shards (e.foreign) are the caller's to drop with unindex once it
// has released this shard's lock, since no two shard locks are ever held
// at once.
func (s *shard) removeLocked(e *entry, skip string) (int64, int64) {
	if s.m[e.key] != e {
		return 0, 0
	}
	delete(s.m, e.key)
	for _, nm := range e.names {
		if nm != skip {
			s.dropIndexLocked(nm, e)
		}
	}
	if e.pending {
		e.invalid = true
		return 0, 0
	}
	s.unlink(e)
	return e.size, 1
}

// dropIndexLocked removes e from the index of name nm (s's lock held).
func (s *shard) dropIndexLocked(nm string, e *entry) {
	l, ok := s.names[nm]
	if !ok {
		return
	}
	if i := slices.Index(l, e); i >= 0 {
		l[i] = l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
	}
	if len(l) == 0 {
		delete(s.names, nm)
	} else {
		s.names[nm] = l
	}
}

// unindex drops a removed entry from the indexes of its names in other
// shards, one shard lock at a time. Without it, an entry of a key that is
// never invalidated (read, never written) would stay referenced from those
// indexes, its value with it, outside every bound. It is idempotent.
func (c *Cache) unindex(e *entry) {
	for _, nm := range e.foreign {
		fs := c.shardOf(nm)
		fs.mu.Lock()
		fs.dropIndexLocked(nm, e)
		fs.mu.Unlock()
	}
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else if s.head == e {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else if s.tail == e {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) pushBack(e *entry) {
	e.prev, e.next = s.tail, nil
	if s.tail != nil {
		s.tail.next = e
	} else {
		s.head = e
	}
	s.tail = e
}

// evictOne evicts the least recently used entry of s, giving recently hit
// entries a second chance and never evicting keep (the entry whose store
// made the cache exceed its bounds). It reports whether one was evicted.
func (c *Cache) evictOne(s *shard, keep *entry) bool {
	s.mu.Lock()
	var victim *entry
	for range 64 {
		e := s.head
		if e == nil || (e == keep && e.next == nil) {
			break
		}
		if (e.ref.Load() || e == keep) && e.next != nil {
			e.ref.Store(false)
			s.unlink(e)
			s.pushBack(e)
			continue
		}
		victim = e
		break
	}
	if victim == nil {
		// All recently hit: the oldest goes, keep only if it is alone.
		if victim = s.head; victim == keep && victim != nil {
			victim = keep.next
		}
	}
	if victim == nil {
		s.mu.Unlock()
		return false
	}
	f, n := s.removeLocked(victim, "")
	s.mu.Unlock()
	c.unindex(victim)
	c.account(-n, -f)
	c.evictions.Add(1)
	return true
}

func (c *Cache) over() bool {
	if c.cfg.MaxEntries > 0 && c.entries.Load() > int64(c.cfg.MaxEntries) {
		return true
	}
	if c.maxBytes > 0 && c.bytes.Load() > c.maxBytes {
		return true
	}
	if b := c.cfg.Budget; b != nil && b.max > 0 && b.used.Load() > b.max && c.bytes.Load() > 0 {
		return true
	}
	return false
}

// enforce evicts until the cache is within its bounds, taking the shards
// in turn so that eviction order is close to global LRU; keep, the entry
// just stored, is evicted only when nothing else is left.
func (c *Cache) enforce(keep *entry) {
	idle := 0
	for c.over() && idle < nShards {
		if c.evictOne(&c.shards[c.cursor.Add(1)%nShards], keep) {
			idle = 0
		} else {
			idle++
		}
	}
	idle = 0
	for c.over() && idle < nShards {
		if c.evictOne(&c.shards[c.cursor.Add(1)%nShards], nil) {
			idle = 0
		} else {
			idle++
		}
	}
}
