package factory_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// build builds profile name of a YAML configuration.
func build(t testing.TB, name, doc string, args ...any) (*factory.Client, *runtime.Runtime) {
	t.Helper()
	cfg := load(t, doc, args...)
	rt := runtime.New(runtime.Options{})
	c, err := factory.Build(name, cfg.Profiles[name], rt, factory.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	return c, rt
}

// invalidationID returns the client id of the cache's invalidation
// connection on a server: the id tracking connections redirect to.
func invalidationID(t testing.TB, srv *redistest.Server) string {
	t.Helper()
	list, err := srv.Client(t).ClientList(context.Background()).Result()
	require.NoError(t, err)
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if id, ok := strings.CutPrefix(f, "redir="); ok && id != "-1" {
				return id
			}
		}
	}
	t.Fatalf("no tracking connection in:\n%s", list)
	return ""
}

func TestCacheInvalidationConnectionKilled(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for _, proto := range []int{2, 3} {
		t.Run("resp"+strconv.Itoa(proto), func(t *testing.T) {
			c, rt := cachedClient(t, srv.Addr(), proto, 0, "")
			ev, stop := collect(rt, runtime.CacheFlushed, runtime.CacheChannelDown, runtime.CacheChannelUp)
			defer stop()
			ctx := context.Background()
			other := srv.Client(t)
			key := "kill:" + strconv.Itoa(proto)
			require.NoError(t, other.Set(ctx, key, "before", 0).Err())
			cached(t, c, key, "before")

			require.NoError(t, other.Do(ctx, "CLIENT", "KILL", "ID", invalidationID(t, srv)).Err())
			redistest.Eventually(t, time.Second, "flush after the channel was lost", func() bool { return stats(t, c).Flushes > 0 })
			// A write while (or just after) the channel is down is never hidden.
			require.NoError(t, other.Set(ctx, key, "during", 0).Err())
			v, _ := get(t, c, key)
			require.Equal(t, "during", v)

			// Caching resumes by itself, and invalidations work again
			// through the same pooled connections.
			cached(t, c, key, "during")
			require.NoError(t, other.Set(ctx, key, "after", 0).Err())
			redistest.Eventually(t, time.Second, "invalidation after reconnect", func() bool { v, _ := get(t, c, key); return v == "after" })
			require.NotZero(t, ev.count(runtime.CacheChannelDown))
			require.NotZero(t, ev.count(runtime.CacheChannelUp))
			require.NotZero(t, ev.count(runtime.CacheFlushed))
		})
	}
}

func TestCacheServerRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 3, 0, "")
	ctx := context.Background()
	require.NoError(t, srv.Client(t).Set(ctx, "r", "before", 0).Err())
	cached(t, c, "r", "before")
	srv.Kill()
	srv.Restart(t)
	// The restarted server is empty: "before" must never come back.
	redistest.Eventually(t, 5*time.Second, "read after restart", func() bool {
		v, err := c.Get(ctx, "r").Result()
		require.NotEqual(t, "before", v, "stale value served after a restart")
		return err != nil && err.Error() == "redis: nil"
	})
	require.NoError(t, srv.Client(t).Set(ctx, "r", "after", 0).Err())
	cached(t, c, "r", "after")
	require.NoError(t, srv.Client(t).Set(ctx, "r", "after2", 0).Err())
	redistest.Eventually(t, time.Second, "invalidation after restart", func() bool { v, _ := get(t, c, "r"); return v == "after2" })
}

func TestCacheSentinelFailover(t *testing.T) {
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{})
	c, _ := build(t, "s", "%s", sentinelFailoverProfile(sn, "s", "    cache:\n      enabled: true\n      max_entries: 1000\n"))
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "s", "1", 0).Err())
	cached(t, c, "s", "1")
	// Invalidations work through sentinel.
	admin := sn.Master().Client(t)
	require.NoError(t, admin.Set(ctx, "s", "2", 0).Err())
	redistest.Eventually(t, time.Second, "invalidation", func() bool { v, _ := get(t, c, "s"); return v == "2" })
	cached(t, c, "s", "2")

	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sn.Failover(fctx))
	newMaster := sn.Master().Client(t)
	// Write on the new master directly; the cache must not keep "2".
	redistest.Eventually(t, 10*time.Second, "write on the new master", func() bool { return newMaster.Set(ctx, "s", "3", 0).Err() == nil })
	var last string
	redistest.Eventually(t, 10*time.Second, "fresh read after failover", func() bool {
		v, err := c.Get(ctx, "s").Result()
		if l := fmt.Sprint(v, err, stats(t, c)); l != last {
			last = l
			t.Log(l)
		}
		return err == nil && v == "3"
	})
	t.Log(last)
	cached(t, c, "s", "3")
	require.NoError(t, newMaster.Set(ctx, "s", "4", 0).Err())
	redistest.Eventually(t, time.Second, "invalidation after failover", func() bool { v, _ := get(t, c, "s"); return v == "4" })
	require.NotZero(t, stats(t, c).Flushes)
}

func TestCacheBroadcast(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 2, 0, "      mode: broadcast\n      prefixes: [\"user:\", \"cfg:\"]\n")
	ctx := context.Background()
	other := srv.Client(t)
	require.NoError(t, other.Set(ctx, "user:1", "a", 0).Err())
	cached(t, c, "user:1", "a")
	require.NoError(t, other.Set(ctx, "user:1", "b", 0).Err())
	redistest.Eventually(t, time.Second, "broadcast invalidation", func() bool { v, _ := get(t, c, "user:1"); return v == "b" })
	require.NoError(t, other.Set(ctx, "cfg:x", "1", 0).Err())
	cached(t, c, "cfg:x", "1")
	inv := stats(t, c).Invalidations
	require.NoError(t, other.Set(ctx, "cfg:y", "never read", 0).Err()) // a key we never read is announced too
	redistest.Eventually(t, time.Second, "broadcast of an unread key", func() bool { return stats(t, c).Invalidations > inv })
	v, hit := get(t, c, "cfg:x")
	require.True(t, hit)
	require.Equal(t, "1", v)

	// A key outside the prefixes is never announced, so it is never
	// cached: another client's write to it is seen at once.
	require.NoError(t, other.Set(ctx, "session:1", "a", 0).Err())
	for range 3 {
		v, hit := get(t, c, "session:1")
		require.False(t, hit, "a key outside the prefixes was answered from the cache")
		require.Equal(t, "a", v)
	}
	require.NoError(t, other.Set(ctx, "session:1", "b", 0).Err())
	v, _ = get(t, c, "session:1")
	require.Equal(t, "b", v)
	// MGET is cached only when every key is under a prefix.
	for range 2 {
		require.NoError(t, c.MGet(ctx, "user:1", "session:1").Err())
	}
	require.NoError(t, other.Set(ctx, "session:1", "c", 0).Err())
	vals, err := c.MGet(ctx, "user:1", "session:1").Result()
	require.NoError(t, err)
	require.Equal(t, "c", vals[1])
}

func TestCacheCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	a := cl.Addrs()
	c, _ := build(t, "k", `profiles:
  k:
    mode: cluster
    addrs: [%s, %s, %s]
    cache:
      enabled: true
      max_entries: 1000
`, a[0], a[1], a[2])
	ctx := context.Background()
	other := cl.Client(t)
	nodes := map[string]string{} // node -> a key on it
	for i := 0; len(nodes) < 3; i++ {
		k := fmt.Sprintf("ck:%d", i)
		nodes[cl.NodeForKey(k).Addr()] = k
	}
	for _, k := range nodes {
		require.NoError(t, other.Set(ctx, k, "1", 0).Err())
		cached(t, c, k, "1")
	}
	for _, k := range nodes {
		require.NoError(t, other.Set(ctx, k, "2", 0).Err())
		redistest.Eventually(t, time.Second, "invalidation of "+k, func() bool { v, _ := get(t, c, k); return v == "2" })
		cached(t, c, k, "2")
	}
	require.Equal(t, 3, stats(t, c).ChannelsUp)
	// Read-your-writes through the cluster client.
	for _, k := range nodes {
		require.NoError(t, c.Set(ctx, k, "3", 0).Err())
		v, _ := get(t, c, k)
		require.Equal(t, "3", v)
	}
}

// TestCacheRace: readers and writers on the same few keys. Values only grow
// per key; a read must never return a value older than one whose write
// through the same client had returned before the read began (the local
// invalidation), nor older than one written by another client whose
// invalidation had arrived (observed as a fresh read) before it began.
func TestCacheRace(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c, _ := cachedClient(t, srv.Addr(), 3, 0, "    pool:\n      size: 32\n")
	other := srv.Client(t)
	ctx := context.Background()
	const keys = 4
	var mu [keys]sync.Mutex
	var next [keys]int64         // last value handed to a writer
	var floor [keys]atomic.Int64 // a read beginning now must see at least this
	for i := range keys {
		require.NoError(t, other.Set(ctx, "race:"+strconv.Itoa(i), "0", 0).Err())
	}
	raise := func(k int, v int64) {
		for {
			f := floor[k].Load()
			if v <= f || floor[k].CompareAndSwap(f, v) {
				return
			}
		}
	}
	var stale atomic.Int64
	var reads atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(1500 * time.Millisecond)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < 400 && time.Now().Before(deadline); i++ {
				k := rng.IntN(keys)
				mu[k].Lock()
				next[k]++
				v := next[k]
				cl := c.UniversalClient
				if w%2 == 1 {
					cl = other // another client: no read-your-writes, only invalidations
				}
				err := cl.Set(ctx, "race:"+strconv.Itoa(k), v, 0).Err()
				mu[k].Unlock()
				require.NoError(t, err)
				if w%2 == 0 {
					raise(k, v)
				}
			}
		}()
	}
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for time.Now().Before(deadline) {
				k := rng.IntN(keys)
				lo := floor[k].Load()
				s, err := c.Get(ctx, "race:"+strconv.Itoa(k)).Result()
				require.NoError(t, err)
				v, _ := strconv.ParseInt(s, 10, 64)
				reads.Add(1)
				if v < lo {
					stale.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	// Quiescent: every invalidation arrives and no stale entry survives it.
	for k := range keys {
		key := "race:" + strconv.Itoa(k)
		want, err := other.Get(ctx, key).Result()
		require.NoError(t, err)
		redistest.Eventually(t, time.Second, "final value of "+key, func() bool { v, _ := get(t, c, key); return v == want })
	}
	st := stats(t, c)
	t.Logf("%d reads, %d stale; cache %+v", reads.Load(), stale.Load(), st)
	require.Zero(t, stale.Load())
	require.NotZero(t, st.Hits)
	require.NotZero(t, st.Invalidations)
}
