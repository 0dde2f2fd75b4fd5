package factory_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

// BenchmarkSCHOverhead compares command throughput with sch on (auto,
// against a maintenance proxy that accepts the handshake, no maintenance)
// and off, through the same proxy, in one process:
//
//	go test -run '^$' -bench BenchmarkSCHOverhead -benchtime 3s -count 6 ./factory/
func BenchmarkSCHOverhead(b *testing.B) {
	srv := redistest.Start(b, redistest.Options{})
	p := sch.NewProxy("127.0.0.1:0", srv.Addr())
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	for _, mode := range []string{"disabled", "auto"} {
		b.Run("sch="+mode, func(b *testing.B) {
			c := benchSCHClient(b, p.Addr(), mode)
			ctx := context.Background()
			if err := c.Set(ctx, "bench", "v", 0).Err(); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(4)
			b.ResetTimer()
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Get(ctx, "bench").Err(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			// CPU time of the process (client and proxy) per op: less
			// sensitive to other load on a shared machine than wall time.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func benchSCHClient(b *testing.B, addr, mode string) *factory.Client {
	doc := fmt.Sprintf("profiles:\n  p:\n    addr: %s\n    protocol: 3\n    pool: {size: 64}\n    retry: {retries: 0}\n    sch: {mode: %s}\n", addr, mode)
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("b.yaml", []byte(doc))}})
	if err != nil {
		b.Fatal(err)
	}
	rt := runtime.New(runtime.Options{})
	c, err := factory.Build("p", r.Config.Profiles["p"], rt, factory.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = c.Close()
		_ = rt.Close(context.Background())
	})
	return c
}

// BenchmarkSCHHandoff measures, under a continuous load of 16 workers, how
// long after a MOVING each connection is handed off to the new endpoint
// (event Delay), and reports the median, p90 and max per round:
//
//	go test -run '^$' -bench BenchmarkSCHHandoff -benchtime 5x ./factory/
func BenchmarkSCHHandoff(b *testing.B) {
	a := redistest.Start(b, redistest.Options{})
	bs := redistest.Start(b, redistest.Options{})
	var all []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		pa := sch.NewProxyWithOptions("127.0.0.1:0", a.Addr(), sch.ProxyOptions{NoAutoCut: true})
		pb := sch.NewProxy("127.0.0.1:0", bs.Addr())
		if err := pa.Start(); err != nil {
			b.Fatal(err)
		}
		if err := pb.Start(); err != nil {
			b.Fatal(err)
		}
		const workers = 16
		c := benchSCHClientPool(b, pa.Addr(), workers)
		var mu sync.Mutex
		var ds []time.Duration
		cancel := c.runtime.Events().SubscribeFunc(func(e runtime.Event) {
			mu.Lock()
			ds = append(ds, e.Delay)
			mu.Unlock()
		}, runtime.WithKinds(runtime.HandoffCompleted), runtime.WithBuffer(10000))
		l := startLoad(c.Client, workers, 0)
		l.progress(b, 1000)
		b.StartTimer()
		pa.Moving(pb.Addr(), 10)
		ctx, cancelWait := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := pa.WaitMoved(ctx); err != nil {
			b.Fatal(err)
		}
		cancelWait()
		b.StopTimer()
		l.progress(b, 1000)
		_, failed, errs := l.stop()
		if failed > 0 {
			b.Fatalf("%d commands failed: %q", failed, errs)
		}
		cancel()
		mu.Lock()
		all = append(all, ds...)
		mu.Unlock()
		_ = c.Close()
		_ = pa.Close()
		_ = pb.Close()
	}
	slices.Sort(all)
	if len(all) == 0 {
		b.Fatal("no handoff")
	}
	q := func(f float64) float64 { return float64(all[int(f*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.9), "p90-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(1), "max-ms")
	b.ReportMetric(float64(len(all))/float64(b.N), "handoffs/op")
}

type benchClient struct {
	*factory.Client
	runtime *runtime.Runtime
}

func benchSCHClientPool(b *testing.B, addr string, pool int) benchClient {
	doc := fmt.Sprintf("profiles:\n  p:\n    addr: %s\n    protocol: 3\n    pool: {size: %d}\n    retry: {retries: 0}\n    sch: {mode: enabled, handoff_timeout: 5s}\n", addr, pool)
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("b.yaml", []byte(doc))}})
	if err != nil {
		b.Fatal(err)
	}
	rt := runtime.New(runtime.Options{})
	c, err := factory.Build("p", r.Config.Profiles["p"], rt, factory.BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(context.Background()) })
	return benchClient{c, rt}
}
