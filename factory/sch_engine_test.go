package factory_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

// During a maintenance a relaxed timeout never shortens a longer one: a
// BLPOP that waits 2s for its element (socket timeout 500ms, relaxed
// timeout 1s, MIGRATING received on its connection) returns the element,
// with a 5s timeout and with none (0, forever). go-redis's own
// maintenance notifications replace the deadline with the relaxed one and
// end the same BLPOP with a timeout after 1s.
func TestSCHRelaxedTimeoutKeepsBlockingCommands(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{})
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = admin.Close() })
	ctx := context.Background()

	// blpop pushes an element 2s after starting a BLPOP on c and returns
	// what the BLPOP got and how long it took.
	blpop := func(t *testing.T, c redis.Cmdable, key string, timeout time.Duration) ([]string, error, time.Duration) {
		start := time.Now()
		pushed := make(chan error, 1)
		go func() {
			time.Sleep(2 * time.Second)
			pushed <- admin.RPush(ctx, key, "element").Err()
		}()
		v, err := c.BLPop(ctx, timeout, key).Result()
		took := time.Since(start)
		require.NoError(t, <-pushed)
		return v, err, took
	}

	c, _ := schBuild(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 500ms}
pool: {size: 1}
sch: {mode: enabled, relaxed_timeout: 1s}
`, p.Addr())
	require.NoError(t, c.Ping(ctx).Err())
	require.Equal(t, 1, p.Migrating())
	require.NoError(t, c.Ping(ctx).Err()) // the connection reads MIGRATING
	require.Equal(t, uint64(1), c.Handoffs().Notifications["MIGRATING"])
	for _, timeout := range []time.Duration{5 * time.Second, 0} {
		t.Run("timeout="+timeout.String(), func(t *testing.T) {
			v, err, took := blpop(t, c, "q"+timeout.String(), timeout)
			require.NoError(t, err, "BLPOP with timeout %s during MIGRATING", timeout)
			require.Equal(t, []string{"q" + timeout.String(), "element"}, v)
			require.GreaterOrEqual(t, took, 2*time.Second)
			t.Logf("BLPOP %s during MIGRATING returned its element after %s", timeout, took.Round(time.Millisecond))
		})
	}
	// The relaxed timeout itself applies: a 800ms command under the 500ms
	// socket timeout succeeds, until MIGRATED.
	require.NoError(t, c.Do(ctx, "DEBUG", "SLEEP", "0.8").Err())
	require.Equal(t, 1, p.Migrated())
	require.NoError(t, c.Ping(ctx).Err())
	err := c.Do(ctx, "DEBUG", "SLEEP", "0.8").Err()
	require.Equal(t, errclass.Timeout, errclass.Of(err), "after MIGRATED the 500ms timeout is back: %v", err)

	t.Run("go-redis's own", func(t *testing.T) {
		g := redis.NewClient(&redis.Options{
			Addr: p.Addr(), Protocol: 3, PoolSize: 1, ReadTimeout: 500 * time.Millisecond,
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeEnabled, RelaxedTimeout: time.Second},
		})
		t.Cleanup(func() { _ = g.Close() })
		require.NoError(t, g.Ping(ctx).Err())
		require.Equal(t, 1, p.Migrating())
		require.NoError(t, g.Ping(ctx).Err())
		_, err, took := blpop(t, g, "g", 5*time.Second)
		require.Equal(t, errclass.Timeout, errclass.Of(err), "go-redis replaces the BLPOP's deadline with the relaxed timeout: %v", err)
		require.Less(t, took, 2*time.Second)
		t.Logf("go-redis's own: BLPOP 5s during MIGRATING ended after %s with %v", took.Round(time.Millisecond), err)
	})
}

// Sentinel: the master sits behind a maintenance proxy that the sentinel
// monitors, so the failover client's connections to the master go through
// it. A MOVING on them to a second server (behind a second proxy) under a
// load that checks every reply hands every connection off before the
// announced time ends, with no failed command and no crossed reply; the
// old endpoint is then cut. go-redis's failover client has no maintenance
// notifications of its own.
func TestSCHSentinelMovingUnderLoad(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	pa := schProxy(t, a.Addr(), sch.ProxyOptions{NoAutoCut: true})
	pb := schProxy(t, b.Addr(), sch.ProxyOptions{})
	sentinel := redistest.StartSentinelFor(t, "mymaster", pa.Addr())
	const workers, blockers = 6, 2
	c, _ := schBuild(t, `
mode: sentinel
sentinel: {master_name: mymaster, addrs: [%s]}
protocol: 3
retry: {retries: 0}
timeouts: {socket: 2s}
pool: {size: %d}
sch: {mode: enabled, relaxed_timeout: 5s, handoff_timeout: 5s}
`, sentinel.Addr(), workers+blockers)
	l := startLoad(c, workers, blockers)
	defer l.stop()
	l.progress(t, 500)
	require.Positive(t, clientConns(pa), "the master's connections go through the proxy")

	told := pa.Moving(pb.Addr(), movingSeconds)
	start := time.Now()
	require.Positive(t, told)
	ctx, cancel := context.WithTimeout(context.Background(), movingSeconds*time.Second)
	defer cancel()
	allLeft, err := pa.WaitMoved(ctx)
	require.NoError(t, err, "every connection left for the new endpoint before the announced %ds: %+v", movingSeconds, pa.Clients())
	require.True(t, allLeft)
	schEventually(t, time.Until(start.Add(movingSeconds*time.Second)), func() bool { return clientConns(pa) == 0 },
		"no connection left on the old endpoint before the announced time ends")
	moved := time.Since(start)
	pa.Cut()
	l.progress(t, 500)
	ok, failed, errs := l.stop()
	require.Zero(t, failed, "no command failed and no reply was crossed: %q", errs)
	require.Zero(t, clientConns(pa), "connections opened after the MOVING go to the new endpoint")
	require.Positive(t, clientConns(pb), "the connections are on the new endpoint")
	st := c.Handoffs()
	require.GreaterOrEqual(t, st.Retired, uint64(told))
	require.Positive(t, st.HandoffsCompleted)
	require.Zero(t, st.HandoffsFailed)
	t.Logf("Sentinel: %d connections told, %d retired, %d handed off, all moved %s after the MOVING; %d commands, 0 failed, 0 crossed",
		told, st.Retired, st.HandoffsCompleted, moved.Round(time.Millisecond), ok)
}

// clientConns counts the open connections of a proxy that negotiated
// notifications: the client's, not the sentinel's (which monitors the
// master through the same proxy).
func clientConns(p *sch.Proxy) int {
	n := 0
	for _, ci := range p.Clients() {
		if ci.Open && ci.Negotiated {
			n++
		}
	}
	return n
}

// Cluster: SMIGRATING relaxes the connections of the node that sent it
// (a command slower than the socket timeout succeeds there), and SMIGRATED
// restores them and reloads the slot map (CLUSTER SLOTS again).
func TestSCHClusterSMigrated(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := cl.Nodes()
	rewrite := map[string]string{}
	proxies := make([]*sch.Proxy, len(nodes))
	for i, n := range nodes {
		proxies[i] = schProxy(t, n.Addr(), sch.ProxyOptions{Rewrite: rewrite})
		rewrite[n.Addr()] = proxies[i].Addr()
	}
	c, _ := schBuild(t, `
mode: cluster
addrs: [%s]
protocol: 3
retry: {retries: 0}
timeouts: {socket: 300ms}
pool: {size: 1}
sch: {mode: enabled, relaxed_timeout: 3s}
`, proxies[0].Addr())
	cc := c.UniversalClient.(*redis.ClusterClient)
	ctx := context.Background()
	node0, err := cc.MasterForKey(ctx, keyOn(t, cl, nodes[0].Addr()))
	require.NoError(t, err)
	require.NoError(t, node0.Ping(ctx).Err())

	require.Equal(t, 1, proxies[0].SMigrating("0-100"))
	require.NoError(t, node0.Ping(ctx).Err()) // reads SMIGRATING
	require.NoError(t, node0.Do(ctx, "DEBUG", "SLEEP", "0.8").Err(), "node 0 is relaxed")

	slotsCalls := func() int {
		n := 0
		for _, node := range nodes {
			admin := redis.NewClient(&redis.Options{Addr: node.Addr()})
			info, err := admin.Info(ctx, "commandstats").Result()
			_ = admin.Close()
			require.NoError(t, err)
			if i := strings.Index(info, "cmdstat_cluster|slots:calls="); i >= 0 {
				v, _ := strconv.Atoi(strings.SplitN(info[i+len("cmdstat_cluster|slots:calls="):], ",", 2)[0])
				n += v
			}
		}
		return n
	}
	before := slotsCalls()
	frame := "*3\r\n$9\r\nSMIGRATED\r\n:99\r\n$5\r\n0-100\r\n"
	frame = ">" + frame[1:] // a push frame
	require.Equal(t, 1, proxies[0].Send([]byte(frame)))
	require.NoError(t, node0.Ping(ctx).Err()) // reads SMIGRATED
	require.Equal(t, uint64(1), c.Handoffs().Notifications["SMIGRATED"])
	schEventually(t, 5*time.Second, func() bool { return slotsCalls() > before }, "SMIGRATED reloads the slot map")
	err = node0.Do(ctx, "DEBUG", "SLEEP", "0.8").Err()
	require.ErrorContains(t, err, "i/o timeout", "after SMIGRATED node 0 has its 300ms timeout again")
}

// A MOVING without an endpoint ("this address, later"; the proxy sends a
// null endpoint only to a connection that negotiated type none) retires the
// connection after half the announced time, while it sits idle in the
// pool: the next command and pipeline are refused by it before a byte is
// written and run once on a new connection to the same address (INCR
// counts each exactly once).
func TestSCHMovingNullEndpoint(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{NoAutoCut: true})
	c, _ := schBuild(t, `
addr: %s
protocol: 3
retry: {retries: 0}
pool: {size: 1}
sch: {mode: enabled, endpoint_type: none}
`, p.Addr())
	ctx := context.Background()
	ping := func() {
		require.NoError(t, c.Ping(ctx).Err())
		_, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error { pl.Ping(ctx); return nil })
		require.NoError(t, err)
	}
	ping() // a connection for commands, one for pipelines (go-redis's pipeline pool)
	start := time.Now()
	require.Equal(t, 2, p.Moving("none", 2))
	ping() // both read the MOVING
	schEventually(t, 3*time.Second, func() bool { return c.Handoffs().Retired == 2 }, "the connections are retired")
	require.GreaterOrEqual(t, time.Since(start), time.Second, "after half the announced time")
	require.Equal(t, 2, p.OpenConns(), "the retired connections are idle in the pools, still open")

	cmds, err := c.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Incr(ctx, "x")
		pl.Incr(ctx, "x")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(1), cmds[0].(*redis.IntCmd).Val())
	require.Equal(t, int64(2), cmds[1].(*redis.IntCmd).Val())
	require.Equal(t, int64(3), c.Incr(ctx, "x").Val())

	clients := p.Clients()
	require.Len(t, clients, 4, "two new connections, to the same address")
	for _, ci := range clients[:2] {
		require.False(t, ci.Open)
	}
	for _, ci := range clients[2:] {
		require.True(t, ci.Open)
		require.True(t, ci.Negotiated)
	}
	st := c.Handoffs()
	require.Equal(t, uint64(2), st.HandoffsStarted)
	require.Equal(t, uint64(2), st.HandoffsCompleted)
}

// A MOVING to an endpoint that cannot be reached: the handoff fails (an
// event says so) and the connection is opened on the profile's address
// instead; no command fails.
func TestSCHMovingUnreachableEndpointFallsBack(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := schProxy(t, srv.Addr(), sch.ProxyOptions{NoAutoCut: true})
	c, rt := schBuild(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {connect: 200ms}
pool: {size: 1}
sch: {mode: enabled, handoff_timeout: 1s, max_handoff_retries: 2}
`, p.Addr())
	failed := rt.Events().Count(runtime.HandoffFailed)
	ctx := context.Background()
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	require.Equal(t, 1, p.Moving("127.0.0.1:1", 5)) // nothing listens on port 1
	require.NoError(t, c.Ping(ctx).Err())           // reads the MOVING; the connection is retired
	for range 5 {
		require.Equal(t, "v", c.Get(ctx, "k").Val())
	}
	st := c.Handoffs()
	require.Equal(t, uint64(1), st.Retired)
	require.Equal(t, uint64(1), st.HandoffsFailed)
	require.Equal(t, failed+1, rt.Events().Count(runtime.HandoffFailed))
	require.Len(t, p.Clients(), 2, "the new connection is on the profile's address, and stays there")
	require.Equal(t, uint64(2), st.Notifications["MOVING"], "the MOVING repeated to the new connection")
}

// Sentinel: a failover during a maintenance still lands on the new master.
// The sentinel monitors the proxy in front of server a; a replica r
// replicates from a. A MOVING moves the client's master connections to a
// second endpoint; then the sentinel promotes r: the failover client
// drops those connections and dials r, which no MOVING redirected, and
// writes land there. (The failover is forced within a minute of the
// sentinel finding r: later, the sentinel would reconfigure r to
// replicate through the proxy, which does not carry replication.)
func TestSCHSentinelFailoverDuringMaintenance(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	_, aPort, _ := strings.Cut(a.Addr(), ":")
	r := redistest.Start(t, redistest.Options{Args: []string{"--replicaof", "127.0.0.1", aPort}})
	pa := schProxy(t, a.Addr(), sch.ProxyOptions{NoAutoCut: true})
	pb := schProxy(t, b.Addr(), sch.ProxyOptions{})
	sentinel := redistest.StartSentinelFor(t, "mymaster", pa.Addr())
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	t.Cleanup(func() { _ = sc.Close() })
	ctx := context.Background()
	schEventually(t, 10*time.Second, func() bool {
		reps, err := sc.Replicas(ctx, "mymaster").Result()
		return err == nil && len(reps) == 1 && reps[0]["flags"] == "slave" && reps[0]["master-link-status"] == "ok"
	}, "the sentinel sees the replica in sync")

	c, _ := schBuild(t, `
mode: sentinel
sentinel: {master_name: mymaster, addrs: [%s]}
protocol: 3
retry: {retries: 0}
pool: {size: 4}
sch: {mode: auto}
`, sentinel.Addr())
	l := startLoad(c, 4, 0)
	defer l.stop()
	l.progress(t, 200)
	require.Positive(t, pa.Moving(pb.Addr(), 30))
	schEventually(t, 5*time.Second, func() bool { return clientConns(pa) == 0 && clientConns(pb) > 0 }, "the master's connections moved")
	l.progress(t, 200)

	for {
		err := sc.Failover(ctx, "mymaster").Err()
		if err == nil {
			break
		}
		require.True(t, strings.HasPrefix(err.Error(), "NOGOODSLAVE") || strings.HasPrefix(err.Error(), "INPROG"), "SENTINEL FAILOVER: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	schEventually(t, 15*time.Second, func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && addr[0]+":"+addr[1] == r.Addr()
	}, "the sentinel names r as the master")
	direct := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { _ = direct.Close() })
	schEventually(t, 15*time.Second, func() bool {
		return c.Set(ctx, "after-failover", "landed", 0).Err() == nil && direct.Get(ctx, "after-failover").Val() == "landed"
	}, "writes land on the new master")
	l.progress(t, 200) // the load works on the new master
	ok, failed, errs := l.stop()
	schEventually(t, 5*time.Second, func() bool { return clientConns(pb) == 0 }, "no connection is left on the maintenance's endpoint")
	t.Logf("failover during a maintenance: %d commands, %d failed during the failover (e.g. %q)", ok, failed, errs)
}

// Cluster: a MOVING on one node's connections (its proxy announces a
// second proxy in front of the same node) moves that node's connections
// under a load that checks every reply, with no failed command; the other
// nodes' connections stay where they are.
func TestSCHClusterMovingUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	nodes := cl.Nodes()
	rewrite := map[string]string{}
	proxies := make([]*sch.Proxy, len(nodes))
	for i, n := range nodes {
		proxies[i] = schProxy(t, n.Addr(), sch.ProxyOptions{Rewrite: rewrite, NoAutoCut: true})
		rewrite[n.Addr()] = proxies[i].Addr()
	}
	moved := schProxy(t, nodes[0].Addr(), sch.ProxyOptions{Rewrite: rewrite}) // node 0's new endpoint
	const workers = 6
	c, _ := schBuild(t, `
mode: cluster
addrs: [%s]
protocol: 3
retry: {retries: 0}
pool: {size: %d}
sch: {mode: enabled}
`, proxies[0].Addr(), workers)
	l := startLoad(c, workers, 0)
	defer l.stop()
	l.progress(t, 600)
	require.Positive(t, clientConns(proxies[0]))

	told := proxies[0].Moving(moved.Addr(), movingSeconds)
	require.Positive(t, told)
	start := time.Now()
	schEventually(t, movingSeconds*time.Second, func() bool { return clientConns(proxies[0]) == 0 }, "node 0's connections left its old endpoint")
	took := time.Since(start)
	proxies[0].Cut()
	l.progress(t, 600)
	ok, failed, errs := l.stop()
	require.Zero(t, failed, "no command failed and no reply was crossed: %q", errs)
	require.Positive(t, clientConns(moved), "node 0's connections are on its new endpoint")
	require.Zero(t, clientConns(proxies[0]))
	for _, p := range proxies[1:] {
		for _, ci := range p.Clients() {
			require.True(t, ci.Open, "the other nodes' connections stayed: %+v", ci)
			require.Empty(t, ci.Notifications)
		}
	}
	t.Logf("cluster: node 0's %d connections moved within %s; %d commands, 0 failed", told, took.Round(time.Millisecond), ok)
}
