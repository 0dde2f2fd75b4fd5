package factory_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

// schBuild builds the client of the profile "p" described by YAML (the
// body of profiles.p) on a fresh runtime.
func schBuild(t testing.TB, body string, args ...any) (*factory.Client, *runtime.Runtime) {
	t.Helper()
	doc := "profiles:\n  p:\n" + indent(fmt.Sprintf(body, args...), "    ")
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("sch.yaml", []byte(doc))}})
	require.NoError(t, err, doc)
	rt := runtime.New(runtime.Options{})
	c, err := factory.Build("p", r.Config.Profiles["p"], rt, factory.BuildOptions{})
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, rt.Close(ctx))
	})
	return c, rt
}

func indent(s, pre string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pre + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func schProxy(t testing.TB, upstream string, opts sch.ProxyOptions) *sch.Proxy {
	t.Helper()
	p := sch.NewProxyWithOptions("127.0.0.1:0", upstream, opts)
	require.NoError(t, p.Start())
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// schLoad is a continuous load of concurrent commands that checks every
// reply; every worker owns one pooled connection's worth of traffic (pool
// size = workers, so every connection keeps being used and reads its
// notifications promptly).
type schLoad struct {
	ok, failed atomic.Int64
	// crossed counts the replies (not among failed) that were not the
	// reply to their command: see checkReply.
	crossed atomic.Int64
	mu      sync.Mutex
	errs    []string
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	slow    chan string // a worker takes a slow command from here
	slowErr chan error
}

// startLoad runs workers SET/GET/ECHO/INCR loops and blockers BLPOP loops
// (asked for 100ms, which go-redis sends as 1 s, its minimum: they are
// nearly always in flight, and a blocker's connection reads a notification
// up to 1 s late). Every reply is checked against what its command must
// return: SET "OK"; ECHO its own token; GET nil or a value this worker
// wrote to that key; INCR 1 or one more than a value the same counter
// returned before (the load may run against two servers during a handoff,
// each with its own counter); BLPOP on a list no one pushes to, nil.
func startLoad(c redis.UniversalClient, workers, blockers int) *schLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &schLoad{cancel: cancel, slow: make(chan string), slowErr: make(chan error, 1)}
	note := func(s string) {
		l.mu.Lock()
		if len(l.errs) < 20 {
			l.errs = append(l.errs, s)
		}
		l.mu.Unlock()
	}
	record := func(err error, wrong string) {
		switch {
		case ctx.Err() != nil && err != nil:
		case err != nil:
			l.failed.Add(1)
			note(err.Error())
		case wrong != "":
			l.crossed.Add(1)
			note("crossed reply: " + wrong)
		default:
			l.ok.Add(1)
		}
	}
	// Keys of this load only: servers may outlive a load (a benchmark's
	// rounds), and counters must start from nothing.
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			counter := id + ":n" + strconv.Itoa(w)
			seen := map[int64]bool{0: true} // INCR results of counter
			for i := 0; ctx.Err() == nil; i++ {
				select {
				case secs := <-l.slow:
					l.slowErr <- c.Do(ctx, "DEBUG", "SLEEP", secs).Err()
					continue
				default:
				}
				j := (w*7919 + i) % 64
				key := id + ":w" + strconv.Itoa(w) + ":k" + strconv.Itoa(j)
				switch i % 4 {
				case 0:
					v, err := c.Set(ctx, key, key+":"+strconv.Itoa(i), 0).Result()
					record(err, wrongIf(err == nil && v != "OK", "SET answered %q", v))
				case 1:
					v, err := c.Get(ctx, key).Result()
					if errors.Is(err, redis.Nil) {
						err = nil
					} else if err == nil && !strings.HasPrefix(v, key+":") {
						record(nil, fmt.Sprintf("GET %s answered %q", key, v))
						continue
					}
					record(err, "")
				case 2:
					token := "e" + strconv.Itoa(w) + ":" + strconv.Itoa(i)
					v, err := c.Echo(ctx, token).Result()
					record(err, wrongIf(err == nil && v != token, "ECHO %s answered %q", token, v))
				default:
					n, err := c.Incr(ctx, counter).Result()
					wrong := wrongIf(err == nil && !seen[n-1], "INCR %s answered %d, after %v", counter, n, keys(seen))
					if err == nil {
						seen[n] = true
					}
					record(err, wrong)
				}
			}
		}()
	}
	for b := range blockers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				v, err := c.BLPop(ctx, 100*time.Millisecond, "q"+strconv.Itoa(b)).Result()
				if errors.Is(err, redis.Nil) {
					record(nil, "")
					continue
				}
				record(err, wrongIf(err == nil, "BLPOP on an empty list answered %q", v))
			}
		}()
	}
	return l
}

func wrongIf(cond bool, format string, args ...any) string {
	if !cond {
		return ""
	}
	return fmt.Sprintf(format, args...)
}

func keys(m map[int64]bool) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	if len(out) > 5 {
		out = out[len(out)-5:]
	}
	return out
}

// progress waits until n more commands have succeeded.
func (l *schLoad) progress(t testing.TB, n int64) {
	t.Helper()
	target := l.ok.Load() + n
	schEventually(t, 10*time.Second, func() bool { return l.ok.Load() >= target }, "load makes progress")
}

// stop ends the load; failed counts failed commands and crossed replies.
func (l *schLoad) stop() (ok, failed int64, errs []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load() + l.crossed.Load(), slices.Clone(l.errs)
}

// slowCommand runs DEBUG SLEEP secs on one of the load's workers.
func (l *schLoad) slowCommand(secs string) error {
	l.slow <- secs
	return <-l.slowErr
}

func schEventually(t testing.TB, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func handoffDelays(rt *runtime.Runtime) (*[]time.Duration, func()) {
	var mu sync.Mutex
	out := new([]time.Duration)
	cancel := rt.Events().SubscribeFunc(func(e runtime.Event) {
		mu.Lock()
		*out = append(*out, e.Delay)
		mu.Unlock()
	}, runtime.WithKinds(runtime.HandoffCompleted), runtime.WithBuffer(10000))
	return out, func() { cancel(); mu.Lock(); mu.Unlock() }
}

// MIGRATING / FAILING_OVER relax the socket timeout: a command slower than
// the normal timeout but faster than the relaxed one succeeds, under load,
// with no failed command; after MIGRATED / FAILED_OVER the normal timeout
// is back. Without SCH the same slow command times out and the load fails.
func TestSCHRelaxedTimeouts(t *testing.T) {
	type pair struct {
		name       string
		begin, end func(*sch.Proxy) int
	}
	for _, pr := range []pair{
		{"migrating", (*sch.Proxy).Migrating, (*sch.Proxy).Migrated},
		{"failing_over", (*sch.Proxy).FailingOver, (*sch.Proxy).FailedOver},
	} {
		for _, mode := range []string{"enabled", "disabled"} {
			t.Run(pr.name+"/"+mode, func(t *testing.T) {
				srv := redistest.Start(t, redistest.Options{})
				p := schProxy(t, srv.Addr(), sch.ProxyOptions{})
				const workers = 6
				c, _ := schBuild(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pool: {size: %d}
sch: {mode: %s, relaxed_timeout: 3s}
`, p.Addr(), workers, mode)
				l := startLoad(c, workers, 0)
				defer l.stop()
				l.progress(t, 300)
				told := pr.begin(p)
				start := strings.ToUpper(pr.name)
				if mode == "disabled" {
					require.Zero(t, told)
					err := l.slowCommand("0.8")
					require.Equal(t, errclass.Timeout, errclass.Of(err), "without SCH the slow command times out: %v", err)
					schEventually(t, 5*time.Second, func() bool { return l.failed.Load() > 0 }, "the load fails while the server is slow")
					_, failed, errs := l.stop()
					t.Logf("without SCH: the slow command failed (%v) and %d load commands failed, e.g. %q", err, failed, errs[0])
					return
				}
				require.Positive(t, told)
				schEventually(t, 5*time.Second, func() bool { return c.Handoffs().Notifications[start] >= uint64(told) }, "every connection read "+start)
				began := time.Now()
				require.NoError(t, l.slowCommand("0.8"), "800ms command under a 300ms socket timeout, relaxed to 3s")
				require.GreaterOrEqual(t, time.Since(began), 800*time.Millisecond)
				l.progress(t, 300)

				told = pr.end(p)
				endName := map[string]string{"MIGRATING": "MIGRATED", "FAILING_OVER": "FAILED_OVER"}[start]
				schEventually(t, 5*time.Second, func() bool { return c.Handoffs().Notifications[endName] >= uint64(told) }, "every connection read "+endName)
				_, failed, errs := l.stop()
				require.Zero(t, failed, "no command failed during the maintenance: %q", errs)
				err := c.Do(context.Background(), "DEBUG", "SLEEP", "0.8").Err()
				require.Equal(t, errclass.Timeout, errclass.Of(err), "after %s the 300ms timeout is back: %v", endName, err)
			})
		}
	}
}

// With pipeline.auto the batches run on the factory's engine (a client of
// its own, whose virtual connections share one socket): the notification
// the server sends on that socket reaches every virtual connection on it,
// and they relax and restore their timeouts like the main client's
// connections.
func TestSCHRelaxedTimeoutsAutoPipeline(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{})
	const workers = 6
	c, h, _ := schBuildHandle(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pool: {size: %d}
pipeline: {auto: true}
sch: {mode: enabled, relaxed_timeout: 3s}
`, p.Addr(), workers)
	require.Nil(t, c.AutoPipeliner(), "a standalone profile does not use go-redis's auto-pipeliner")
	ap := c.Batched().(*redis.Client)
	ctx := context.Background()
	l := startLoad(h, workers, 0)
	defer l.stop()
	l.progress(t, 300)
	// The load's commands go through the engine: its client's virtual
	// connections share a socket of their own, which negotiated
	// notifications like the main client's connections.
	st, ok := c.PipelineStats()
	require.True(t, ok)
	require.Equal(t, 1, st.Sockets)
	require.Equal(t, int(c.PoolStats().TotalConns)+st.Sockets, p.OpenConns())
	// pingEach has every virtual connection take a PING at once: each
	// reads what was sent on the socket before its PING's reply (a
	// virtual connection has no socket of its own for go-redis to peek at
	// while it is idle, and the pool hands out the connection returned
	// last, so one caller's PINGs would take the same one again and
	// again).
	pingEach := func() {
		conns := make([]*redis.Conn, ap.PoolStats().TotalConns)
		for i := range conns {
			conns[i] = ap.Conn()
			require.NoError(t, conns[i].Ping(ctx).Err())
		}
		for _, cn := range conns {
			require.NoError(t, cn.Close())
		}
	}

	told := p.Migrating()
	require.Positive(t, told)
	// The proxy replays MIGRATING to each virtual connection that
	// negotiates on the socket meanwhile, and the socket hands every
	// replay to every virtual connection: the engine counts each once.
	schEventually(t, 5*time.Second, func() bool { return c.Handoffs().Notifications["MIGRATING"] >= uint64(told) },
		"the engine's virtual connections read MIGRATING")
	began := time.Now()
	require.NoError(t, ap.Do(ctx, "DEBUG", "SLEEP", "0.8").Err(), "800ms batched command under a 300ms socket timeout, relaxed to 3s")
	require.GreaterOrEqual(t, time.Since(began), 800*time.Millisecond)
	l.progress(t, 300)

	// The connections the load keeps busy read MIGRATED at once, the idle
	// ones with their next reply: then the slow command must time out,
	// whichever connection it gets.
	told = p.Migrated()
	schEventually(t, 5*time.Second, func() bool { return c.Handoffs().Notifications["MIGRATED"] > 0 }, "the load's connection read MIGRATED")
	_, failed, errs := l.stop()
	require.Zero(t, failed, "no command failed during the maintenance: %q", errs)
	pingEach()
	require.GreaterOrEqual(t, c.Handoffs().Notifications["MIGRATED"], uint64(told), "every connection read MIGRATED")
	err := ap.Do(ctx, "DEBUG", "SLEEP", "0.8").Err()
	require.Equal(t, errclass.Timeout, errclass.Of(err), "after MIGRATED the 300ms timeout is back on the engine's connections: %v", err)
}

// A virtual connection of the engine that was idle when MIGRATING came
// reads it only with the reply to its next command, after go-redis has
// set that command's deadline (it cannot peek at a virtual connection, as
// it does at an idle socket): the notification relaxes the read under
// way, so that the command is not cut at the normal timeout while the
// server is slow.
func TestSCHRelaxedTimeoutsIdleVirtualConnection(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{})
	c, h, _ := schBuildHandle(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pipeline: {auto: true}
sch: {mode: enabled, relaxed_timeout: 3s}
`, p.Addr())
	ctx := context.Background()
	// The socket's direct path is prepared (its handshake client has
	// negotiated notifications) before the maintenance: a negotiation
	// during it has the proxy replay MIGRATING on the socket, which every
	// connection on it reads once more.
	awaitDirectPath(t, h, c)
	bc := c.Batched().(*redis.Client)
	idle, busy := bc.Conn(), bc.Conn()
	defer idle.Close()
	defer busy.Close()
	require.NoError(t, idle.Ping(ctx).Err())
	require.NoError(t, busy.Ping(ctx).Err())
	st, _ := c.PipelineStats()
	require.Equal(t, 1, st.Sockets, "both virtual connections share the socket")

	require.Positive(t, p.Migrating())
	before := c.Handoffs().Notifications["MIGRATING"]
	require.NoError(t, busy.Ping(ctx).Err())
	require.Equal(t, before+1, c.Handoffs().Notifications["MIGRATING"], "the busy connection read MIGRATING before its PING's reply")

	began := time.Now()
	require.NoError(t, idle.Do(ctx, "DEBUG", "SLEEP", "0.8").Err(), "the idle connection read MIGRATING with its slow command's reply: relaxed to 3s")
	require.GreaterOrEqual(t, time.Since(began), 800*time.Millisecond)
}

// A virtual connection opened during a maintenance while the server is
// slow (a caller found every virtual connection busy) sends its handshake
// on the shared socket, where it waits behind the slow command: the
// engine knows that the socket's endpoint is under maintenance and
// relaxes the new connection from its dial, so that its handshake and the
// command that dialed it are not cut at the normal timeout.
func TestSCHRelaxedTimeoutsNewVirtualConnection(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{})
	c, h, _ := schBuildHandle(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pipeline: {auto: true}
sch: {mode: enabled, relaxed_timeout: 3s}
`, p.Addr())
	ctx := context.Background()
	awaitDirectPath(t, h, c) // before the maintenance (see TestSCHRelaxedTimeoutsIdleVirtualConnection)
	bc := c.Batched().(*redis.Client)
	busy := bc.Conn()
	defer busy.Close()
	require.NoError(t, busy.Ping(ctx).Err())

	require.Positive(t, p.Migrating())
	require.NoError(t, busy.Ping(ctx).Err()) // reads MIGRATING
	require.Equal(t, uint64(1), c.Handoffs().Notifications["MIGRATING"])
	slow := make(chan error, 1)
	go func() { slow <- busy.Do(ctx, "DEBUG", "SLEEP", "0.8").Err() }()
	time.Sleep(100 * time.Millisecond) // the server sleeps; not a synchronisation
	fresh := bc.Conn()
	defer fresh.Close()
	began := time.Now()
	require.NoError(t, fresh.Ping(ctx).Err(), "a new virtual connection's handshake and first command wait for the slow command under the relaxed timeout")
	require.GreaterOrEqual(t, time.Since(began), 500*time.Millisecond, "the PING waited for the slow command")
	require.NoError(t, <-slow)
}

// A cluster profile behind one maintenance proxy per node: a notification
// on one node relaxes that node's connections only; commands on the other
// nodes keep their normal timeout, and no command fails.
func TestSCHClusterOneNode(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := cl.Nodes()
	rewrite := map[string]string{}
	proxies := make([]*sch.Proxy, len(nodes))
	for i, n := range nodes {
		proxies[i] = sch.NewProxyWithOptions("127.0.0.1:0", n.Addr(), sch.ProxyOptions{Rewrite: rewrite})
		require.NoError(t, proxies[i].Start())
		t.Cleanup(func() { _ = proxies[i].Close() })
		rewrite[n.Addr()] = proxies[i].Addr()
	}
	const workers = 6
	c, rt := schBuild(t, `
mode: cluster
addrs: [%s]
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pool: {size: %d, min_idle: %d}
sch: {mode: enabled, relaxed_timeout: 3s}
`, proxies[0].Addr(), workers, workers)
	notes, stopNotes := collectNodes(rt)
	cc := c.UniversalClient.(*redis.ClusterClient)
	l := startLoad(cc, workers, 0)
	defer l.stop()
	l.progress(t, 600)
	for i, p := range proxies {
		require.Positive(t, p.OpenConns(), "node %d is reached through its proxy", i)
	}

	told := proxies[0].SMigrating("0-100")
	require.Positive(t, told)
	schEventually(t, 5*time.Second, func() bool { return c.Handoffs().Notifications["SMIGRATING"] >= uint64(told) }, "node 0's connections read SMIGRATING")
	ctx := context.Background()
	node0, err := cc.MasterForKey(ctx, keyOn(t, cl, nodes[0].Addr()))
	require.NoError(t, err)
	require.NoError(t, node0.Do(ctx, "DEBUG", "SLEEP", "0.8").Err(), "node 0 is relaxed")
	l.progress(t, 300)
	ok, failed, errs := l.stop()
	require.Zero(t, failed, "no command failed: %q", errs)
	t.Logf("node 0 relaxed, %d commands, 0 failed", ok)

	node1, err := cc.MasterForKey(ctx, keyOn(t, cl, nodes[1].Addr()))
	require.NoError(t, err)
	err = node1.Do(ctx, "DEBUG", "SLEEP", "0.8").Err()
	require.ErrorContains(t, err, "i/o timeout", "node 1 kept its 300ms timeout")
	for _, p := range proxies[1:] {
		for _, ci := range p.Clients() {
			require.Empty(t, ci.Notifications)
		}
	}
	stopNotes()
	require.Equal(t, []string{proxies[0].Addr()}, *notes, "notifications came from node 0 only")
}

// collectNodes records the distinct node attribute of notification events.
func collectNodes(rt *runtime.Runtime) (*[]string, func()) {
	var mu sync.Mutex
	out := new([]string)
	cancel := rt.Events().SubscribeFunc(func(e runtime.Event) {
		for _, a := range e.Attrs {
			if a.Key == "node" {
				mu.Lock()
				if !slices.Contains(*out, a.Value.String()) {
					*out = append(*out, a.Value.String())
				}
				mu.Unlock()
			}
		}
	}, runtime.WithKinds(runtime.MaintenanceNotification), runtime.WithBuffer(10000))
	return out, func() { cancel(); mu.Lock(); mu.Unlock() }
}

// keyOn returns a key served by the node at addr.
func keyOn(t testing.TB, cl *redistest.Cluster, addr string) string {
	for i := range 10000 {
		k := "key" + strconv.Itoa(i)
		if cl.NodeForKey(k).Addr() == addr {
			return k
		}
	}
	t.Fatalf("no key on %s", addr)
	return ""
}

// schBuildHandle is schBuild through a factory: it returns the profile's
// client and its handle (the handle sends the commands it can through the
// auto-pipeliner when the profile sets pipeline.auto).
func schBuildHandle(t testing.TB, body string, args ...any) (*factory.Client, *factory.Handle, *runtime.Runtime) {
	t.Helper()
	doc := "profiles:\n  p:\n" + indent(fmt.Sprintf(body, args...), "    ")
	rt := runtime.New(runtime.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, rt.Close(ctx))
	})
	f := newFactory(t, load(t, "%s", doc), factory.Options{Runtime: rt})
	h, err := f.Handle("p")
	require.NoError(t, err)
	c, err := f.Lookup("p")
	require.NoError(t, err)
	return c, h, rt
}
