//go:build unix

package factory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// The side-by-side benchmarks of issue 13: every client against one
// redis-server in one process, in rounds whose client order rotates, each
// client running for the same time per round (long enough for GC cycles to
// land inside it). Each iteration of b.Loop is one round of every client;
// run them with -benchtime Nx for N rounds. They print, per client, the
// mean, median and min–max over the rounds, and the per-round ratios to
// the reference client. BENCHMARKS.md has the commands and the figures.
//
//	go test -run '^$' -bench 'BenchmarkSideBySide' -benchtime 15x -v ./factory/
//
// SIDE_ROUND sets the time each client runs per round (default 1s);
// SIDE_CONCS, a comma-separated list, the goroutine counts to run, and
// SIDE_CLIENTS the clients (by name; default each benchmark's own).

// sideRound is the time each client runs in each round.
func sideRound() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SIDE_ROUND")); err == nil && d > 0 {
		return d
	}
	return time.Second
}

// roundStats is what one client did in one round.
type roundStats struct {
	opsPerSec float64
	cpuPerOp  float64 // ns of this process's CPU per op
	p99       float64 // ns; when latencies were recorded
	hitRatio  float64 // when the client reports hits
}

// sideClient is one client of a side-by-side benchmark. op runs one
// operation on goroutine g; rec, when set, records the op's latency.
type sideClient struct {
	name string
	op   func(ctx context.Context, g int, rng *rand.Rand) error
	// hits, when set, returns a counter of GETs answered from the cache,
	// and gets a counter of GETs issued; their deltas give the hit ratio.
	hits func() uint64
	gets *atomic.Uint64
}

// runSideRound runs c's op from conc goroutines for d and measures it.
func runSideRound(c sideClient, conc int, d time.Duration, latencies bool) (roundStats, error) {
	ctx := context.Background()
	var (
		stop     atomic.Bool
		ops      atomic.Int64
		firstErr atomic.Pointer[error]
		wg       sync.WaitGroup
		lat      = make([][]int64, conc)
	)
	var hits0, gets0 uint64
	if c.hits != nil {
		hits0, gets0 = c.hits(), c.gets.Load()
	}
	start := time.Now()
	cpu0 := cpuTime()
	for g := range conc {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(start.UnixNano())))
			var n int64
			var mine []int64
			if latencies {
				mine = make([]int64, 0, 1<<16)
			}
			for !stop.Load() {
				t0 := time.Now()
				if err := c.op(ctx, g, rng); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					break
				}
				if latencies {
					mine = append(mine, int64(time.Since(t0)))
				}
				n++
			}
			ops.Add(n)
			lat[g] = mine
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	if p := firstErr.Load(); p != nil {
		return roundStats{}, fmt.Errorf("%s: %w", c.name, *p)
	}
	n := ops.Load()
	s := roundStats{opsPerSec: float64(n) / elapsed.Seconds(), cpuPerOp: float64(cpu.Nanoseconds()) / float64(max(n, 1))}
	if latencies {
		var all []int64
		for _, l := range lat {
			all = append(all, l...)
		}
		slices.Sort(all)
		if len(all) > 0 {
			s.p99 = float64(all[len(all)*99/100])
		}
	}
	if c.hits != nil {
		if gets := c.gets.Load() - gets0; gets > 0 {
			s.hitRatio = float64(c.hits()-hits0) / float64(gets)
		}
	}
	return s, nil
}

// summary is mean, median, min and max.
type summary struct{ mean, median, min, max float64 }

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	var sum float64
	for _, x := range s {
		sum += x
	}
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{sum / float64(len(s)), med, s[0], s[len(s)-1]}
}

func (s summary) format(scale float64, unit string) string {
	return fmt.Sprintf("mean %.4g median %.4g [%.4g–%.4g] %s", s.mean/scale, s.median/scale, s.min/scale, s.max/scale, unit)
}

// sideBySide runs rounds of clients at each concurrency and prints the
// summaries and the per-round ratios to the clients named in refs.
// sideConcs returns the goroutine counts of SIDE_CONCS that are among
// concs, or concs.
func sideConcs(concs []int) []int {
	var picked []int
	for _, f := range strings.Split(os.Getenv("SIDE_CONCS"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && slices.Contains(concs, n) {
			picked = append(picked, n)
		}
	}
	if len(picked) == 0 {
		return concs
	}
	return picked
}

// sideClients returns the clients SIDE_CLIENTS names, or clients.
func sideClients(clients []sideClient) []sideClient {
	names := strings.Split(os.Getenv("SIDE_CLIENTS"), ",")
	var picked []sideClient
	for _, c := range clients {
		if slices.Contains(names, c.name) {
			picked = append(picked, c)
		}
	}
	if len(picked) == 0 {
		return clients
	}
	return picked
}

func sideBySide(b *testing.B, title string, concs []int, clients []sideClient, refs []string, latencies bool) {
	d := sideRound()
	concs = sideConcs(concs)
	clients = sideClients(clients)
	type key struct {
		conc   int
		client string
	}
	results := map[key][]roundStats{}
	// Warm every client (connections, caches) before the first round.
	for _, conc := range concs {
		for _, c := range clients {
			if _, err := runSideRound(c, conc, d/5, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	round := 0
	for b.Loop() {
		for ci, conc := range concs {
			k := (round + ci) % len(clients)
			order := append(append([]sideClient(nil), clients[k:]...), clients[:k]...)
			for _, c := range order {
				runtime.GC() // every client starts its round with the same heap state
				s, err := runSideRound(c, conc, d, latencies)
				if err != nil {
					b.Fatal(err)
				}
				results[key{conc, c.name}] = append(results[key{conc, c.name}], s)
			}
		}
		round++
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\n%s: %d rounds of %s per client, GOMAXPROCS %d\n", title, round, d, runtime.GOMAXPROCS(0))
	pick := func(rs []roundStats, f func(roundStats) float64) []float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		return xs
	}
	for _, conc := range concs {
		fmt.Fprintf(&out, "conc=%d\n", conc)
		for _, c := range clients {
			rs := results[key{conc, c.name}]
			fmt.Fprintf(&out, "  %-22s kops/s %s; cpu %s", c.name,
				summarize(pick(rs, func(r roundStats) float64 { return r.opsPerSec })).format(1e3, ""),
				summarize(pick(rs, func(r roundStats) float64 { return r.cpuPerOp })).format(1e3, "µs/op"))
			if latencies {
				fmt.Fprintf(&out, "; p99 %s", summarize(pick(rs, func(r roundStats) float64 { return r.p99 })).format(1e6, "ms"))
			}
			if c.hits != nil {
				fmt.Fprintf(&out, "; hit ratio %s", summarize(pick(rs, func(r roundStats) float64 { return r.hitRatio })).format(1, ""))
			}
			out.WriteString("\n")
		}
		for _, ref := range refs {
			base := results[key{conc, ref}]
			if len(base) == 0 {
				continue // not among SIDE_CLIENTS
			}
			for _, c := range clients {
				if c.name == ref {
					continue
				}
				rs := results[key{conc, c.name}]
				var tput, cpu, p99 []float64
				for i := range min(len(rs), len(base)) {
					tput = append(tput, rs[i].opsPerSec/base[i].opsPerSec)
					cpu = append(cpu, rs[i].cpuPerOp/base[i].cpuPerOp)
					if latencies && base[i].p99 > 0 {
						p99 = append(p99, rs[i].p99/base[i].p99)
					}
				}
				fmt.Fprintf(&out, "  %s / %s: throughput %s; cpu/op %s", c.name, ref,
					summarize(tput).format(1, "×"), summarize(cpu).format(1, "×"))
				if latencies {
					fmt.Fprintf(&out, "; p99 %s", summarize(p99).format(1, "×"))
				}
				out.WriteString("\n")
			}
		}
	}
	b.Log(out.String())
	fmt.Print(out.String())
}

// handleOf builds a factory with one profile from the YAML text and
// returns its handle.
func handleOf(b *testing.B, doc string, args ...any) *factory.Handle {
	b.Helper()
	f := newFactory(b, load(b, doc, args...), factory.Options{})
	h, err := f.Handle("p")
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func newRueidis(b *testing.B, addr string, cache bool) rueidis.Client {
	b.Helper()
	rd, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: !cache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rd.Close)
	return rd
}

// goRedisGetSet is one GET+SET op (64 B value, the goroutine's own key)
// through a go-redis UniversalClient (bare, auto-pipeliner or handle).
func goRedisGetSet(c redis.Cmdable) func(ctx context.Context, g int, _ *rand.Rand) error {
	return func(ctx context.Context, g int, _ *rand.Rand) error {
		key := getSetKeys[g]
		if err := c.Set(ctx, key, benchValue, 0).Err(); err != nil {
			return err
		}
		v, err := c.Get(ctx, key).Result()
		if err != nil {
			return err
		}
		if len(v) != len(benchValue) {
			return errors.New("GET returned a value of the wrong length")
		}
		return nil
	}
}

// rueidisGetSet is goRedisGetSet's op through rueidis, its commands built
// on every call.
func rueidisGetSet(rd rueidis.Client) func(ctx context.Context, g int, _ *rand.Rand) error {
	return func(ctx context.Context, g int, _ *rand.Rand) error {
		key := getSetKeys[g]
		if err := rd.Do(ctx, rd.B().Set().Key(key).Value(benchValue).Build()).Error(); err != nil {
			return err
		}
		v, err := rd.Do(ctx, rd.B().Get().Key(key).Build()).ToString()
		if err != nil {
			return err
		}
		if len(v) != len(benchValue) {
			return errors.New("GET returned a value of the wrong length")
		}
		return nil
	}
}

// BenchmarkSideBySideGetSet: GET+SET of 64 B from 1, 8 and 64 goroutines
// through the factory's default profile, the factory with pipeline.auto,
// bare go-redis, go-redis's AutoPipeline and rueidis (which auto-pipelines
// concurrent calls by default).
func BenchmarkSideBySideGetSet(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	const profile = `profiles:
  p:
    addr: %s
    protocol: 3
    pool:
      size: 64
    timeouts:
      connect: 2s
      socket: 5s
    pipeline:
      auto: %t
`
	def := handleOf(b, profile, srv.Addr(), false)
	auto := handleOf(b, profile, srv.Addr(), true)
	bare := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3, PoolSize: 64, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = bare.Close() })
	apClient := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3, PoolSize: 64, MaxRetries: -1,
		DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = apClient.Close() })
	ap, err := apClient.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ap.Close() })
	rd := newRueidis(b, srv.Addr(), false)
	clients := []sideClient{
		{name: "factory", op: goRedisGetSet(def)},
		{name: "factory-pipeline.auto", op: goRedisGetSet(auto)},
		{name: "go-redis", op: goRedisGetSet(bare)},
		{name: "go-redis-AutoPipeline", op: goRedisGetSet(ap)},
		{name: "rueidis", op: rueidisGetSet(rd)},
	}
	sideBySide(b, "GET+SET 64 B", []int{1, 8, 64}, clients, []string{"rueidis", "go-redis", "go-redis-AutoPipeline"}, false)
}

// mixKeys are the 1,000 hot keys of the 90/10 mix.
var mixKeys = func() []string {
	ks := make([]string, 1000)
	for i := range ks {
		ks[i] = "mix:" + strconv.Itoa(i)
	}
	return ks
}()

// BenchmarkSideBySideCacheMix: 90 % GET / 10 % SET over 1,000 keys from 8
// and 64 goroutines, cache on: the factory's handle (with and without
// pipeline.auto) against rueidis DoCache. Each client reports its hit
// ratio the same way: GETs answered from its cache (for rueidis,
// IsCacheHit) over GETs issued.
func BenchmarkSideBySideCacheMix(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	const profile = `profiles:
  p:
    addr: %s
    protocol: 3
    pool:
      size: 64
    cache:
      enabled: true
      max_entries: 10000
      ttl: 1m
    pipeline:
      auto: %t
`
	factoryMix := func(auto bool) sideClient {
		f := newFactory(b, load(b, profile, srv.Addr(), auto), factory.Options{})
		h, err := f.Handle("p")
		if err != nil {
			b.Fatal(err)
		}
		c, err := f.Lookup("p")
		if err != nil {
			b.Fatal(err)
		}
		gets := new(atomic.Uint64)
		name := "factory+cache"
		if auto {
			name += "+pipeline.auto"
		}
		return sideClient{name: name, gets: gets,
			hits: func() uint64 { return c.Cache().Stats().Hits },
			op: func(ctx context.Context, _ int, rng *rand.Rand) error {
				k := mixKeys[rng.IntN(len(mixKeys))]
				if rng.IntN(10) == 0 {
					return h.Set(ctx, k, "v", 0).Err()
				}
				gets.Add(1)
				if err := h.Get(ctx, k).Err(); err != nil && err != redis.Nil {
					return err
				}
				return nil
			}}
	}
	rd := newRueidis(b, srv.Addr(), true)
	var rdHits atomic.Uint64
	rdGets := new(atomic.Uint64)
	rdc := sideClient{name: "rueidis-DoCache", gets: rdGets, hits: rdHits.Load,
		op: func(ctx context.Context, _ int, rng *rand.Rand) error {
			k := mixKeys[rng.IntN(len(mixKeys))]
			if rng.IntN(10) == 0 {
				return rd.Do(ctx, rd.B().Set().Key(k).Value("v").Build()).Error()
			}
			rdGets.Add(1)
			r := rd.DoCache(ctx, rd.B().Get().Key(k).Cache(), time.Minute)
			if err := r.Error(); err != nil && !rueidis.IsRedisNil(err) {
				return err
			}
			if r.IsCacheHit() {
				rdHits.Add(1)
			}
			return nil
		}}
	clients := []sideClient{factoryMix(false), factoryMix(true), rdc}
	sideBySide(b, "90% GET / 10% SET over 1,000 keys, cache on", []int{8, 64}, clients, []string{"rueidis-DoCache"}, true)
}

// BenchmarkSideBySideGetHit: one cache hit (GET of a cached 64 B value)
// through the factory's handle and rueidis DoCache with its command built
// per call, from one goroutine, in rotating rounds of 200,000 hits each
// (SIDE_HITS overrides). Reported: mean and median ns per hit over the
// rounds, min–max, the per-round ratio, and allocations per hit.
func BenchmarkSideBySideGetHit(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	ctx := context.Background()
	if err := srv.Client(b).Set(ctx, "hit:k", benchValue, 0).Err(); err != nil {
		b.Fatal(err)
	}
	h := handleOf(b, `profiles:
  p:
    addr: %s
    protocol: 3
    cache:
      enabled: true
      max_entries: 10000
      ttl: 1m
`, srv.Addr())
	rd := newRueidis(b, srv.Addr(), true)
	fGet := func() error { return h.Get(ctx, "hit:k").Err() }
	rGet := func() error {
		return rd.DoCache(ctx, rd.B().Get().Key("hit:k").Cache(), time.Minute).Error()
	}
	for _, f := range []func() error{fGet, rGet} {
		for range 5 {
			if err := f(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // let the first fill land; not a synchronisation
		}
	}
	hits := 200000
	if n, err := strconv.Atoi(os.Getenv("SIDE_HITS")); err == nil && n > 0 {
		hits = n
	}
	type cl struct {
		name string
		f    func() error
		ns   []float64
	}
	cs := []*cl{{name: "factory", f: fGet}, {name: "rueidis-built-per-call", f: rGet}}
	timeRound := func(f func() error) float64 {
		start := time.Now()
		for range hits {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(hits)
	}
	round := 0
	for b.Loop() {
		for i := range cs {
			c := cs[(round+i)%len(cs)]
			c.ns = append(c.ns, timeRound(c.f))
		}
		round++
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nGET hit: %d rounds of %d hits per client\n", round, hits)
	for _, c := range cs {
		allocs := testing.AllocsPerRun(10000, func() { _ = c.f() })
		fmt.Fprintf(&out, "  %-24s ns/hit %s; %.1f allocs/hit\n", c.name, summarize(c.ns).format(1, ""), allocs)
	}
	var ratio []float64
	for i := range cs[0].ns {
		ratio = append(ratio, cs[0].ns[i]/cs[1].ns[i])
	}
	fmt.Fprintf(&out, "  factory / rueidis-built-per-call: %s\n", summarize(ratio).format(1, "×"))
	fmt.Fprintf(&out, "  ratio of means: %.3f×\n", summarize(cs[0].ns).mean/summarize(cs[1].ns).mean)
	b.Log(out.String())
	fmt.Print(out.String())
}
