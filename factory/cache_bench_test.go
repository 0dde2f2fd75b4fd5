package factory_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// BenchmarkCacheHit compares, against one server in one run, a cache hit
// through the factory's client, go-redis's own cache (v9.22+, RESP3,
// standalone) and rueidis DoCache, for GET and HGETALL, with an uncached
// GET for scale.
//
//	go test -run '^$' -bench BenchmarkCache -benchmem ./factory/
func BenchmarkCacheHit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	seed := srv.Client(b)
	value := string(make([]byte, 64))
	if err := seed.Set(ctx, "bench:k", value, 0).Err(); err != nil {
		b.Fatal(err)
	}
	if err := seed.HSet(ctx, "bench:h", "a", "1", "b", "2", "c", "3", "d", "4").Err(); err != nil {
		b.Fatal(err)
	}

	cfg := load(b, `profiles:
  c:
    addr: %s
    protocol: 3
    cache:
      enabled: true
      max_entries: 10000
      ttl: 1m
`, srv.Addr())
	rt := runtime.New(runtime.Options{})
	defer rt.Close(ctx)
	fc, err := factory.Build("c", cfg.Profiles["c"], rt, factory.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer fc.Close()

	gr := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3,
		ClientSideCacheConfig: &redis.ClientSideCacheConfig{MaxEntries: 10000}})
	defer gr.Close()
	plain := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3})
	defer plain.Close()
	rd, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()

	warm := func(get func() error) {
		for range 5 {
			if err := get(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // let the first fill land; not a synchronisation
		}
	}
	fGet := func() error { return fc.Get(ctx, "bench:k").Err() }
	gGet := func() error { return gr.Get(ctx, "bench:k").Err() }
	rGetCmd := rd.B().Get().Key("bench:k").Cache().Pin()
	rGet := func() error { return rd.DoCache(ctx, rGetCmd, time.Minute).Error() }
	// rueidis as its README writes it: the command built on every call.
	rGetBuilt := func() error { return rd.DoCache(ctx, rd.B().Get().Key("bench:k").Cache(), time.Minute).Error() }
	fHGetAll := func() error { return fc.HGetAll(ctx, "bench:h").Err() }
	gHGetAll := func() error { return gr.HGetAll(ctx, "bench:h").Err() }
	rHCmd := rd.B().Hgetall().Key("bench:h").Cache().Pin()
	rHGetAll := func() error { _, err := rd.DoCache(ctx, rHCmd, time.Minute).AsStrMap(); return err }
	for _, f := range []func() error{fGet, gGet, rGet, fHGetAll, gHGetAll, rHGetAll} {
		warm(f)
	}
	run := func(name string, f func() error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("GET/factory", fGet)
	run("GET/go-redis-csc", gGet)
	run("GET/rueidis", rGet)
	run("GET/rueidis-built-per-call", rGetBuilt)
	run("HGETALL/factory", fHGetAll)
	run("HGETALL/go-redis-csc", gHGetAll)
	run("HGETALL/rueidis", rHGetAll)
	run("GET/uncached-go-redis", func() error { return plain.Get(ctx, "bench:k").Err() })
	b.Run("GET/factory-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := fGet(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("GET/rueidis-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := rGet(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// Ratios measured in alternating rounds, so that other load on a
	// shared machine weighs on both sides alike: each iteration times a
	// round of the factory's hits, then a round of each other client's,
	// and the metrics are the medians of the per-round ratios.
	type other struct {
		unit string
		f    func() error
	}
	ratios := func(name string, factoryHit func() error, others []other) {
		b.Run(name, func(b *testing.B) {
			const round = 2000
			timeRound := func(f func() error) time.Duration {
				start := time.Now()
				for range round {
					if err := f(); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(start)
			}
			var factoryNs []float64
			rs := make([][]float64, len(others))
			for b.Loop() {
				tf := timeRound(factoryHit)
				factoryNs = append(factoryNs, float64(tf.Nanoseconds())/round)
				for i, o := range others {
					rs[i] = append(rs[i], float64(tf)/float64(timeRound(o.f)))
				}
			}
			b.ReportMetric(median(factoryNs), "factory-ns/hit")
			for i, o := range others {
				b.ReportMetric(median(rs[i]), o.unit)
			}
		})
	}
	ratios("GET/ratios", fGet, []other{{"x-rueidis", rGet}, {"x-rueidis-built", rGetBuilt}, {"x-go-redis-csc", gGet}})
	ratios("HGETALL/ratios", fHGetAll, []other{{"x-rueidis", rHGetAll}, {"x-go-redis-csc", gHGetAll}})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkCacheMixed runs a 90/10 GET/SET mix over 1000 keys with 64
// goroutines through the factory's client, with and without the cache.
func BenchmarkCacheMixed(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	for _, on := range []bool{false, true} {
		name := "nocache"
		if on {
			name = "cache"
		}
		b.Run(name, func(b *testing.B) {
			cfg := load(b, `profiles:
  c:
    addr: %s
    protocol: 3
    pool:
      size: 64
    cache:
      enabled: %t
      max_entries: 10000
`, srv.Addr(), on)
			rt := runtime.New(runtime.Options{})
			defer rt.Close(ctx)
			c, err := factory.Build("c", cfg.Profiles["c"], rt, factory.BuildOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				rng := rand.New(rand.NewPCG(rand.Uint64(), 1))
				for pb.Next() {
					k := "mix:" + strconv.Itoa(rng.IntN(1000))
					var err error
					if rng.IntN(10) == 0 {
						err = c.Set(ctx, k, "v", 0).Err()
					} else {
						err = c.Get(ctx, k).Err()
					}
					if err != nil && err != redis.Nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
