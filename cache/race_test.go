package cache_test

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestCacheRaceNeverStale: many readers and writers on the same few keys,
// some writes through the cached client and some through another, plain
// client. Values only grow per key (a key's writes are serialized, so the
// server applies them in value order). floor[k] is the least value a read
// of k that begins now may return:
//
//   - A write through the cached client raises floor[k] once it returned
//     (read-your-writes).
//   - A write W(v) through the other client cannot be raised on its ack:
//     the cache learns of it only when its invalidation arrives. The writer
//     makes that moment observable with a marker key of its own: (a) it
//     reads the marker through the cached client with Bypass, so the
//     server tracks the marker for the cached client (a bypassed read
//     still goes to the server on a tracked connection); (b) it writes k =
//     v; (c) it writes the marker. Redis emits a write's invalidation while
//     executing it, on the one invalidation connection, in execution
//     order, and the cache applies that connection's pushes one by one;
//     so when OnInvalidate reports the marker, the invalidation of W(v),
//     if the server sent one, has been applied, and floor[k] is raised to v
//     right there. (If it sent none, no connection of the cached client
//     had read k since its last invalidation: nothing older than v can be
//     cached.)
//
// A reader loads floor before each read (GET; in the mget runs, half the
// reads are MGETs of two keys, entries indexed under a key of another shard)
// and counts the read stale if it returns less. Not one stale read is
// allowed.
func TestCacheRaceNeverStale(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cases := []struct {
		name  string
		proto int
		mget  bool
	}{
		{"resp2/get", 2, false},
		{"resp3/get", 3, false},
		{"resp2/get+mget", 2, true},
		{"resp3/get+mget", 3, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raceOnce(t, srv, tc.proto, tc.mget, 700*time.Millisecond)
		})
	}
}

func raceOnce(t *testing.T, srv *redistest.Server, proto int, mget bool, dur time.Duration) {
	const (
		keys         = 4
		readers      = 16
		cachedWrites = 3 // writers through the cached client
		otherWrites  = 4 // writers through the other client
	)
	key := func(k int) string { return "race:" + strconv.Itoa(k) }
	marker := func(w int) string { return "race:marker:" + strconv.Itoa(w) }

	var floor [keys]atomic.Int64
	raise := func(k int, v int64) {
		for {
			f := floor[k].Load()
			if v <= f || floor[k].CompareAndSwap(f, v) {
				return
			}
		}
	}
	// The other client's writer w has written key pendK[w] = pendV[w]
	// and then its marker; OnInvalidate of the marker raises the floor
	// and tells the writer.
	type pending struct {
		k int
		v int64
	}
	var pend [otherWrites]atomic.Pointer[pending]
	var seen [otherWrites]chan struct{}
	markers := map[string]int{}
	for w := range otherWrites {
		seen[w] = make(chan struct{}, 1)
		markers[marker(w)] = w
	}
	var invalidations, flushes atomic.Int64
	cfg := baseConfig()
	cfg.OnInvalidate = func(names []string) {
		if names == nil {
			flushes.Add(1)
			return
		}
		invalidations.Add(int64(len(names)))
		for _, name := range names {
			w, ok := markers[name]
			if !ok {
				continue
			}
			if p := pend[w].Swap(nil); p != nil {
				raise(p.k, p.v)
				seen[w] <- struct{}{}
			}
		}
	}
	e := newEnv(t, srv, cfg, func(o *redis.Options) { o.Protocol, o.PoolSize = proto, 32 })
	other := srv.Client(t)
	for k := range keys {
		require.NoError(t, other.Set(bg, key(k), 0, 0).Err())
	}

	var mu [keys]sync.Mutex
	var next [keys]int64 // last value handed to a writer, under mu[k]
	var reads, stale, writesCached, writesOther atomic.Int64
	var source sync.Map // "k=v" -> which client wrote it, for the report
	var staleMu sync.Mutex
	var examples []string
	report := func(k int, got, lo int64, how string) {
		stale.Add(1)
		staleMu.Lock()
		if len(examples) < 5 {
			by, _ := source.Load(key(k) + "=" + strconv.FormatInt(lo, 10))
			examples = append(examples, key(k)+": "+how+" returned "+strconv.FormatInt(got, 10)+" < floor "+strconv.FormatInt(lo, 10)+" (written by the "+by.(string)+" client)")
		}
		staleMu.Unlock()
	}
	var failed atomic.Pointer[error] // the first error of a goroutine
	fail := func(err error) { failed.CompareAndSwap(nil, &err) }

	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := range cachedWrites + otherWrites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ow := w - cachedWrites // index among the other client's writers
			for time.Now().Before(deadline) && failed.Load() == nil {
				k := rng.IntN(keys)
				if ow < 0 {
					mu[k].Lock()
					next[k]++
					v := next[k]
					source.Store(key(k)+"="+strconv.FormatInt(v, 10), "cached")
					err := e.cl.Set(bg, key(k), v, 0).Err()
					mu[k].Unlock()
					if err != nil {
						fail(err)
						return
					}
					raise(k, v)
					writesCached.Add(1)
					continue
				}
				// (a) track the marker for the cached client.
				if err := e.cl.Get(cache.Bypass(bg), marker(ow)).Err(); err != nil && !errors.Is(err, redis.Nil) {
					fail(err)
					return
				}
				// (b) the write under test.
				mu[k].Lock()
				next[k]++
				v := next[k]
				source.Store(key(k)+"="+strconv.FormatInt(v, 10), "other")
				err := other.Set(bg, key(k), v, 0).Err()
				mu[k].Unlock()
				if err != nil {
					fail(err)
					return
				}
				// (c) the marker, whose invalidation follows W(v)'s.
				pend[ow].Store(&pending{k, v})
				if err := other.Incr(bg, marker(ow)).Err(); err != nil {
					fail(err)
					return
				}
				select {
				case <-seen[ow]:
				case <-time.After(2 * time.Second):
					fail(errors.New("the marker's invalidation did not arrive within 2s"))
					return
				}
				writesOther.Add(1)
			}
		}()
	}
	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 2))
			for time.Now().Before(deadline) && failed.Load() == nil {
				if !mget || rng.IntN(2) == 0 {
					k := rng.IntN(keys)
					lo := floor[k].Load()
					s, err := e.cl.Get(bg, key(k)).Result()
					if err != nil {
						fail(err)
						return
					}
					if v, _ := strconv.ParseInt(s, 10, 64); v < lo {
						report(k, v, lo, "GET")
					}
				} else {
					k1 := rng.IntN(keys)
					k2 := (k1 + 1 + rng.IntN(keys-1)) % keys
					lo1, lo2 := floor[k1].Load(), floor[k2].Load()
					vals, err := e.cl.MGet(bg, key(k1), key(k2)).Result()
					if err != nil {
						fail(err)
						return
					}
					v1, _ := strconv.ParseInt(vals[0].(string), 10, 64)
					v2, _ := strconv.ParseInt(vals[1].(string), 10, 64)
					if v1 < lo1 {
						report(k1, v1, lo1, "MGET (first key)")
					}
					if v2 < lo2 {
						report(k2, v2, lo2, "MGET (second key)")
					}
				}
				// Hits never block: without a yield now and then, readers
				// would keep the writers off the CPUs for whole time
				// slices; yielding at every read would leave too few
				// concurrent readers to hit the narrow windows.
				if reads.Add(1)%8 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(*err)
	}

	st := e.c.Stats()
	t.Logf("RESP%d: %d reads (%.0f%% hits), %d stale; %d writes through the cached client, %d through the other; %d keys invalidated by the server, %d flushes; %+v",
		proto, reads.Load(), 100*st.HitRatio(), stale.Load(), writesCached.Load(), writesOther.Load(), invalidations.Load(), flushes.Load(), st)
	require.Zero(t, stale.Load(), "stale reads, e.g. %v", examples)

	// Quiescent: every write was acknowledged and its invalidation
	// applied, so the cache must now answer exactly the server's values.
	for k := range keys {
		want, err := other.Get(bg, key(k)).Result()
		require.NoError(t, err)
		got, err := e.cl.Get(bg, key(k)).Result()
		require.NoError(t, err)
		require.Equal(t, want, got, "%s after the run", key(k))
	}

	require.Greater(t, reads.Load(), int64(1000))
	require.Greater(t, writesOther.Load(), int64(50))
	require.Greater(t, writesCached.Load(), int64(100))
	require.NotZero(t, st.Hits)
	require.NotZero(t, st.Invalidations)
	require.NotZero(t, invalidations.Load())
	require.Zero(t, flushes.Load())
}
