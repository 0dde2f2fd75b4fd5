//go:build unix

package factory_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// benchProfile is the factory side of the comparison: every hook the factory
// installs is on — the retry policy (3 retries, exponential_jitter) with a
// retry budget, the health check in the dialer (health_check_interval, the
// second argument: 3s, so connections busier than that are never PINGed and
// the check is a clock comparison per write) and the background probe (one
// PING a second, Options.ProbeInterval).
const benchProfile = `profiles:
  bench:
    addr: %s
    protocol: 3
    pool:
      size: 64
    timeouts:
      connect: 2s
      socket: 5s
    health_check_interval: %s
    retry:
      retries: 3
      backoff:
        strategy: exponential_jitter
        base: 10ms
        cap: 1s
      budget:
        max_tokens: 10
        token_ratio: 0.1
`

type namedClient struct {
	name string
	c    redis.UniversalClient
}

// benchClients builds, against one server, the clients the comparison
// benchmarks run side by side:
//
//   - bare: a go-redis client with the settings of benchProfile (address,
//     protocol, pool, timeouts, go-redis retries off, maintenance
//     notifications mode), go-redis's own dialer and no hooks;
//   - factory: the factory's client of benchProfile, every hook on;
//   - factory_nohc: the same with health_check_interval 0s. The factory's
//     dialer then hands go-redis the *net.TCPConn itself, as bare does, so
//     go-redis's own check of a pooled connection at checkout (a
//     non-blocking MSG_PEEK recvfrom) runs again; the health check wrapper
//     hides the socket from it. This client isolates what the retry hook and
//     the dialer cost from that difference.
func benchClients(b *testing.B, srv *redistest.Server) []namedClient {
	b.Helper()
	// The go-redis client the factory built, as OnBuild sees it: what
	// f.Client returns may be a wrapper around it.
	var built *redis.Client
	opts := factory.Options{ProbeInterval: time.Second, OnBuild: func(_ string, c redis.UniversalClient) error {
		if rc, ok := c.(*redis.Client); ok && built == nil {
			built = rc
		}
		return nil
	}}
	fact := client(b, newFactory(b, load(b, benchProfile, srv.Addr(), "3s"), opts), "bench")
	nohc := client(b, newFactory(b, load(b, benchProfile, srv.Addr(), "0s"), opts), "bench")
	if built == nil {
		b.Fatal("the factory built no *redis.Client for a standalone profile")
	}
	fo := built.Options()
	mode := maintnotifications.ModeDisabled
	if fo.MaintNotificationsConfig != nil {
		mode = fo.MaintNotificationsConfig.Mode
	}
	bare := redis.NewClient(&redis.Options{
		Addr:                  fo.Addr,
		Protocol:              fo.Protocol,
		MaxRetries:            fo.MaxRetries,
		DialerRetries:         fo.DialerRetries,
		DialTimeout:           fo.DialTimeout,
		ReadTimeout:           fo.ReadTimeout,
		WriteTimeout:          fo.WriteTimeout,
		ContextTimeoutEnabled: fo.ContextTimeoutEnabled,
		PoolSize:              fo.PoolSize,
		PoolTimeout:           fo.PoolTimeout,
		MinIdleConns:          fo.MinIdleConns,
		MaxIdleConns:          fo.MaxIdleConns,
		MaxActiveConns:        fo.MaxActiveConns,
		ConnMaxIdleTime:       fo.ConnMaxIdleTime,
		ConnMaxLifetime:       fo.ConnMaxLifetime,

		MaintNotificationsConfig: &maintnotifications.Config{Mode: mode},
	})
	b.Cleanup(func() { _ = bare.Close() })
	cs := []namedClient{{"bare", bare}, {"factory", fact}, {"factory_nohc", nohc}}
	ctx := context.Background()
	for _, c := range cs {
		if err := c.c.Ping(ctx).Err(); err != nil {
			b.Fatal(err)
		}
	}
	return cs
}

// benchRotation is where this process starts rotating the order of the
// clients. go test -count N runs each sub-benchmark N times in a row, so it
// does not interleave the clients; running the test binary several times
// with -count 1 does (see BENCHMARKS.md), and a random start per process
// makes every client run first, second and third equally often on average,
// so slow drifts in machine load favour none of them.
var benchRotation = rand.IntN(6)

// benchOrder returns the clients rotated by benchRotation+n.
func benchOrder(cs []namedClient, n int) []namedClient {
	k := (benchRotation + n) % len(cs)
	return append(append([]namedClient(nil), cs[k:]...), cs[:k]...)
}

// runConcurrent runs b.N calls of op spread over exactly conc goroutines
// (b.RunParallel cannot give 1 goroutine on a multi-CPU machine, nor
// exactly 8 or 64 on any GOMAXPROCS) and reports the throughput in ops/s.
// op gets its goroutine's number.
func runConcurrent(b *testing.B, conc int, op func(ctx context.Context, g int) error) {
	ctx := context.Background()
	// Warm the pool: every goroutine has its connection before the clock runs.
	var wg sync.WaitGroup
	for g := range conc {
		wg.Go(func() { _ = op(ctx, g) })
	}
	wg.Wait()

	var (
		next     atomic.Int64
		firstErr atomic.Pointer[error]
		n        = int64(b.N)
	)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for g := range conc {
		wg.Go(func() {
			for next.Add(1) <= n {
				if err := op(ctx, g); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if p := firstErr.Load(); p != nil {
		b.Fatal(*p)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	// The client's CPU time (user + system, this process only: the server
	// is another process) per op is far less sensitive to other load on the
	// machine than throughput is.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// cpuTime returns the CPU time this process has used, user plus system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

var benchValue = string(make([]byte, 64))

// getSetKeys are the keys of BenchmarkGetSet, one per goroutine, made
// beforehand so that the op measures the clients only.
var getSetKeys = func() []string {
	keys := make([]string, 64)
	for g := range keys {
		keys[g] = fmt.Sprintf("bench:getset:%03d", g)
	}
	return keys
}()

// getSet is one op of BenchmarkGetSet: SET then GET of the goroutine's own
// key (16 B key, 64 B value): two round trips.
func getSet(c redis.UniversalClient) func(ctx context.Context, g int) error {
	return func(ctx context.Context, g int) error {
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

// BenchmarkGetSet compares the factory's client with a bare go-redis client
// of the same settings (see benchClients) on one local redis-server, started
// once per run of the benchmark and shared by all clients. The clients run
// one after the other at each concurrency, in an order that rotates from one
// concurrency and one process to the next (see benchRotation).
//
// One op is one SET plus one GET (two round trips) on the goroutine's own
// key. Run it as
//
//	go test -run '^$' -bench BenchmarkGetSet -count 6 ./factory/
//
// (each sub-benchmark 6 times in a row), or, to interleave the clients
// against machine noise, run the test binary 10 times with -count 1; then
// compare with benchstat -col /client. BENCHMARKS.md has the exact loop.
func BenchmarkGetSet(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	clients := benchClients(b, srv)
	for i, conc := range []int{1, 8, 64} {
		for _, c := range benchOrder(clients, i) {
			b.Run("conc="+strconv.Itoa(conc)+"/client="+c.name, func(b *testing.B) {
				runConcurrent(b, conc, getSet(c.c))
			})
		}
	}
}

// pipelineLen is the number of commands of one BenchmarkPipeline op.
const pipelineLen = 100

// BenchmarkPipeline compares the clients of BenchmarkGetSet on
// pipelines of 100 commands (50 SET and 50 GET, alternating, on 50 keys
// of the goroutine) from 8 goroutines. One op is one pipeline, one round
// trip; cmds/s is ops/s × 100.
func BenchmarkPipeline(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	clients := benchClients(b, srv)
	const conc = 8
	keys := make([][]string, conc)
	for g := range keys {
		for i := range pipelineLen / 2 {
			keys[g] = append(keys[g], fmt.Sprintf("bench:pipe:%03d:%03d", g, i))
		}
	}
	for _, c := range benchOrder(clients, 0) {
		b.Run("conc="+strconv.Itoa(conc)+"/client="+c.name, func(b *testing.B) {
			runConcurrent(b, conc, func(ctx context.Context, g int) error {
				pipe := c.c.Pipeline()
				for _, k := range keys[g] {
					pipe.Set(ctx, k, benchValue, 0)
					pipe.Get(ctx, k)
				}
				_, err := pipe.Exec(ctx)
				return err
			})
			b.ReportMetric(float64(b.N)*pipelineLen/b.Elapsed().Seconds(), "cmds/s")
		})
	}
}
