package factory_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/internal/resp"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

// BenchmarkSCHOverhead compares command throughput (GET, 4×GOMAXPROCS
// goroutines, pool 64) with sch on (auto, no maintenance) and off, against
// three servers:
//
//   - proxy: redis-server behind the maintenance proxy (sch.Proxy), which
//     accepts the CLIENT MAINT_NOTIFICATIONS handshake, so that auto really
//     negotiates the feature; the proxy runs in this process, so cpu-ns/op
//     counts its CPU too (the same in both settings);
//   - fake: an in-process RESP3 server that accepts the handshake and
//     answers from memory, with no upstream hop: a command's cost is then
//     mostly the client's, which magnifies what sch adds on the client;
//   - direct: redis-server itself, where auto switches itself off after the
//     first handshake (open-source Redis does not know the command).
//
// The settings of one server run one after the other in one process, so
// compare them over several processes, alternating the order:
//
//	go test -c -o /tmp/factory.test ./factory/
//	for i in $(seq 10); do for m in disabled auto; do
//	  /tmp/factory.test -test.run '^$' -test.bench "BenchmarkSCHOverhead/fake/sch=$m\$" -test.benchtime 2s
//	done; done
func BenchmarkSCHOverhead(b *testing.B) {
	for _, server := range schBenchServers(b) {
		for _, mode := range []string{"disabled", "auto"} {
			b.Run(server.name+"/sch="+mode, func(b *testing.B) {
				c := benchSCHClient(b, server.addr, mode)
				ctx := context.Background()
				checkSCHBench(b, c, server.name, mode)
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
				// CPU time of the process per op: less sensitive to other
				// load on a shared machine than wall time.
				b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

type schBenchServer struct{ name, addr string }

// schBenchServers starts the servers of BenchmarkSCHOverhead: redis-server
// behind a maintenance proxy, a fake in-process server, and redis-server.
func schBenchServers(b *testing.B) []schBenchServer {
	srv := redistest.Start(b, redistest.Options{})
	p := sch.NewProxy("127.0.0.1:0", srv.Addr())
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return []schBenchServer{{"proxy", p.Addr()}, {"fake", startFakeRESP3(b)}, {"direct", srv.Addr()}}
}

// checkSCHBench writes the benchmark's key and checks that auto negotiated
// maintenance notifications with the proxy and the fake server, and
// switched itself off with redis-server.
func checkSCHBench(b *testing.B, c *factory.Client, server, mode string) {
	if err := c.Set(context.Background(), "bench", "v", 0).Err(); err != nil {
		b.Fatal(err)
	}
	on := c.Handoffs().Negotiated > 0
	if want := mode == "auto" && server != "direct"; on != want {
		b.Fatalf("%s, sch %s: maintenance notifications on: %v, want %v", server, mode, on, want)
	}
}

// BenchmarkSCHOverheadPaired measures the same as BenchmarkSCHOverhead, but
// runs both settings in one process, alternating in chunks of 5,000
// commands (ABBA order), so that changes in the machine's load hit both
// alike. It reports, over the chunk pairs, the median (and quartiles) of
// auto's CPU time and wall time relative to disabled, in percent; b.N is
// the number of commands per setting:
//
//	go test -run '^$' -bench BenchmarkSCHOverheadPaired -benchtime 500000x ./factory/
func BenchmarkSCHOverheadPaired(b *testing.B) {
	const chunk = 5000
	for _, server := range schBenchServers(b) {
		b.Run(server.name, func(b *testing.B) {
			off := benchSCHClient(b, server.addr, "disabled")
			on := benchSCHClient(b, server.addr, "auto")
			checkSCHBench(b, off, server.name, "disabled")
			checkSCHBench(b, on, server.name, "auto")
			workers := 4 * goruntime.GOMAXPROCS(0)
			run := func(c *factory.Client, n int) (wall, cpu time.Duration) {
				var left atomic.Int64
				left.Store(int64(n))
				var wg sync.WaitGroup
				start, cpu0 := time.Now(), cpuTime()
				for range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for left.Add(-1) >= 0 {
							if err := c.Get(context.Background(), "bench").Err(); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				return time.Since(start), cpuTime() - cpu0
			}
			run(off, chunk) // warm both pools up
			run(on, chunk)
			b.ResetTimer()
			var cpuRatios, wallRatios []float64
			for i, done := 0, 0; done < b.N; i++ {
				n := min(chunk, b.N-done)
				done += n
				var wOff, cOff, wOn, cOn time.Duration
				if i%2 == 0 {
					wOff, cOff = run(off, n)
					wOn, cOn = run(on, n)
				} else {
					wOn, cOn = run(on, n)
					wOff, cOff = run(off, n)
				}
				if cOff > 0 && wOff > 0 {
					cpuRatios = append(cpuRatios, float64(cOn)/float64(cOff))
					wallRatios = append(wallRatios, float64(wOn)/float64(wOff))
				}
			}
			b.StopTimer()
			pct := func(r []float64, q float64) float64 {
				slices.Sort(r)
				return (r[int(q*float64(len(r)-1)+0.5)] - 1) * 100
			}
			b.ReportMetric(pct(cpuRatios, 0.5), "cpu-%")
			b.ReportMetric(pct(cpuRatios, 0.25), "cpu-%-p25")
			b.ReportMetric(pct(cpuRatios, 0.75), "cpu-%-p75")
			b.ReportMetric(pct(wallRatios, 0.5), "wall-%")
			b.ReportMetric(float64(len(cpuRatios)), "pairs")
		})
	}
}

// startFakeRESP3 starts an in-process server that speaks just enough RESP3
// for BenchmarkSCHOverhead: HELLO, the CLIENT handshake commands (including
// MAINT_NOTIFICATIONS, which it accepts) and GET, answered from memory. It
// returns its address.
func startFakeRESP3(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	b.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				serveFakeRESP3(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func serveFakeRESP3(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		args, _, err := resp.ReadCommand(r)
		if err != nil {
			return
		}
		if len(args) == 0 {
			continue
		}
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			_, _ = w.WriteString("%3\r\n+server\r\n+redis\r\n+version\r\n+7.0.15\r\n+proto\r\n:3\r\n")
		case "GET":
			_, _ = w.WriteString("$1\r\nv\r\n")
		case "PING":
			_, _ = w.WriteString("+PONG\r\n")
		default: // SET, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS, …
			_, _ = w.WriteString("+OK\r\n")
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
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
