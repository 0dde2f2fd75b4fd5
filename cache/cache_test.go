package cache_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// The tests drive the cache only through its public API, wired onto real
// go-redis clients talking to a real redis-server.

var bg = context.Background()

func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// baseConfig is a cache of GET, MGET and HGETALL with a generous bound.
func baseConfig() cache.Config {
	return cache.Config{
		MaxEntries: 10000,
		Commands:   []string{"GET", "mget", "HGetAll"},
		Dial:       dial,
		ClientName: "cachetest",
	}
}

// sent is a go-redis hook installed after (inside) the cache's hook: it
// sees exactly the commands that go to the server, pipelined ones too, and
// can hold GETs back to keep a fetch in flight.
type sent struct {
	mu       sync.Mutex
	n        map[string]int
	getDelay atomic.Int64 // ns
}

func (s *sent) count(cmd redis.Cmder) {
	s.mu.Lock()
	s.n[cmd.Name()]++
	s.mu.Unlock()
}

// Count returns how many name (lower case) commands reached the server.
func (s *sent) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[name]
}

func (s *sent) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *sent) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.count(cmd)
		if d := s.getDelay.Load(); d > 0 && cmd.Name() == "get" {
			time.Sleep(time.Duration(d))
		}
		return next(ctx, cmd)
	}
}

func (s *sent) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			s.count(cmd)
		}
		return next(ctx, cmds)
	}
}

// invalidations records OnInvalidate calls and lets a test wait for the
// next one naming a key (or for the next flush, key "").
type invalidations struct {
	mu    sync.Mutex
	subs  map[string][]chan time.Time
	calls atomic.Int64
}

func (iv *invalidations) record(keys []string) {
	at := time.Now()
	iv.calls.Add(1)
	names := keys
	if keys == nil {
		names = []string{""}
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	for _, k := range names {
		for _, ch := range iv.subs[k] {
			ch <- at // buffered, used once: never blocks
		}
		delete(iv.subs, k)
	}
}

// next returns a channel that receives the time of the next OnInvalidate
// call naming key ("" for a flush).
func (iv *invalidations) next(key string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	iv.mu.Lock()
	iv.subs[key] = append(iv.subs[key], ch)
	iv.mu.Unlock()
	return ch
}

// await waits up to d for ch and returns the time it carried.
func await(t testing.TB, ch <-chan time.Time, d time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-ch:
		return at
	case <-time.After(d):
		t.Fatalf("%s: no OnInvalidate within %s", what, d)
		return time.Time{}
	}
}

// env is a go-redis client with a cache, and what the tests watch it with.
type env struct {
	c    *cache.Cache
	cl   *redis.Client
	sent *sent
	inv  *invalidations
}

// newEnv builds a cached client of srv. cfg.OnInvalidate, if set, is
// called after the env's own recording. The client and the cache are
// closed when the test ends. It returns once the invalidation connection
// is up, so that the first miss is stored.
func newEnv(t testing.TB, srv *redistest.Server, cfg cache.Config, opt func(*redis.Options)) *env {
	t.Helper()
	e := &env{sent: &sent{n: map[string]int{}}, inv: &invalidations{subs: map[string][]chan time.Time{}}}
	user := cfg.OnInvalidate
	cfg.OnInvalidate = func(keys []string) {
		e.inv.record(keys)
		if user != nil {
			user(keys)
		}
	}
	e.c = cache.New(cfg)
	opts := srv.RedisOptions()
	if opt != nil {
		opt(opts)
	}
	e.cl = redis.NewClient(opts)
	e.cl.AddHook(e.c.Hook())
	e.cl.AddHook(e.sent)
	t.Cleanup(func() {
		_ = e.cl.Close()
		_ = e.c.Close()
	})
	require.NoError(t, e.cl.Ping(bg).Err()) // dials: creates the node
	redistest.Eventually(t, 5*time.Second, "invalidation connection up", func() bool { return e.c.Stats().ChannelsUp == 1 })
	return e
}

// get reads key through the cached client and reports whether the cache
// answered it.
func (e *env) get(t testing.TB, key string) (string, bool) {
	t.Helper()
	before := e.c.Stats().Hits
	v, err := e.cl.Get(bg, key).Result()
	if errors.Is(err, redis.Nil) {
		v = "<nil>"
	} else {
		require.NoError(t, err)
	}
	return v, e.c.Stats().Hits > before
}

func TestCacheHitAfterMiss(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	require.NoError(t, other.Set(bg, "s", "v", 0).Err())
	require.NoError(t, other.Set(bg, "s2", "w", 0).Err())
	require.NoError(t, other.HSet(bg, "h", "a", "1", "b", "2").Err())
	cases := []struct {
		name string
		cmd  string // as the sent hook sees it
		read func(cl *redis.Client) (any, error)
		want any
	}{
		{"get", "get", func(cl *redis.Client) (any, error) { return cl.Get(bg, "s").Result() }, "v"},
		{"get missing key (nil reply)", "get", func(cl *redis.Client) (any, error) {
			_, err := cl.Get(bg, "missing").Result()
			if errors.Is(err, redis.Nil) {
				return "redis.Nil", nil
			}
			return nil, err
		}, "redis.Nil"},
		{"mget", "mget", func(cl *redis.Client) (any, error) { return cl.MGet(bg, "s", "missing", "s2").Result() },
			[]any{"v", nil, "w"}},
		{"hgetall", "hgetall", func(cl *redis.Client) (any, error) { return cl.HGetAll(bg, "h").Result() },
			map[string]string{"a": "1", "b": "2"}},
	}
	for _, proto := range []int{2, 3} {
		e := newEnv(t, srv, baseConfig(), func(o *redis.Options) { o.Protocol = proto })
		for _, tc := range cases {
			t.Run(fmt.Sprintf("resp%d/%s", proto, tc.name), func(t *testing.T) {
				s0, n0 := e.c.Stats(), e.sent.Count(tc.cmd)
				got, err := tc.read(e.cl)
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
				s1 := e.c.Stats()
				assert.Equal(t, s0.Misses+1, s1.Misses, "first read is a miss")
				assert.Equal(t, s0.Hits, s1.Hits)
				assert.Equal(t, s0.Entries+1, s1.Entries, "the miss is stored")
				assert.Equal(t, n0+1, e.sent.Count(tc.cmd))

				for range 3 {
					got, err = tc.read(e.cl)
					require.NoError(t, err)
					require.Equal(t, tc.want, got)
				}
				s2 := e.c.Stats()
				assert.Equal(t, s1.Hits+3, s2.Hits, "the next reads are hits")
				assert.Equal(t, s1.Misses, s2.Misses)
				assert.Equal(t, n0+1, e.sent.Count(tc.cmd), "hits never reach the server")
				assert.Positive(t, s2.Bytes)
			})
		}
	}
}

// TestCacheInvalidationByAnotherClient measures how long after another
// client's SET was acknowledged its invalidation is applied (OnInvalidate
// for the key), and checks that the next read then is a miss returning the
// new value.
func TestCacheInvalidationByAnotherClient(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	for _, proto := range []int{2, 3} {
		t.Run("resp"+strconv.Itoa(proto), func(t *testing.T) {
			e := newEnv(t, srv, baseConfig(), func(o *redis.Options) { o.Protocol = proto })
			key := "inval:" + strconv.Itoa(proto)
			require.NoError(t, other.Set(bg, key, "v0", 0).Err())
			const n = 200
			lat := make([]time.Duration, 0, n)
			early := 0
			v, hit := e.get(t, key) // the miss that caches (and tracks) it
			require.Equal(t, "v0", v)
			require.False(t, hit)
			for i := range n {
				old := "v" + strconv.Itoa(i)
				v, hit = e.get(t, key)
				require.Equal(t, old, v)
				require.True(t, hit, "iteration %d: cached", i)

				want := "v" + strconv.Itoa(i+1)
				ch := e.inv.next(key)
				require.NoError(t, other.Set(bg, key, want, 0).Err())
				ack := time.Now()
				at := await(t, ch, time.Second, "invalidation of "+key)
				d := at.Sub(ack)
				if d < 0 { // applied before the client had read the SET's reply
					early++
					d = 0
				}
				lat = append(lat, d)
				v, hit = e.get(t, key)
				require.Equal(t, want, v, "iteration %d: read after the invalidation", i)
				require.False(t, hit)
			}
			slices.Sort(lat)
			t.Logf("RESP%d data connections: invalidation applied after the other client's SET ack: p50 %s, p99 %s, max %s over %d writes (%d applied before the ack)",
				proto, lat[n/2], lat[n*99/100], lat[n-1], n, early)
			require.Less(t, lat[n-1], time.Second)
			require.GreaterOrEqual(t, e.c.Stats().Invalidations, uint64(n))
		})
	}
}

func TestCacheServerFlush(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	cases := []struct {
		name  string
		flush func() error
	}{
		{"flushall", func() error { return other.FlushAll(bg).Err() }},
		{"flushdb", func() error { return other.FlushDB(bg).Err() }},
		{"flushall async", func() error { return other.FlushAllAsync(bg).Err() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reasons []string
			var mu sync.Mutex
			cfg := baseConfig()
			cfg.OnFlush = func(r string) { mu.Lock(); reasons = append(reasons, r); mu.Unlock() }
			e := newEnv(t, srv, cfg, nil)
			for i := range 5 {
				k := "f" + strconv.Itoa(i)
				require.NoError(t, other.Set(bg, k, "1", 0).Err())
				e.get(t, k)
				_, hit := e.get(t, k)
				require.True(t, hit)
			}
			require.EqualValues(t, 5, e.c.Stats().Entries)
			ch := e.inv.next("") // OnInvalidate(nil)
			require.NoError(t, tc.flush())
			await(t, ch, time.Second, "flush")
			s := e.c.Stats()
			require.Zero(t, s.Entries)
			require.Zero(t, s.Bytes)
			require.EqualValues(t, 1, s.Flushes)
			mu.Lock()
			require.Len(t, reasons, 1)
			mu.Unlock()
			v, hit := e.get(t, "f0")
			require.Equal(t, "<nil>", v)
			require.False(t, hit)
		})
	}
}

// TestCacheNeverTouched: a bypassed read, a read outside the allow list
// and reads in pipelines always go to the server, are never answered from
// the cache and never fill it, even for a key whose GET is cached. A
// read-only command outside the allow list leaves the cached entries
// alone; any other command counts as a possible write and drops the
// entries on the keys it names (read-your-writes).
func TestCacheNeverTouched(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	cfg := baseConfig()
	cfg.Commands = []string{"GET"}
	e := newEnv(t, srv, cfg, nil)
	require.NoError(t, other.Set(bg, "k", "value", 0).Err())
	cases := []struct {
		name string
		cmd  string
		op   func(ctx context.Context) (any, error)
		want any
		// drops: the command may write, so it drops the cached GET k
		// (read-your-writes).
		drops bool
	}{
		{"bypassed get", "get", func(ctx context.Context) (any, error) {
			return e.cl.Get(cache.Bypass(ctx), "k").Result()
		}, "value", false},
		{"bypassed get of an uncached key", "get", func(ctx context.Context) (any, error) {
			return e.cl.Get(cache.Bypass(ctx), "k2").Result()
		}, "other", false},
		{"strlen (known, not allowed)", "strlen", func(ctx context.Context) (any, error) {
			return e.cl.StrLen(ctx, "k").Result()
		}, int64(5), false},
		{"mget (known, not allowed)", "mget", func(ctx context.Context) (any, error) {
			return e.cl.MGet(ctx, "k").Result()
		}, []any{"value"}, false},
		{"object encoding (not known, so a possible write)", "object", func(ctx context.Context) (any, error) {
			return e.cl.ObjectEncoding(ctx, "k").Result()
		}, "embstr", true},
		{"get in a pipeline", "get", func(ctx context.Context) (any, error) {
			cmds, err := e.cl.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "k"); return nil })
			if err != nil {
				return nil, err
			}
			return cmds[0].(*redis.StringCmd).Result()
		}, "value", false},
		{"get in a transaction", "get", func(ctx context.Context) (any, error) {
			cmds, err := e.cl.TxPipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "k"); return nil })
			if err != nil {
				return nil, err
			}
			return cmds[0].(*redis.StringCmd).Result()
		}, "value", false},
	}
	require.NoError(t, other.Set(bg, "k2", "other", 0).Err())
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, hit := e.get(t, "k") // GET k cached
			if !hit {
				_, hit = e.get(t, "k")
			}
			require.True(t, hit)
			s0, n0 := e.c.Stats(), e.sent.Count(tc.cmd)
			for range 3 {
				got, err := tc.op(bg)
				require.NoError(t, err)
				require.Equal(t, tc.want, got)
			}
			s1 := e.c.Stats()
			assert.Equal(t, n0+3, e.sent.Count(tc.cmd), "every call reached the server")
			assert.Equal(t, s0.Hits, s1.Hits)
			assert.Equal(t, s0.Misses, s1.Misses)
			if tc.drops {
				assert.Equal(t, s0.Entries-1, s1.Entries, "GET k dropped, nothing filled")
			} else {
				assert.Equal(t, s0.Entries, s1.Entries, "nothing filled")
				assert.Equal(t, s0.Bytes, s1.Bytes)
			}
			// The entry of GET k is untouched (a hit), or was dropped.
			_, hit = e.get(t, "k")
			assert.Equal(t, !tc.drops, hit)
		})
	}
	// An uncached key read only through those paths is still a miss.
	_, hit := e.get(t, "k2")
	require.False(t, hit)
}

// TestCacheSingleFlight: concurrent misses of one command share one round trip.
func TestCacheSingleFlight(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	e := newEnv(t, srv, baseConfig(), func(o *redis.Options) { o.PoolSize = 64 })
	require.NoError(t, srv.Client(t).Set(bg, "sf", "v", 0).Err())
	const n = 50
	e.sent.getDelay.Store(int64(200 * time.Millisecond)) // keep the leader's GET in flight
	start := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if v, err := e.cl.Get(bg, "sf").Result(); err != nil || v != "v" {
				bad.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	e.sent.getDelay.Store(0)
	require.Zero(t, bad.Load())
	require.Equal(t, 1, e.sent.Count("get"), "GETs sent for %d concurrent misses", n)
	_, hit := e.get(t, "sf")
	require.True(t, hit)
	require.Equal(t, 1, e.sent.Count("get"))
}

func TestCacheBounds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	val := strings.Repeat("x", 1<<10)
	for i := range 100 {
		require.NoError(t, other.Set(bg, "b:"+strconv.Itoa(i), val, 0).Err())
	}
	cases := []struct {
		name       string
		maxEntries int
		maxBytes   int64
	}{
		{"max entries", 10, 0},
		{"max bytes", 0, 16 << 10},
		{"both", 50, 8 << 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.MaxEntries, cfg.MaxBytes = tc.maxEntries, tc.maxBytes
			e := newEnv(t, srv, cfg, nil)
			for i := range 100 {
				k := "b:" + strconv.Itoa(i)
				v, hit := e.get(t, k)
				require.Equal(t, val, v)
				require.False(t, hit)
				s := e.c.Stats()
				if tc.maxEntries > 0 {
					require.LessOrEqual(t, s.Entries, int64(tc.maxEntries))
				}
				if tc.maxBytes > 0 {
					require.LessOrEqual(t, s.Bytes, tc.maxBytes)
				}
				// The entry just stored is never the one its store evicts.
				_, hit = e.get(t, k)
				require.True(t, hit, "%s was evicted by its own store", k)
			}
			s := e.c.Stats()
			t.Logf("%+v", s)
			require.Positive(t, s.Entries)
			require.EqualValues(t, 100, uint64(s.Entries)+s.Evictions, "every miss stored, the rest evicted")
		})
	}
}

func TestCacheTTL(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	require.NoError(t, srv.Client(t).Set(bg, "ttl", "1", 0).Err())
	const ttl = 100 * time.Millisecond
	cfg := baseConfig()
	cfg.TTL = ttl
	e := newEnv(t, srv, cfg, nil)
	before := time.Now()
	_, hit := e.get(t, "ttl")
	require.False(t, hit)
	stored := time.Now() // the entry was stored between before and stored
	hits := 0
	var lived time.Duration
	for {
		begin := time.Now()
		_, hit := e.get(t, "ttl")
		if !hit {
			lived = begin.Sub(before)
			break
		}
		hits++
		require.Less(t, begin.Sub(stored), ttl, "a hit more than the TTL after the entry was stored")
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("entry answered %d hits, expired %s after it was fetched (TTL %s)", hits, lived, ttl)
	require.Positive(t, hits)
	require.GreaterOrEqual(t, lived, ttl/2, "expired long before its TTL")
	_, hit = e.get(t, "ttl") // refilled by the miss
	require.True(t, hit)
}

// TestCacheBudget: two caches share a Budget; each stays within its own
// MaxBytes, together they stay within the budget, and a cache that needs
// room evicts its own entries, never the other's.
func TestCacheBudget(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other := srv.Client(t)
	val := strings.Repeat("y", 2<<10)
	for i := range 40 {
		require.NoError(t, other.Set(bg, "big:"+strconv.Itoa(i), val, 0).Err())
	}
	budget := cache.NewBudget(48 << 10)
	cfg := baseConfig()
	cfg.MaxEntries, cfg.MaxBytes, cfg.Budget = 0, 40<<10, budget
	a := newEnv(t, srv, cfg, nil)
	b := newEnv(t, srv, cfg, nil)
	check := func() {
		t.Helper()
		sa, sb := a.c.Stats(), b.c.Stats()
		require.LessOrEqual(t, sa.Bytes, cfg.MaxBytes)
		require.LessOrEqual(t, sb.Bytes, cfg.MaxBytes)
		require.LessOrEqual(t, budget.Used(), budget.Max())
		require.Equal(t, sa.Bytes+sb.Bytes, budget.Used())
	}
	for i := range 40 {
		a.get(t, "big:"+strconv.Itoa(i))
		check()
	}
	sa := a.c.Stats()
	require.Positive(t, sa.Evictions, "a is bounded by its MaxBytes")
	for i := range 40 {
		b.get(t, "big:"+strconv.Itoa(i))
		check()
	}
	sb := b.c.Stats()
	t.Logf("a %+v; b %+v; budget %d/%d", a.c.Stats(), sb, budget.Used(), budget.Max())
	require.Positive(t, sb.Entries)
	require.Positive(t, sb.Evictions)
	require.Less(t, sb.Bytes, cfg.MaxBytes, "b is bounded by what a leaves of the budget")
	require.Equal(t, sa, a.c.Stats(), "b's stores did not evict a's entries")
	require.NoError(t, a.c.Close())
	require.Equal(t, sb.Bytes, budget.Used(), "a closed gives its bytes back")
	require.NoError(t, b.c.Close())
	require.Zero(t, budget.Used())
}

// TestCacheOtherDB: a cache of a client of db 3 is invalidated by writes to db
// 3, and (tracking is by key name) conservatively by writes to the same
// name in db 0, without ever returning db 0's value.
func TestCacheOtherDB(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	other0 := srv.Client(t)
	o3 := srv.RedisOptions()
	o3.DB = 3
	other3 := redis.NewClient(o3)
	defer other3.Close()
	for _, proto := range []int{2, 3} {
		t.Run("resp"+strconv.Itoa(proto), func(t *testing.T) {
			e := newEnv(t, srv, baseConfig(), func(o *redis.Options) { o.DB, o.Protocol = 3, proto })
			require.NoError(t, other3.Set(bg, "k", "db3-a", 0).Err())
			require.NoError(t, other0.Set(bg, "k", "db0-a", 0).Err())
			v, _ := e.get(t, "k")
			require.Equal(t, "db3-a", v)
			v, hit := e.get(t, "k")
			require.Equal(t, "db3-a", v)
			require.True(t, hit)

			ch := e.inv.next("k")
			require.NoError(t, other3.Set(bg, "k", "db3-b", 0).Err())
			await(t, ch, time.Second, "db 3 write")
			v, hit = e.get(t, "k")
			require.Equal(t, "db3-b", v)
			require.False(t, hit)

			ch = e.inv.next("k")
			require.NoError(t, other0.Set(bg, "k", "db0-b", 0).Err())
			await(t, ch, time.Second, "db 0 write to the same name")
			v, hit = e.get(t, "k")
			require.Equal(t, "db3-b", v)
			require.False(t, hit)

			// Writes through the client itself go to db 3 and are read back.
			require.NoError(t, e.cl.Set(bg, "k", "db3-c", 0).Err())
			v, _ = e.get(t, "k")
			require.Equal(t, "db3-c", v)
			require.Equal(t, "db0-b", other0.Get(bg, "k").Val())
		})
	}
}

// TestCacheClose: Close stops the cache's goroutines and closes its
// invalidation connections; a closed cache no longer stores, while its
// client keeps working.
func TestCacheClose(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	require.NoError(t, admin.Ping(bg).Err())
	require.NoError(t, admin.Set(bg, "k", "v", 0).Err())
	invalidationConns := func() int {
		list, err := admin.ClientList(bg).Result()
		require.NoError(t, err)
		return strings.Count(list, " name=closetest-invalidations ")
	}
	ignore := goleak.IgnoreCurrent()

	cfg := baseConfig()
	cfg.ClientName = "closetest"
	c := cache.New(cfg)
	cl := redis.NewClient(srv.RedisOptions())
	cl.AddHook(c.Hook())
	require.NoError(t, cl.Ping(bg).Err())
	redistest.Eventually(t, 5*time.Second, "channel up", func() bool { return c.Stats().ChannelsUp == 1 })
	require.Equal(t, 1, invalidationConns())
	require.NoError(t, cl.Get(bg, "k").Err())
	require.EqualValues(t, 1, c.Stats().Entries)

	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close twice")
	s := c.Stats()
	require.Zero(t, s.Entries)
	require.Zero(t, s.ChannelsUp)
	redistest.Eventually(t, 2*time.Second, "invalidation connection closed on the server", func() bool { return invalidationConns() == 0 })

	// The client still works; nothing is cached any more.
	for range 3 {
		v, err := cl.Get(bg, "k").Result()
		require.NoError(t, err)
		require.Equal(t, "v", v)
	}
	require.Zero(t, c.Stats().Entries)
	require.Zero(t, c.Stats().Hits)
	require.NoError(t, cl.Close())
	goleak.VerifyNone(t, ignore)
	require.Equal(t, 0, invalidationConns())
}
