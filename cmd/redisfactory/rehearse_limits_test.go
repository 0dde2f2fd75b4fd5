package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/internal/resp"
	"github.com/redisfactory/redisfactory/sch"
)

// Bounds the rehearsal proxy must hold under attack, from issue #11: RSS
// under 100 MB, and a separate client's PING answered "within 50 ms
// throughout". The latter is asserted as: every PING answered (none
// fails or times out), 99 % of them within 50 ms, and the slowest within
// attackMaxStall. Not all within 50 ms: the prober, the proxy, redis-server
// and the attacker share a 2-core CI machine with other jobs, where any
// process is now and then descheduled for longer than 50 ms, proxy or
// not (the slowest of ~200-1,500 PINGs measured 7-600 ms per class under
// a load of 4-8, while the 99th percentile stayed at 1-43 ms). A stall
// of the server or the proxy, which is what the bound is about, shows as
// seconds (1,500 unread GETs of 1 MB stalled redis-server's other clients
// 2.5 to 29 s before the proxy stopped forwarding them); attackMaxStall,
// 1 s, tells the two apart (the slowest PING under 60,000 short
// connections measured 90-600 ms, as the machine's load came and went). And the bounds are on what the
// proxy adds to the machine's own noise: a control prober PINGs
// redis-server directly meanwhile, and its 99th percentile (slowest) is
// added to the bound on the 99th percentile (slowest). On a quiet machine
// it is a few milliseconds, so the bounds are 50 ms and 1 s; when the
// machine itself stalls every process for 400 ms (seen under a load of 8),
// the proxy is not blamed for it.
const (
	attackMaxRSS   = 100 << 20
	attackMaxPing  = 50 * time.Millisecond
	attackMaxStall = time.Second
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// cliBinary builds the redisfactory command once, without the race
// detector, so that a subprocess's memory is the program's own.
func cliBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redisfactory-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "redisfactory")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// proxyProc is a `redisfactory rehearse` subprocess.
type proxyProc struct {
	cmd   *exec.Cmd
	addr  string
	stdin io.WriteCloser
	out   *rehearseOut
}

func startRehearse(t *testing.T, upstream string, extra ...string) *proxyProc {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	args := append([]string{"rehearse", "--listen", addr, "--upstream", upstream}, extra...)
	cmd := exec.Command(cliBinary(t), args...)
	out := &rehearseOut{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proxyProc{cmd: cmd, addr: addr, stdin: stdin, out: out}
	t.Cleanup(func() {
		_ = stdin.Close() // rehearse stops at the end of its input
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	eventuallyCLI(t, func() bool { return strings.Contains(out.String(), "maintenance proxy listening") }, "proxy listening")
	return p
}

// rss returns the process's resident set size now and at its peak, from
// /proc (VmRSS, VmHWM).
func (p *proxyProc) rss(t *testing.T) (now, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			now = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return now, peak
}

// prober PINGs through the proxy every 10 ms on a connection of its own,
// opened before an attack, and records every answer's time. It runs in a
// process of its own (this test binary, running TestRehearseProberHelper),
// as a separate client does: the attack's goroutines and garbage, which
// are the test process's, do not delay it inside one Go runtime.
type prober struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	lat    []time.Duration
	errMsg string
	done   chan struct{}
}

const proberEnv = "REDISFACTORY_TEST_PROBER_ADDR"

// TestRehearseProberHelper is the prober's process (see prober); it does
// nothing in an ordinary run. It prints "ready" once its connection is
// set up, then one line per PING: its time in nanoseconds, or "error: …"
// and stops. It stops when its standard input closes.
func TestRehearseProberHelper(t *testing.T) {
	addr := os.Getenv(proberEnv)
	if addr == "" {
		t.Skip("the prober process of TestRehearseProxyUnderAttack")
	}
	fail := func(err error) { fmt.Printf("error: %v\n", err); os.Exit(0) }
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		fail(err)
	}
	r := bufio.NewReader(conn)
	ping := resp.Command("PING")
	probe := func() (time.Duration, error) {
		start := time.Now()
		_ = conn.SetDeadline(start.Add(5 * time.Second))
		if _, err := conn.Write(ping); err != nil {
			return 0, err
		}
		f, _, err := resp.ReadFrame(r, nil)
		if err != nil {
			return 0, err
		}
		if string(f) != "+PONG\r\n" {
			return 0, fmt.Errorf("PING answered %q", f)
		}
		return time.Since(start), nil
	}
	if _, err := probe(); err != nil { // includes the connection's setup
		fail(err)
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			os.Exit(0)
		case <-tick.C:
		}
		d, err := probe()
		if err != nil {
			fail(err)
		}
		fmt.Println(int64(d))
	}
}

func startProber(t *testing.T, addr string) *prober {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRehearseProberHelper$")
	cmd.Env = append(os.Environ(), proberEnv+"="+addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	pr := &prober{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(pr.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready":
				close(ready)
			case strings.HasPrefix(line, "error: "):
				pr.mu.Lock()
				pr.errMsg = line
				pr.mu.Unlock()
			default:
				if ns, err := strconv.ParseInt(line, 10, 64); err == nil {
					pr.mu.Lock()
					pr.lat = append(pr.lat, time.Duration(ns))
					pr.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() })
	select {
	case <-ready:
	case <-pr.done:
		t.Fatalf("prober: %s", pr.errMsg)
	case <-time.After(10 * time.Second):
		t.Fatal("prober not ready")
	}
	return pr
}

// finish stops the prober and returns how many PINGs it made, the
// slowest answer and the 95th and 99th percentiles.
func (pr *prober) finish(t *testing.T) (n int, worst, p95, p99 time.Duration, err error) {
	t.Helper()
	_ = pr.stdin.Close()
	select {
	case <-pr.done:
	case <-time.After(10 * time.Second):
		t.Fatal("prober did not stop")
	}
	_ = pr.cmd.Wait()
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.errMsg != "" {
		err = errors.New(pr.errMsg)
	}
	if len(pr.lat) == 0 {
		return 0, 0, 0, 0, err
	}
	slices.Sort(pr.lat)
	n = len(pr.lat)
	return n, pr.lat[n-1], pr.lat[n*95/100], pr.lat[n*99/100], err
}

// Under each attack of issue #11 the rehearsal proxy, a subprocess, stays
// under 100 MB of RSS (peak, VmHWM) and a separate client's PING is
// answered within 50 ms throughout (as attackMaxPing's comment says).
func TestRehearseProxyUnderAttack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	big := strings.Repeat("v", 1<<20)
	require.NoError(t, srv.Client(t).Set(context.Background(), "big", big, 0).Err())

	dial := func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	attacks := []struct {
		name  string
		flags []string
		run   func(t *testing.T, p *proxyProc)
	}{{
		// 14 bytes announcing a 512 MB argument, on 4 connections, then 16 MB
		// of it each: the proxy streams it on instead of holding it.
		name: "huge argument",
		run: func(t *testing.T, p *proxyProc) {
			var wg sync.WaitGroup
			for range 4 {
				c := dial(t, p.addr)
				_, err := c.Write([]byte("*1\r\n$536870912\r\n"))
				require.NoError(t, err)
				wg.Add(1)
				go func() {
					defer wg.Done()
					chunk := bytes.Repeat([]byte("x"), 64<<10)
					for range 256 {
						if _, err := c.Write(chunk); err != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
		},
	}, {
		// 2^24 arguments announced on 4 connections, then a million of them.
		// Straight to redis-server 7.0 (which accepts up to 2^31) this made
		// its other clients wait up to 425 ms; the proxy refuses the
		// command past --max-args (default 2^20, Redis's own bound before
		// 7.0) with Redis's words, before anything reaches the server.
		name: "huge argument count",
		run: func(t *testing.T, p *proxyProc) {
			var wg sync.WaitGroup
			for range 4 {
				c := dial(t, p.addr)
				start := time.Now()
				_, err := c.Write([]byte("*16777216\r\n"))
				require.NoError(t, err)
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := io.ReadAll(c)
				require.NoError(t, err, "the connection ends normally")
				require.Equal(t, "-ERR Protocol error: invalid multibulk length\r\n", string(got))
				t.Logf("refused after %s", time.Since(start).Round(time.Microsecond))
				wg.Add(1)
				go func() { // the rest of the attack goes nowhere
					defer wg.Done()
					chunk := bytes.Repeat([]byte("$1\r\nx\r\n"), 10000)
					for range 100 {
						if _, err := c.Write(chunk); err != nil {
							return
						}
					}
				}()
			}
			wg.Wait()
			eventuallyCLI(t, func() bool {
				return strings.Count(p.out.String(), "invalid multibulk length: 16777216 arguments (at most 1048576)") == 4
			}, "four refusals logged with their numbers")
		},
	}, {
		// 1,500 GETs of a 1 MB value pipelined by a client that never reads.
		// Before the proxy stopped reading such a client, it forwarded them
		// all and redis-server buffered 1.5 GB, stalling its other clients
		// for seconds.
		name: "client that does not read",
		run: func(t *testing.T, p *proxyProc) {
			c := dial(t, p.addr)
			var cmds []byte
			for range 1500 {
				cmds = append(cmds, resp.Command("GET", "big")...)
			}
			_, err := c.Write(cmds)
			require.NoError(t, err)
			// Let the server's replies pile up against the proxy.
			deadline := time.Now().Add(2 * time.Second)
			for time.Now().Before(deadline) {
				_, peak := p.rss(t)
				require.Less(t, peak, int64(attackMaxRSS))
				time.Sleep(50 * time.Millisecond)
			}
			// The server holds a few of the replies, not 1,500 MB of them.
			omem := clientOutputMemory(t, srv)
			t.Logf("redis-server's output buffers: %d MB", omem>>20)
			require.Less(t, omem, int64(100<<20), "the server holds the replies of a few commands, not all 1,500")
			// The client reads after all: its replies arrive whole, in order
			// (the first 100).
			_ = c.SetReadDeadline(time.Now().Add(time.Minute))
			r := bufio.NewReaderSize(c, 1<<16)
			for i := range 100 {
				f, _, err := resp.ReadFrame(r, nil)
				require.NoError(t, err, "reply %d", i)
				require.Len(t, f, len(big)+len("$1048576\r\n\r\n"), "reply %d", i)
			}
		},
	}, {
		// Short connections, one after another: none is remembered for long.
		name: "short connections",
		run: func(t *testing.T, p *proxyProc) {
			n := 60000
			if testing.Short() {
				n = 6000
			}
			var wg sync.WaitGroup
			var failed atomic.Int64
			per := n / 8
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						c, err := net.Dial("tcp", p.addr)
						if err != nil {
							failed.Add(1)
							continue
						}
						_, _ = c.Write(resp.Command("PING"))
						_, _, err = resp.ReadFrame(bufio.NewReader(c), nil)
						if err != nil {
							failed.Add(1)
						}
						_ = c.(*net.TCPConn).SetLinger(0) // no TIME_WAIT pile-up on the test's side
						_ = c.Close()
					}
				}()
			}
			wg.Wait()
			require.Zero(t, failed.Load(), "short connections failed")
			_, err := io.WriteString(p.stdin, "clients\n")
			require.NoError(t, err)
			eventuallyCLI(t, func() bool { return strings.Contains(p.out.String(), "client "+strconv.Itoa(per*8)+" ") }, "clients listing")
			listed := strings.Count(p.out.String(), ": closed, no notifications")
			require.LessOrEqual(t, listed, 256, "closed connections are forgotten")
		},
	}, {
		// ~10,000 silent connections with the default limits: the first
		// 1,000 are held (and would be for the 10-minute idle timeout),
		// the others are refused at once with Redis's words, so no fd runs
		// out. Connections opened before keep being served (the prober,
		// a pool); a new client that connects during the flood is refused
		// too, at once and explicitly: the proxy cannot tell it from the
		// attacker's, and Redis past maxclients does the same.
		name: "silent connections, default limits",
		run: func(t *testing.T, p *proxyProc) {
			n := 10000
			var lim syscall.Rlimit
			if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < uint64(n)+500 {
				n = int(lim.Cur) - 500 // the test process's own descriptors
				t.Logf("RLIMIT_NOFILE %d: %d silent connections", lim.Cur, n)
			}
			require.Greater(t, n, 2*sch.DefaultMaxConns, "RLIMIT_NOFILE too low for this test")
			var refusedN atomic.Int64
			var conns []net.Conn
			t.Cleanup(func() {
				for _, c := range conns {
					_ = c.Close()
				}
			})
			newcomer := func() {
				start := time.Now()
				c, err := net.Dial("tcp", p.addr)
				require.NoError(t, err)
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				got, _, err := resp.ReadFrame(r, nil)
				took := time.Since(start)
				t.Logf("a new client during the flood: %q after %s", got, took.Round(time.Microsecond))
				require.NoError(t, err)
				require.Equal(t, "-ERR max number of clients reached\r\n", string(got), "a new client is refused explicitly")
				require.Less(t, took, attackMaxStall, "and at once")
				_, err = r.ReadByte()
				require.ErrorIs(t, err, io.EOF, "then the connection is closed")
			}
			for i := range n {
				if i == n/2 {
					newcomer()
				}
				c, err := net.Dial("tcp", p.addr)
				if err != nil { // reset while the proxy refuses others: refused too
					refusedN.Add(1)
					continue
				}
				conns = append(conns, c)
				go func() { // held ones read until the cleanup closes them
					b := make([]byte, 64)
					if n, _ := c.Read(b); strings.HasPrefix(string(b[:n]), "-ERR max number of clients reached") {
						refusedN.Add(1)
						_ = c.Close()
					}
				}()
			}
			newcomer()
			// The prober holds one of the 1,000 places.
			for deadline := time.Now().Add(20 * time.Second); refusedN.Load() < int64(n-sch.DefaultMaxConns); time.Sleep(10 * time.Millisecond) {
				require.True(t, time.Now().Before(deadline), "%d of %d connections over the cap refused", refusedN.Load(), n-sch.DefaultMaxConns)
			}
		},
	}, {
		// Silent connections past a cap: refused with Redis's words; the
		// silent ones are closed after the idle timeout, and a new client
		// is served again.
		name:  "silent connections, idle timeout",
		flags: []string{"--max-conns", "1000", "--idle-timeout", "2s"},
		run: func(t *testing.T, p *proxyProc) {
			var refusedN atomic.Int64
			var wg sync.WaitGroup
			deadline := time.Now().Add(5 * time.Second)
			for range 3000 {
				c, err := net.Dial("tcp", p.addr)
				if err != nil { // reset while the proxy refuses others: refused too
					refusedN.Add(1)
					continue
				}
				t.Cleanup(func() { _ = c.Close() })
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = c.SetReadDeadline(deadline)
					b := make([]byte, 64)
					if n, _ := c.Read(b); strings.HasPrefix(string(b[:n]), "-ERR max number of clients reached") {
						refusedN.Add(1)
					}
				}()
			}
			wg.Wait()
			refused := int(refusedN.Load())
			require.GreaterOrEqual(t, refused, 1900, "connections over the cap are refused")
			eventuallyCLI(t, func() bool { return strings.Count(p.out.String(), "reason=idle") >= 990 }, "idle connections closed")
			// Room again: a new client is served.
			c := redis.NewClient(&redis.Options{Addr: p.addr, MaxRetries: -1})
			defer c.Close()
			require.NoError(t, c.Ping(context.Background()).Err())
		},
	}}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			p := startRehearse(t, srv.Addr(), a.flags...)
			pr := startProber(t, p.addr)
			control := startProber(t, srv.Addr()) // the machine's own noise
			_, before := p.rss(t)
			start := time.Now()
			a.run(t, p)
			// The attack's connections stay open: keep probing a while.
			hold := time.Now().Add(2 * time.Second)
			for time.Now().Before(hold) {
				_, peak := p.rss(t)
				require.Less(t, peak, int64(attackMaxRSS), "peak RSS")
				time.Sleep(50 * time.Millisecond)
			}
			probes, worst, p95, p99, perr := pr.finish(t)
			_, cWorst, cP95, cP99, cErr := control.finish(t)
			now, peak := p.rss(t)
			t.Logf("%s: %s; proxy RSS %d MB before, %d MB peak, %d MB now; %d PINGs of a separate client: p95 %s, p99 %s, slowest %s (err %v); straight to redis-server meanwhile: p95 %s, p99 %s, slowest %s (err %v)",
				a.name, time.Since(start).Round(time.Millisecond), before>>20, peak>>20, now>>20, probes, p95, p99, worst, perr, cP95, cP99, cWorst, cErr)
			require.Less(t, peak, int64(attackMaxRSS), "peak RSS")
			require.NoError(t, perr, "the separate client's PING failed during the attack")
			require.Greater(t, probes, 50, "the prober ran throughout")
			// See attackMaxPing for why the 99th percentile, a stall bound,
			// and the control's figures added.
			require.Less(t, p99, attackMaxPing+cP99, "99th percentile PING of a separate client (the control's: %s)", cP99)
			require.Less(t, worst, attackMaxStall+cWorst, "slowest PING of a separate client (the control's: %s)", cWorst)
		})
	}
}

// clientOutputMemory returns the memory of redis-server's client output
// buffers (CLIENT LIST's omem, summed).
func clientOutputMemory(t *testing.T, srv *redistest.Server) int64 {
	t.Helper()
	list, err := srv.Client(t).ClientList(context.Background()).Result()
	require.NoError(t, err)
	var total int64
	for _, f := range strings.Fields(list) {
		if v, ok := strings.CutPrefix(f, "omem="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(t, err)
			total += n
		}
	}
	return total
}
