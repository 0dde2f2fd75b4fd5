package factory_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// cacheProfile is a standalone profile with the cache on; extra is
// appended under the profile (indent 4).
const cacheProfile = `profiles:
  c:
    addr: %s
    protocol: %d
    db: %d
    timeouts:
      connect: 2s
      socket: 2s
    cache:
      enabled: true
      max_entries: 10000
      ttl: 1m
%s`

// cachedClient builds a cached client of a standalone profile.
func cachedClient(t testing.TB, addr string, protocol, db int, extra string) (*factory.Client, *runtime.Runtime) {
	t.Helper()
	cfg := load(t, cacheProfile, addr, protocol, db, extra)
	rt := runtime.New(runtime.Options{})
	c, err := factory.Build("c", cfg.Profiles["c"], rt, factory.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	return c, rt
}

func stats(t testing.TB, c *factory.Client) cache.Stats {
	t.Helper()
	s, ok := c.CacheStats()
	require.True(t, ok, "client has no cache")
	return s
}

// get reads key and reports whether the cache answered.
func get(t testing.TB, c *factory.Client, key string) (string, bool) {
	t.Helper()
	before := stats(t, c).Hits
	v, err := c.Get(context.Background(), key).Result()
	if errors.Is(err, redis.Nil) {
		v = "<nil>"
	} else {
		require.NoError(t, err)
	}
	return v, stats(t, c).Hits > before
}

// cached reads key until the cache answers it with want.
func cached(t testing.TB, c *factory.Client, key, want string) {
	t.Helper()
	redistest.Eventually(t, 5*time.Second, "cached "+key, func() bool {
		v, hit := get(t, c, key)
		return hit && v == want
	})
}

func TestCacheInvalidationByAnotherClient(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for _, proto := range []int{2, 3} {
		t.Run("resp"+strconv.Itoa(proto), func(t *testing.T) {
			c, _ := cachedClient(t, srv.Addr(), proto, 0, "")
			other := srv.Client(t)
			ctx := context.Background()
			key := "inval:" + strconv.Itoa(proto)
			require.NoError(t, other.Set(ctx, key, "v1", 0).Err())
			cached(t, c, key, "v1")

			// Another client's write: how long until reads through our
			// cache return it. (Not "until the invalidation count grows":
			// when two of our connections had read the key, the server
			// sends one invalidation per connection, and the second one of
			// the previous write can land after the next write was sent,
			// before that write's own invalidation — 4 in 300 runs.)
			var worst time.Duration
			for i := range 20 {
				want := "v" + strconv.Itoa(i+2)
				inv := stats(t, c).Invalidations
				start := time.Now()
				require.NoError(t, other.Set(ctx, key, want, 0).Err())
				redistest.Eventually(t, time.Second, "the other client's write read through the cache", func() bool {
					v, _ := get(t, c, key)
					return v == want
				})
				worst = max(worst, time.Since(start))
				require.Greater(t, stats(t, c).Invalidations, inv, "the server's invalidation dropped the old value")
				cached(t, c, key, want)
			}
			t.Logf("RESP%d: another client's write read through the cache at most %s after its SET was sent", proto, worst)
			require.Less(t, worst, 50*time.Millisecond)
		})
	}
}

func TestCacheReadYourWritesAndBypass(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 3, 0, "")
	ctx := context.Background()
	for i := range 200 {
		want := "w" + strconv.Itoa(i)
		require.NoError(t, c.Set(ctx, "ryw", want, 0).Err())
		v, err := c.Get(ctx, "ryw").Result()
		require.NoError(t, err)
		require.Equal(t, want, v, "iteration %d", i)
		v, err = c.Get(ctx, "ryw").Result() // usually a hit now
		require.NoError(t, err)
		require.Equal(t, want, v)
	}
	require.NotZero(t, stats(t, c).Hits)

	// Bypass: never a hit, never stored.
	cached(t, c, "ryw", "w199")
	before := stats(t, c)
	for range 10 {
		v, err := c.Get(cache.Bypass(ctx), "ryw").Result()
		require.NoError(t, err)
		require.Equal(t, "w199", v)
	}
	after := stats(t, c)
	require.Equal(t, before.Hits, after.Hits)
	require.Equal(t, before.Misses, after.Misses)

	// A command outside the allow list is never cached.
	require.NoError(t, c.Set(ctx, "counter", "1", 0).Err())
	before = stats(t, c)
	for range 5 {
		require.ErrorIs(t, c.GetDel(ctx, "nothing").Err(), redis.Nil) // not on the allow list
	}
	require.Equal(t, before.Hits, stats(t, c).Hits)
}

func TestCacheHashAndOtherTypes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 2, 0, "")
	ctx := context.Background()
	other := srv.Client(t)
	require.NoError(t, other.HSet(ctx, "h", "a", "1", "b", "2").Err())
	require.NoError(t, other.RPush(ctx, "l", "x", "y").Err())
	require.NoError(t, other.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "m"}).Err())
	for range 3 {
		m, err := c.HGetAll(ctx, "h").Result()
		require.NoError(t, err)
		require.Equal(t, map[string]string{"a": "1", "b": "2"}, m)
		m["mutated"] = "by caller" // must not reach the cache
		l, err := c.LRange(ctx, "l", 0, -1).Result()
		require.NoError(t, err)
		require.Equal(t, []string{"x", "y"}, l)
		n, err := c.LLen(ctx, "l").Result()
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		ok, err := c.HExists(ctx, "h", "a").Result()
		require.NoError(t, err)
		require.True(t, ok)
		f, err := c.ZScore(ctx, "z", "m").Result()
		require.NoError(t, err)
		require.Equal(t, 1.0, f)
		vals, err := c.MGet(ctx, "h:none", "h:none2").Result()
		require.NoError(t, err)
		require.Equal(t, []any{nil, nil}, vals)
		_, err = c.Get(ctx, "missing").Result()
		require.ErrorIs(t, err, redis.Nil)
	}
	s := stats(t, c)
	require.GreaterOrEqual(t, s.Hits, uint64(10), "%+v", s)
	require.NoError(t, other.HSet(ctx, "h", "c", "3").Err())
	redistest.Eventually(t, time.Second, "hash invalidated", func() bool {
		m, err := c.HGetAll(ctx, "h").Result()
		require.NoError(t, err)
		return len(m) == 3
	})
}

func TestCacheFlushAll(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, rt := cachedClient(t, srv.Addr(), 2, 3, "")
	ev, stop := collect(rt, runtime.CacheFlushed)
	defer stop()
	ctx := context.Background()
	other := srv.Client(t)
	other3 := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	defer other3.Close()
	require.NoError(t, other3.Set(ctx, "f", "1", 0).Err())
	cached(t, c, "f", "1")
	require.NoError(t, other.FlushAll(ctx).Err())
	redistest.Eventually(t, time.Second, "flush", func() bool { return stats(t, c).Flushes > 0 })
	v, _ := get(t, c, "f")
	require.Equal(t, "<nil>", v)
	redistest.Eventually(t, time.Second, "flush event", func() bool { return ev.count(runtime.CacheFlushed) > 0 })
	// The flush through the client itself flushes at once.
	require.NoError(t, other3.Set(ctx, "f", "2", 0).Err())
	cached(t, c, "f", "2")
	require.NoError(t, c.FlushDB(ctx).Err())
	v, _ = get(t, c, "f")
	require.Equal(t, "<nil>", v)
}

func TestCacheDB3(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 3, 3, "")
	ctx := context.Background()
	other3 := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 3})
	defer other3.Close()
	require.NoError(t, other3.Set(ctx, "k", "db3-a", 0).Err())
	cached(t, c, "k", "db3-a")
	require.NoError(t, other3.Set(ctx, "k", "db3-b", 0).Err())
	redistest.Eventually(t, time.Second, "db 3 invalidation", func() bool { v, _ := get(t, c, "k"); return v == "db3-b" })
	// A write to the same name in db 0 drops it too (tracking is by name).
	cached(t, c, "k", "db3-b")
	inv := stats(t, c).Invalidations
	require.NoError(t, srv.Client(t).Set(ctx, "k", "db0", 0).Err())
	redistest.Eventually(t, time.Second, "cross-db invalidation", func() bool { return stats(t, c).Invalidations > inv })
	v, _ := get(t, c, "k")
	require.Equal(t, "db3-b", v)
}

func TestCacheBoundsAndTTL(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	t.Run("entries", func(t *testing.T) {
		cfg := load(t, `profiles:
  c:
    addr: %s
    cache:
      enabled: true
      max_entries: 10
      max_bytes: 0
`, srv.Addr())
		rt := runtime.New(runtime.Options{})
		defer rt.Close(ctx)
		c, err := factory.Build("c", cfg.Profiles["c"], rt, factory.BuildOptions{})
		require.NoError(t, err)
		defer c.Close()
		cached(t, c, "warm", "<nil>")
		for i := range 100 {
			_ = c.Get(ctx, "b:"+strconv.Itoa(i)).Err()
			require.LessOrEqual(t, stats(t, c).Entries, int64(10))
		}
		s := stats(t, c)
		require.EqualValues(t, 10, s.Entries)
		require.GreaterOrEqual(t, s.Evictions, uint64(90))
	})
	t.Run("bytes and shared budget", func(t *testing.T) {
		cfg := load(t, `profiles:
  a:
    addr: %[1]s
    cache:
      enabled: true
      max_entries: 0
      max_bytes: 64KiB
  b:
    addr: %[1]s
    cache:
      enabled: true
      max_entries: 0
      max_bytes: 64KiB
`, srv.Addr())
		rt := runtime.New(runtime.Options{})
		defer rt.Close(ctx)
		budget := cache.NewBudget(80 << 10)
		factory.SetCacheBudget(rt, budget)
		f := newFactory(t, cfg, factory.Options{Runtime: rt})
		big := string(make([]byte, 4<<10))
		require.NoError(t, srv.Client(t).Set(ctx, "big", big, 0).Err())
		for _, name := range []string{"a", "b"} {
			c, err := f.Lookup(name)
			require.NoError(t, err)
			cached(t, c, "big", big)
			for i := range 40 {
				k := "big" + strconv.Itoa(i)
				require.NoError(t, srv.Client(t).Set(ctx, k, big, 0).Err())
				require.NoError(t, c.Get(ctx, k).Err())
				require.LessOrEqual(t, stats(t, c).Bytes, int64(64<<10))
				require.LessOrEqual(t, budget.Used(), int64(80<<10))
			}
			require.NotZero(t, stats(t, c).Evictions)
		}
	})
	t.Run("ttl", func(t *testing.T) {
		c, _ := cachedClient(t, srv.Addr(), 3, 0, "")
		_ = c
		cfg := load(t, `profiles:
  c:
    addr: %s
    cache:
      enabled: true
      ttl: 50ms
`, srv.Addr())
		rt := runtime.New(runtime.Options{})
		defer rt.Close(ctx)
		tc, err := factory.Build("c", cfg.Profiles["c"], rt, factory.BuildOptions{})
		require.NoError(t, err)
		defer tc.Close()
		require.NoError(t, srv.Client(t).Set(ctx, "ttl", "1", 0).Err())
		cached(t, tc, "ttl", "1")
		start := time.Now()
		redistest.Eventually(t, time.Second, "expiry", func() bool { _, hit := get(t, tc, "ttl"); return !hit })
		require.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond)
	})
}

func TestCacheSingleFlight(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	px := redistest.NewProxy(t, srv.Addr())
	c, _ := cachedClient(t, px.Addr(), 3, 0, "    pool:\n      size: 64\n")
	ctx := context.Background()
	require.NoError(t, srv.Client(t).Set(ctx, "sf", "v", 0).Err())
	cached(t, c, "warmup", "<nil>")
	px.Delay(20 * time.Millisecond) // keep the first GET in flight
	px.ResetCommands()
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, err := c.Get(ctx, "sf").Result(); err != nil || v != "v" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	px.Delay(0)
	require.Zero(t, bad.Load())
	require.Equal(t, 1, px.Count("get"), "GETs sent for 50 concurrent misses")
}

func TestCacheUnknownProfileHasNoStats(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, "profiles:\n  p:\n    addr: %s\n", srv.Addr())
	rt := runtime.New(runtime.Options{})
	defer rt.Close(context.Background())
	c, err := factory.Build("p", cfg.Profiles["p"], rt, factory.BuildOptions{})
	require.NoError(t, err)
	defer c.Close()
	_, ok := c.CacheStats()
	require.False(t, ok)
	_ = fmt.Sprint()
}
