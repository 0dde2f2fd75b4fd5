package factory_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/sch"
)

const movingSeconds = 5

// MOVING to a second real server under a load that checks every reply,
// then the old connections are cut: with SCH no command fails, no reply is
// crossed, and every connection reaches the new endpoint before the
// announced time ends (counted where they arrive: the new endpoint's proxy
// is the old one's peer); without it, the cut fails the commands in flight.
//
// This is the scenario go-redis v9.23.0's own handoff worker failed (it
// re-initialised a pooled connection while the pool could hand it to a
// command: crossed replies and race reports); the factory's engine
// (sch.Engine) never re-initialises a connection in place: a moved
// connection finishes its command, is closed, and new connections are
// dialed on the announced endpoint. It runs under -race in CI.
func TestSCHMovingUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		// auto: pipeline.auto, and the load runs through the profile's
		// handle, so that its SET/GET/ECHO/INCR go through the
		// auto-pipeliner's own client (and its BLPOPs through the main
		// one): both clients' connections must hand off.
		auto bool
	}{
		{"enabled", "enabled", false},
		{"auto", "auto", false},
		{"disabled", "disabled", false},
		{"enabled+pipeline.auto", "enabled", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mode := tc.mode
			a := redistest.Start(t, redistest.Options{})
			b := redistest.Start(t, redistest.Options{})
			pa := schProxy(t, a.Addr(), sch.ProxyOptions{NoAutoCut: true})
			pb := schProxy(t, b.Addr(), sch.ProxyOptions{}) // answers the handshake on the new endpoint
			pa.AddPeer(pb)                                  // pa's MovingReport counts the arrivals at pb
			const workers, blockers = 6, 2
			c, h, rt := schBuildHandle(t, `
addr: %s
protocol: 3
retry: {retries: 0}
timeouts: {socket: 2s}
pool: {size: %d}
pipeline: {auto: %t}
sch: {mode: %s, relaxed_timeout: 5s, handoff_timeout: 5s}
`, pa.Addr(), workers+blockers, tc.auto, mode)
			var load redis.UniversalClient = c
			if tc.auto {
				require.Nil(t, c.AutoPipeliner(), "a standalone profile does not use go-redis's auto-pipeliner")
				_, ok := c.PipelineStats()
				require.True(t, ok, "the profile uses the factory's engine")
				load = h
			}
			delays, stopDelays := handoffDelays(rt)
			l := startLoad(load, workers, blockers)
			defer l.stop()
			l.progress(t, 500)

			// The engine's sockets (pipeline.auto) are told like the
			// pool's connections, but its virtual connections all move to
			// the concurrent_batches (1) sockets it opens on the new
			// endpoint: they arrive as one.
			engineSockets := 0
			if tc.auto {
				st, _ := c.PipelineStats()
				engineSockets = st.Sockets
				require.Equal(t, 1, engineSockets, "one socket carries the batched load")
			}
			told := pa.Moving(pb.Addr(), movingSeconds)
			start := time.Now()
			if mode == "disabled" {
				require.Zero(t, told, "no connection negotiated notifications")
				l.progress(t, 200)
				cut := pa.Cut()
				require.Positive(t, cut)
				l.progress(t, 200)
				_, failed, errs := l.stop()
				require.Positive(t, failed, "cutting the old connections without SCH fails the commands in flight")
				t.Logf("without SCH: %d connections cut, %d commands failed, e.g. %q", cut, failed, errs[0])
				return
			}
			require.Positive(t, told)
			ctx, cancel := context.WithTimeout(context.Background(), movingSeconds*time.Second)
			defer cancel()
			allLeft, err := pa.WaitMoved(ctx)
			require.NoError(t, err, "every connection left for the new endpoint before the announced %ds: %+v", movingSeconds, pa.Clients())
			require.True(t, allLeft)
			schEventually(t, time.Until(start.Add(movingSeconds*time.Second)), func() bool { return pa.OpenConns() == 0 },
				"no connection left on the old endpoint before the announced time ends")
			// Leaving is not arriving: as many connections as were told
			// (the engine's sockets counting as the one it opens there)
			// must have been accepted at the new endpoint, and have
			// negotiated notifications there, before the announced time
			// ends (the peer counts the connections it accepted since the
			// MOVING was sent).
			want := told
			if tc.auto {
				want = told - engineSockets + 1
			}
			var r sch.MovingReport
			for {
				r, _ = pa.MovingReport()
				if r.Open == 0 && r.ArrivedNegotiated >= want {
					break
				}
				if !time.Now().Before(r.Deadline) {
					t.Fatalf("not every connection told of the MOVING arrived at the new endpoint before the announced %ds ended: %d told, %d expected, report %+v; new endpoint: %+v",
						movingSeconds, told, want, r, pb.Clients())
				}
				time.Sleep(2 * time.Millisecond)
			}
			require.Zero(t, r.Cut, "no connection had to be cut")
			moved := time.Since(start)
			pa.Cut() // the old endpoint goes away
			l.progress(t, 500)
			ok, failed, errs := l.stop()
			require.Zero(t, failed, "no command failed and no reply was crossed: %q", errs)
			require.Zero(t, pa.OpenConns(), "connections opened after the MOVING go to the new endpoint")
			require.Positive(t, pb.OpenConns(), "the connections are on the new endpoint")
			for _, ci := range pb.Clients() {
				require.True(t, ci.Negotiated, "connection %d on the new endpoint asked for notifications: %+v", ci.ID, pb.Clients())
			}
			if tc.auto {
				st, _ := c.PipelineStats()
				require.Equal(t, 1, st.Sockets, "the engine's socket on the old endpoint closed with its last virtual connection; one is open on the new one")
			}
			// Connections the pool opened to the old address before the
			// first MOVING was read got it too (the proxy replays it, as a
			// server does) and moved as well.
			st := c.Handoffs()
			require.GreaterOrEqual(t, st.Notifications["MOVING"], uint64(told))
			require.GreaterOrEqual(t, st.Retired, uint64(told))
			require.Positive(t, st.HandoffsCompleted)
			require.Zero(t, st.HandoffsFailed)
			// (go-redis dials in the background and runs the handshake
			// when a command first takes the connection: a few dials
			// may still be waiting for theirs.)
			require.LessOrEqual(t, st.HandoffsCompleted, st.HandoffsStarted)
			stopDelays()
			ds := slices.Clone(*delays)
			slices.Sort(ds)
			require.Len(t, ds, int(st.HandoffsCompleted))
			t.Logf("SCH %s: %d connections told (%d with replays), %d retired, %d opened on the new endpoint, %d arrived there negotiated within %s of the MOVING (announced: %ds; handoff delay: min %s, median %s, max %s); %d commands, 0 failed, 0 crossed",
				tc.name, told, st.Notifications["MOVING"], st.Retired, len(ds), r.ArrivedNegotiated, moved.Round(time.Millisecond), movingSeconds, ds[0].Round(time.Microsecond), ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)-1].Round(time.Microsecond), ok)
		})
	}
}
