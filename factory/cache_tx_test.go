package factory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestCacheWatchIncrementsAreExact is go-redis's "Tx should Watch" spec,
// randomized and repeated, through a handle with the cache on (RESP3): 100
// goroutines each add one to a counter with WATCH / GET / MULTI SET n+1 /
// EXEC, most of them after reading the counter through the handle (which
// puts it in the cache). A GET inside Watch answered from the cache would
// be older than the WATCH and the transaction would write on top of a stale
// value: increments would be lost. Every round must end exact on the server
// and when read through the client.
func TestCacheWatchIncrementsAreExact(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, cacheProfile, srv.Addr(), 3, 0, "")
	f := newFactory(t, cfg, factory.Options{})
	h, err := f.Handle("c")
	require.NoError(t, err)
	fc, err := f.Lookup("c")
	require.NoError(t, err)
	admin := srv.Client(t)
	ctx := context.Background()
	const key, goroutines, rounds = "watch:n", 100, 50

	incr := func(rng *rand.Rand) error {
		if rng.IntN(4) > 0 {
			if err := h.Get(ctx, key).Err(); err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
		}
		for {
			err := h.Watch(ctx, func(tx *redis.Tx) error {
				n, err := tx.Get(ctx, key).Int()
				if err != nil && !errors.Is(err, redis.Nil) {
					return err
				}
				_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					return p.Set(ctx, key, strconv.Itoa(n+1), 0).Err()
				})
				return err
			}, key)
			if errors.Is(err, redis.TxFailedErr) {
				continue
			}
			return err
		}
	}

	for r := 1; r <= rounds; r++ {
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := incr(rand.New(rand.NewPCG(uint64(r), uint64(g)))); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err, "round %d", r)
		}
		want := strconv.Itoa(goroutines * r)
		got, err := admin.Get(ctx, key).Result()
		require.NoError(t, err)
		require.Equal(t, want, got, "round %d: on the server", r)
		got, err = h.Get(ctx, key).Result()
		require.NoError(t, err)
		require.Equal(t, want, got, "round %d: read through the client", r)
	}
	s := stats(t, fc)
	assert.NotZero(t, s.Hits, "the reads outside Watch were served by the cache (%+v)", s)
}

// TestCacheConnAndTxNeverReadFromTheCache: commands of a *redis.Conn and of
// a Tx go to the server even when the cache holds their key. A Conn that
// SELECTs another database must read that database's value, and nothing a
// Conn or Tx reads is stored for the client's own reads.
func TestCacheConnAndTxNeverReadFromTheCache(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", protocol), func(t *testing.T) {
			cfg := load(t, cacheProfile, srv.Addr(), protocol, 0, "")
			f := newFactory(t, cfg, factory.Options{})
			h, err := f.Handle("c")
			require.NoError(t, err)
			fc, err := f.Lookup("c")
			require.NoError(t, err)
			require.NoError(t, admin.Set(ctx, "k", "db0", 0).Err())
			one := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 1})
			defer one.Close()
			require.NoError(t, one.Set(ctx, "k", "db1", 0).Err())
			cached(t, fc, "k", "db0")

			for _, c := range []struct {
				name string
				get  func() (string, error)
			}{
				{"Current().EphemeralConn", func() (string, error) {
					cn := h.Current().(*redis.Client).EphemeralConn()
					defer cn.Close()
					if err := cn.Select(ctx, 1).Err(); err != nil {
						return "", err
					}
					return cn.Get(ctx, "k").Result()
				}},
			} {
				before := stats(t, fc)
				v, err := c.get()
				require.NoError(t, err, c.name)
				assert.Equal(t, "db1", v, "%s: the Conn reads its own database, not the cache", c.name)
				after := stats(t, fc)
				assert.Equal(t, before.Hits, after.Hits, c.name)
			}

			before := stats(t, fc)
			err = h.Watch(ctx, func(tx *redis.Tx) error {
				v, err := tx.Get(ctx, "k").Result()
				assert.Equal(t, "db0", v)
				return err
			}, "k")
			require.NoError(t, err)
			assert.Equal(t, before.Hits, stats(t, fc).Hits, "the GET inside Watch went to the server")
			v, hit := get(t, fc, "k")
			assert.Equal(t, "db0", v)
			assert.True(t, hit, "the client's own reads are still served by the cache")
		})
	}
}

// TestCacheWritesOutsideSingleCommandsDropTheKey: a SET sent in a plain
// Pipelined, a TxPipelined, on a *redis.Conn, or inside a Watch callback
// (none of which reads from the cache) drops the key it names from the
// cache, as a single SET does: a GET through the handle right after the
// write has returned reads the new value, not the cached old one
// (read-your-writes; the server's invalidation may still be on its way).
func TestCacheWritesOutsideSingleCommandsDropTheKey(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()
	for _, protocol := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", protocol), func(t *testing.T) {
			f := newFactory(t, load(t, cacheProfile, srv.Addr(), protocol, 0, ""), factory.Options{})
			h, err := f.Handle("c")
			require.NoError(t, err)
			fc, err := f.Lookup("c")
			require.NoError(t, err)
			for _, w := range []struct {
				name  string
				write func(key, v string) error
			}{
				{"Pipelined", func(key, v string) error {
					_, err := h.Pipelined(ctx, func(p redis.Pipeliner) error {
						p.Incr(ctx, key+":other")
						p.Set(ctx, key, v, 0)
						return nil
					})
					return err
				}},
				{"TxPipelined", func(key, v string) error {
					_, err := h.TxPipelined(ctx, func(p redis.Pipeliner) error {
						p.Set(ctx, key, v, 0)
						return nil
					})
					return err
				}},
				{"Conn", func(key, v string) error {
					cn := h.Current().(*redis.Client).Conn()
					defer cn.Close()
					return cn.Set(ctx, key, v, 0).Err()
				}},
				{"Watch", func(key, v string) error {
					return h.Watch(ctx, func(tx *redis.Tx) error {
						_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Set(ctx, key, v, 0)
							return nil
						})
						return err
					}, key)
				}},
			} {
				key := "drop:" + w.name
				require.NoError(t, h.Set(ctx, key, "old", 0).Err())
				cached(t, fc, key, "old")
				for i := range 20 {
					v := fmt.Sprintf("new%d", i)
					require.NoError(t, w.write(key, v), w.name)
					got, err := h.Get(ctx, key).Result()
					require.NoError(t, err, w.name)
					require.Equal(t, v, got, "%s: a GET right after the write reads it", w.name)
					cached(t, fc, key, v) // cached again for the next write
				}
			}
		})
	}
}
