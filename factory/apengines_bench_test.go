//go:build unix

package factory_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// BenchmarkAutoPipelineEngines compares go-redis v9.23.0's auto-pipelining
// engines on the GET+SET workload of BenchmarkSideBySideGetSet, beside
// rueidis, to show why pipeline.auto maps onto the half-duplex engine:
//
//   - ap-half-duplex: the default engine (one batch in flight, batches
//     coalesced by the expected wave of returning callers);
//   - ap-half-duplex-20µs: the same with MaxFlushDelay, an explicit window
//     (its timer fires ~1 ms late on a 2-core host: it collapses);
//   - ap-full-duplex and ap-full-duplex-20µs: FullDuplex, a writer and a
//     reader goroutine on one held connection, as rueidis pipes.
//
// Full duplex closes most of the gap to rueidis at 8 callers but loses a
// third of the half-duplex throughput at 64, and it runs a client's process
// hooks after the command is already written (a hook cannot veto or retry a
// write), which the retry policy and the cache's write hook rely on; see
// BENCHMARKS.md.
//
//	go test -run '^$' -bench BenchmarkAutoPipelineEngines -benchtime 15x ./factory/
func BenchmarkAutoPipelineEngines(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	engine := func(o *redis.AutoPipelineOptions) redis.Cmdable {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3, PoolSize: 64, MaxRetries: -1,
			DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, ContextTimeoutEnabled: true})
		b.Cleanup(func() { _ = c.Close() })
		ap, err := c.AutoPipelineWithOptions(o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ap.Close() })
		return ap
	}
	const window = 20 * time.Microsecond
	clients := []sideClient{
		{name: "ap-half-duplex", op: goRedisGetSet(engine(nil))},
		{name: "ap-half-duplex-20µs", op: goRedisGetSet(engine(&redis.AutoPipelineOptions{MaxFlushDelay: window}))},
		{name: "ap-full-duplex", op: goRedisGetSet(engine(&redis.AutoPipelineOptions{FullDuplex: true}))},
		{name: "ap-full-duplex-20µs", op: goRedisGetSet(engine(&redis.AutoPipelineOptions{FullDuplex: true, MaxFlushDelay: window}))},
		{name: "rueidis", op: rueidisGetSet(newRueidis(b, srv.Addr(), false))},
	}
	sideBySide(b, "go-redis auto-pipelining engines, GET+SET 64 B", []int{8, 64}, clients, []string{"rueidis", "ap-half-duplex"}, false)
}
