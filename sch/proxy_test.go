package sch_test

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/internal/resp"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

func startProxy(t *testing.T, upstream string, opts sch.ProxyOptions) *sch.Proxy {
	t.Helper()
	p := sch.NewProxyWithOptions("127.0.0.1:0", upstream, opts)
	require.NoError(t, p.Start())
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func newRuntime(t *testing.T) *runtime.Runtime {
	rt := runtime.New(runtime.Options{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, rt.Close(ctx))
	})
	return rt
}

// observed builds a go-redis client on addr with maintenance notifications
// on and an Observer attached.
func observed(t *testing.T, rt *runtime.Runtime, addr string, mode maintnotifications.Mode, pool int) (*redis.Client, *sch.Observer) {
	t.Helper()
	obs := sch.NewObserver("test", rt.Events())
	c := redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 3, PoolSize: pool, ReadTimeout: 2 * time.Second,
		OnConnect:                obs.OnConnect,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: mode, RelaxedTimeout: 5 * time.Second, HandoffTimeout: 5 * time.Second},
	})
	t.Cleanup(func() { _ = c.Close() })
	require.True(t, obs.Attach(c))
	return c, obs
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes.
func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, msg)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The proxy answers the handshake itself and sends frames byte for byte in
// the servers' format, only to connections that negotiated.
func TestProxyWireFormats(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := startProxy(t, srv.Addr(), sch.ProxyOptions{NoAutoCut: true})

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c, bufio.NewReader(c)
	}
	read := func(r *bufio.Reader) string {
		f, _, err := resp.ReadFrame(r, nil)
		require.NoError(t, err)
		return string(f)
	}
	on, onR := dial()
	_, err := on.Write(resp.Command("HELLO", "3"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(read(onR), "%"))
	// Pipelined with a forwarded command: the answer keeps its place.
	_, err = on.Write(append(resp.Command("PING"), resp.Command("CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-ip")...))
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", read(onR))
	require.Equal(t, "+OK\r\n", read(onR))

	off, offR := dial() // RESP2, never negotiates
	_, err = off.Write(resp.Command("CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-ip"))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(read(offR), "-ERR"), "RESP2 connections are refused, as a server would")

	require.Equal(t, 1, p.Moving("10.0.0.7:6380", 5))
	require.Equal(t, ">4\r\n$6\r\nMOVING\r\n:1\r\n:5\r\n$13\r\n10.0.0.7:6380\r\n", read(onR))
	// "This address, later": the address it reached, in the form it asked
	// for (a null endpoint is for type none only; node-redis asserts that).
	require.Equal(t, 1, p.Moving("none", 4))
	require.Equal(t, string(pushFrame("MOVING", ":2", ":4", p.Addr())), read(onR))
	require.Equal(t, 1, p.Migrating())
	require.Equal(t, ">4\r\n$9\r\nMIGRATING\r\n:3\r\n:15\r\n$1\r\n1\r\n", read(onR))
	require.Equal(t, 1, p.Migrated())
	require.Equal(t, ">3\r\n$8\r\nMIGRATED\r\n:4\r\n$1\r\n1\r\n", read(onR))
	require.Equal(t, 1, p.FailingOver())
	require.Equal(t, ">4\r\n$12\r\nFAILING_OVER\r\n:5\r\n:15\r\n$1\r\n1\r\n", read(onR))
	require.Equal(t, 1, p.FailedOver())
	require.Equal(t, ">3\r\n$11\r\nFAILED_OVER\r\n:6\r\n$1\r\n1\r\n", read(onR))
	require.Equal(t, 1, p.SMigrating("100-200"))
	require.Equal(t, ">3\r\n$10\r\nSMIGRATING\r\n:7\r\n$7\r\n100-200\r\n", read(onR))

	// The non-negotiated connection got nothing: its next frame is its PING's.
	_, err = off.Write(resp.Command("PING"))
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", read(offR))

	clients := p.Clients()
	require.Len(t, clients, 2)
	require.True(t, clients[0].Negotiated)
	require.Equal(t, "internal-ip", clients[0].EndpointType)
	require.Equal(t, []string{"MOVING", "MOVING", "MIGRATING", "MIGRATED", "FAILING_OVER", "FAILED_OVER", "SMIGRATING"}, clients[0].Notifications)
	require.False(t, clients[1].Negotiated)
	require.Empty(t, clients[1].Notifications)
}

// pushFrame builds a push of bulk strings, and of integers given as ":n".
func pushFrame(elems ...string) []byte {
	b := []byte(">" + strconv.Itoa(len(elems)) + "\r\n")
	for _, e := range elems {
		switch {
		case strings.HasPrefix(e, ":"), e == "_":
			b = append(b, e+"\r\n"...)
		default:
			b = append(b, "$"+strconv.Itoa(len(e))+"\r\n"+e+"\r\n"...)
		}
	}
	return b
}

// Each connection gets the MOVING endpoint in the form it negotiated, and
// null only if it asked for none; a handshake pipelined behind HELLO 3 in
// one write (as node-redis sends it) is accepted, since the proxy answers
// it once HELLO's reply is back.
func TestProxyEndpointFormsAndPipelinedHandshake(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := startProxy(t, srv.Addr(), sch.ProxyOptions{NoAutoCut: true})
	_, port, err := net.SplitHostPort(p.Addr())
	require.NoError(t, err)

	handshake := func(typ string) *bufio.Reader {
		c, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		var w []byte
		w = append(w, resp.Command("HELLO", "3")...)
		w = append(w, resp.Command("CLIENT", "SETINFO", "LIB-NAME", "node-redis")...)
		w = append(w, resp.Command("CLIENT", "SETINFO", "LIB-VER", "6.3.1")...)
		w = append(w, resp.Command("CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", typ)...)
		_, err = c.Write(w) // one write
		require.NoError(t, err)
		r := bufio.NewReader(c)
		// Redis 7.0 does not know CLIENT SETINFO: any reply will do there.
		for i, want := range []string{"%", "", "", "+OK"} {
			f, _, err := resp.ReadFrame(r, nil)
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(string(f), want), "reply %d of the %s handshake: %q", i, typ, f)
		}
		return r
	}
	types := []string{"internal-ip", "external-ip", "internal-fqdn", "external-fqdn", "none"}
	readers := map[string]*bufio.Reader{}
	for _, typ := range types {
		readers[typ] = handshake(typ)
	}
	for range 45 { // 50 handshakes in all, every one accepted
		handshake("external-ip")
	}
	next := func(typ string) string {
		f, _, err := resp.ReadFrame(readers[typ], nil)
		require.NoError(t, err)
		return string(f)
	}

	require.Equal(t, 50, p.Moving("localhost:"+port, 5))
	require.Equal(t, string(pushFrame("MOVING", ":1", ":5", "127.0.0.1:"+port)), next("internal-ip"))
	require.Equal(t, string(pushFrame("MOVING", ":1", ":5", "127.0.0.1:"+port)), next("external-ip"))
	require.Equal(t, string(pushFrame("MOVING", ":1", ":5", "localhost:"+port)), next("internal-fqdn"))
	require.Equal(t, string(pushFrame("MOVING", ":1", ":5", "localhost:"+port)), next("external-fqdn"))
	require.Equal(t, string(pushFrame("MOVING", ":1", ":5", "_")), next("none"))

	ep, err := sch.ParseEndpoint("internal-ip=10.1.2.3:7000,external-fqdn=b.example.com:7000")
	require.NoError(t, err)
	p.MovingTo(ep, 5)
	require.Equal(t, string(pushFrame("MOVING", ":2", ":5", "10.1.2.3:7000")), next("internal-ip"))
	require.Equal(t, string(pushFrame("MOVING", ":2", ":5", "b.example.com:7000")), next("external-fqdn"))
	require.Equal(t, string(pushFrame("MOVING", ":2", ":5", "_")), next("none"))

	for _, bad := range []string{"localhost", "bogus=1.2.3.4:5", "none=1.2.3.4:5", "internal-ip=nope"} {
		_, err := sch.ParseEndpoint(bad)
		require.Error(t, err, bad)
	}
}

// The report counts a connection as arrived only when the proxy at the new
// endpoint saw it; closing at the old one is counted apart.
func TestProxyMovingReportCountsArrivals(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	p := startProxy(t, a.Addr(), sch.ProxyOptions{})
	pb := startProxy(t, b.Addr(), sch.ProxyOptions{})
	p.AddPeer(pb)
	rt := newRuntime(t)
	c, _ := observed(t, rt, p.Addr(), maintnotifications.ModeEnabled, 4)
	ctx := context.Background()
	conns := make([]*redis.Conn, 3)
	for i := range conns {
		conns[i] = c.Conn()
		require.NoError(t, conns[i].Ping(ctx).Err())
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	// A connection that never negotiated and closes during the MOVING is
	// not told, so it is no "closed" either.
	raw, err := net.Dial("tcp", p.Addr())
	require.NoError(t, err)
	require.Equal(t, 3, p.Moving(pb.Addr(), 3))
	require.NoError(t, raw.Close())
	// Each of the three connections runs a command, to read its MOVING:
	// they are taken at once (one caller's PINGs would take the
	// connection returned last again and again, and leave the others to
	// be cut at the deadline).
	for i := range conns {
		conns[i] = c.Conn()
		require.NoError(t, conns[i].Ping(ctx).Err())
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	eventually(t, 3*time.Second, func() bool { r, _ := p.MovingReport(); return r.Closed == 3 && r.Arrived == 3 }, "3 closed, 3 arrived")
	r, ok := p.MovingReport()
	require.True(t, ok)
	require.Equal(t, 3, r.Told)
	require.Equal(t, 3, r.ArrivedNegotiated)
	require.Zero(t, r.Cut)
	require.Zero(t, r.Open)
	require.Equal(t, pb.Addr(), r.Endpoint)
}

// go-redis parses every notification the proxy sends, and the observer
// publishes and counts them.
func TestProxyNotificationsReachGoRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	p := startProxy(t, srv.Addr(), sch.ProxyOptions{})
	rt := newRuntime(t)
	sub := rt.Events().Subscribe(runtime.WithKinds(runtime.MaintenanceNotification), runtime.WithBuffer(100))
	defer sub.Close()
	c, obs := observed(t, rt, p.Addr(), maintnotifications.ModeEnabled, 1)
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx).Err())
	require.True(t, p.Clients()[0].Negotiated)

	for _, send := range []func() int{p.Migrating, p.Migrated, p.FailingOver, p.FailedOver} {
		require.Equal(t, 1, send())
		require.NoError(t, c.Ping(ctx).Err()) // the push is read with the next reply
	}
	require.Equal(t, map[string]uint64{"MIGRATING": 1, "MIGRATED": 1, "FAILING_OVER": 1, "FAILED_OVER": 1}, obs.Stats().Notifications)
	for _, typ := range []string{"MIGRATING", "MIGRATED", "FAILING_OVER", "FAILED_OVER"} {
		e := <-sub.C()
		require.Equal(t, "test", e.Profile)
		require.NoError(t, e.Err)
		require.True(t, strings.HasPrefix(e.Message, typ+":"), e.Message)
		require.Contains(t, e.String(), "type="+typ)
		require.Contains(t, e.String(), "node="+p.Addr())
	}
}

// MOVING: go-redis hands the connection off to the new server; the proxy
// sees it leave before the announced time; the observer publishes the
// handoff.
func TestProxyMovingHandoff(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	p := startProxy(t, a.Addr(), sch.ProxyOptions{})
	// The new endpoint must answer the handshake too: b behind its own proxy.
	pb := startProxy(t, b.Addr(), sch.ProxyOptions{})
	rt := newRuntime(t)
	c, obs := observed(t, rt, p.Addr(), maintnotifications.ModeEnabled, 4)
	ctx := context.Background()
	conns := make([]*redis.Conn, 3)
	for i := range conns { // three pooled connections
		conns[i] = c.Conn()
		require.NoError(t, conns[i].Ping(ctx).Err())
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	require.Equal(t, 3, p.Moving(pb.Addr(), 3))
	start := time.Now()
	// An idle pooled connection reads the MOVING when it is next taken:
	// take all three at once, as a busy client would.
	for i := range conns {
		conns[i] = c.Conn()
		require.NoError(t, conns[i].Ping(ctx).Err())
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	allLeft, err := p.WaitMoved(wctx)
	require.NoError(t, err)
	require.True(t, allLeft, "every connection left before the announced time: %+v", p.Clients())
	t.Logf("all connections moved in %s", time.Since(start))
	eventually(t, 3*time.Second, func() bool { return obs.Stats().HandoffsCompleted == 3 }, "3 handoffs completed")
	st := obs.Stats()
	require.Equal(t, uint64(3), st.HandoffsStarted)
	require.Zero(t, st.HandoffsFailed)
	require.Equal(t, uint64(3), rt.Events().Count(runtime.HandoffCompleted))

	// Every connection now talks to b.
	require.Equal(t, 3, pb.OpenConns())
	require.NoError(t, c.Set(ctx, "where", "b", 0).Err())
	require.Equal(t, "b", b.Client(t).Get(ctx, "where").Val())
}
