package sch

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
)

// A relaxed connection takes the larger of go-redis's deadline and
// relaxed_timeout from now; a deadline closer than the configured timeout
// (a caller's context) and no deadline at all are kept.
func TestRelaxDeadline(t *testing.T) {
	e := &Engine{relaxed: time.Second, read: 500 * time.Millisecond, write: 500 * time.Millisecond}
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	w := newConn(e, c1, "a:1", "a:1")
	const slack = 50 * time.Millisecond
	near := func(t *testing.T, want, got time.Time) {
		t.Helper()
		require.WithinDuration(t, want, got, slack)
	}

	now := time.Now()
	near(t, now.Add(500*time.Millisecond), w.relaxDeadline(now.Add(500*time.Millisecond), e.read)) // not relaxed

	w.relax(true)
	for _, tc := range []struct {
		name     string
		in, want time.Duration // from now; 0: no deadline
	}{
		{"socket timeout: raised to relaxed", 500 * time.Millisecond, time.Second},
		{"blocking command's longer deadline: kept", 12 * time.Second, 12 * time.Second},
		{"a context's closer deadline: kept", 100 * time.Millisecond, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			near(t, now.Add(tc.want), w.relaxDeadline(now.Add(tc.in), e.read))
		})
	}
	require.True(t, w.relaxDeadline(time.Time{}, e.read).IsZero(), "no deadline (BLPOP 0) stays none")

	w.relax(false)
	now = time.Now()
	near(t, now.Add(500*time.Millisecond), w.relaxDeadline(now.Add(500*time.Millisecond), e.read))
	w.relax(false) // an extra end changes nothing
	require.Zero(t, w.relaxed.Load())

	w.relaxUntil(time.Now().Add(time.Hour)) // after a handoff
	now = time.Now()
	near(t, now.Add(time.Second), w.relaxDeadline(now.Add(500*time.Millisecond), e.write))
	w.relaxUntil(time.Now().Add(-time.Second))
	now = time.Now()
	near(t, now.Add(500*time.Millisecond), w.relaxDeadline(now.Add(500*time.Millisecond), e.write))
}

// A retired connection refuses the first write of a new command, closes
// its socket and says the command was not sent; a command already being
// written is finished.
func TestRetiredConnRefusesNextCommand(t *testing.T) {
	e := &Engine{redirects: map[string]redirect{"a:1": {endpoint: "b:2"}}}
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c2.Close() })
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := c2.Read(buf); err != nil {
				return
			}
		}
	}()
	w := newConn(e, c1, "a:1", "a:1")
	w.handshake.Store(handshakeDone)
	_, err := w.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	require.NoError(t, err)
	w.retiring.Store(true)
	_, err = w.Write([]byte("more of the same command"))
	require.NoError(t, err, "the command being written is finished")
	w.writing.Store(false) // its reply was read
	_, err = w.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	var r *RetiredError
	require.ErrorAs(t, err, &r)
	require.Equal(t, "b:2", r.Endpoint)
	require.True(t, errclass.NotSent(err))
	_, err = c1.Write([]byte("x"))
	require.Error(t, err, "the socket is closed")
}

// deadlineConn records the read deadlines set on it.
type deadlineConn struct {
	net.Conn
	reads []time.Time
}

func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.reads = append(d.reads, t)
	return d.Conn.SetReadDeadline(t)
}

// A notification that relaxes a connection while a reply is awaited
// raises that reply's deadline to what it would have been had the
// connection been relaxed when go-redis set it; a caller's closer
// deadline stays, and the end of a maintenance never lowers a deadline.
func TestRelaxRaisesTheReadUnderWay(t *testing.T) {
	e := &Engine{relaxed: time.Second, read: 500 * time.Millisecond, write: 500 * time.Millisecond}
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	rec := &deadlineConn{Conn: c1}
	w := newConn(e, rec, "a:1", "a:1")
	const slack = 50 * time.Millisecond
	last := func() time.Time { return rec.reads[len(rec.reads)-1] }

	set := time.Now()
	require.NoError(t, w.SetReadDeadline(set.Add(500*time.Millisecond)))
	require.WithinDuration(t, set.Add(500*time.Millisecond), last(), slack)
	w.relax(true) // MIGRATING read before the reply
	require.Len(t, rec.reads, 2)
	require.WithinDuration(t, set.Add(time.Second), last(), slack, "relaxed from when the deadline was set")
	w.relax(true) // a second maintenance changes nothing
	require.Len(t, rec.reads, 2)
	w.relax(false)
	w.relax(false) // MIGRATED: the reply under way keeps its relaxed deadline
	require.Len(t, rec.reads, 2)

	set = time.Now()
	require.NoError(t, w.SetReadDeadline(set.Add(100*time.Millisecond))) // a caller's context
	w.relax(true)
	require.Len(t, rec.reads, 3, "a caller's closer deadline is not raised")
	w.relax(false)

	require.NoError(t, w.SetReadDeadline(time.Time{})) // BLPOP 0
	w.relax(true)
	require.Len(t, rec.reads, 4, "no deadline stays none")
}

// A maintenance notification a connection reads again (its server replays
// an active maintenance to a connection that negotiates, and a shared
// socket negotiates once per virtual connection) is counted once: the
// maintenance's one end restores the normal timeout. Distinct
// maintenances still nest.
func TestReplayedMaintenanceCountsOnce(t *testing.T) {
	e := &Engine{relaxed: time.Second, read: 500 * time.Millisecond, write: 500 * time.Millisecond}
	c1, c2 := net.Pipe()
	t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	w := newConn(e, c1, "a:1", "a:1")

	w.beginMaintenance(5) // MIGRATING 5
	w.beginMaintenance(5) // replayed
	w.beginMaintenance(5)
	require.Equal(t, int32(1), w.relaxed.Load())
	w.endMaintenance() // MIGRATED
	require.Zero(t, w.relaxed.Load(), "the normal timeout is back")

	w.beginMaintenance(7) // MIGRATING 7
	w.beginMaintenance(8) // FAILING_OVER 8
	w.beginMaintenance(7) // replayed
	require.Equal(t, int32(2), w.relaxed.Load())
	w.endMaintenance()
	require.Equal(t, int32(1), w.relaxed.Load(), "one maintenance still under way")
	w.endMaintenance()
	w.endMaintenance() // an extra end changes nothing
	require.Zero(t, w.relaxed.Load())
}

// A connection dialed to an endpoint under a maintenance starts relaxed
// (it hears of the maintenance only once its handshake is over), until
// the maintenance's end reaches it; once the maintenance has ended, or its
// announced time has passed, new connections start normal.
func TestDialDuringMaintenanceStartsRelaxed(t *testing.T) {
	e := &Engine{relaxed: time.Second, read: 500 * time.Millisecond, write: 500 * time.Millisecond,
		redirects: map[string]redirect{}, nullMoves: map[string]redirect{}, unreachable: map[string]time.Time{}, maintained: map[string]time.Time{}}
	dial := e.Dialer(func(context.Context, string, string) (net.Conn, error) {
		c1, c2 := net.Pipe()
		t.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
		return c1, nil
	})
	open := func() *conn {
		t.Helper()
		c, err := dial(context.Background(), "tcp", "a:1")
		require.NoError(t, err)
		return connOf(c)
	}
	relaxedNow := func(w *conn) bool {
		now := time.Now()
		return w.relaxDeadline(now.Add(e.read), e.read).After(now.Add(e.read))
	}

	require.False(t, relaxedNow(open()), "no maintenance")
	e.maintenance("a:1", true, 15) // MIGRATING read on another connection
	w := open()
	require.True(t, relaxedNow(w), "dialed during the maintenance")
	w.beginMaintenance(3) // the server's replay after the handshake
	w.endMaintenance()    // MIGRATED
	require.False(t, relaxedNow(w), "the maintenance's end ends it")
	e.maintenance("a:1", false, 0)
	require.False(t, relaxedNow(open()), "the maintenance is over")

	e.maintenance("a:1", true, 0) // SMIGRATING: no time given, relaxed_timeout
	e.mu.Lock()
	e.maintained["a:1"] = time.Now().Add(-time.Millisecond) // its time has passed
	e.mu.Unlock()
	require.False(t, relaxedNow(open()), "a maintenance whose announced time passed")
}

// Relaxing reports the windows in which a connection may be relaxed: an
// announced maintenance (its announced time, or relaxed_timeout, and
// relaxed_timeout more) and a relaxed dial; never shortened by a later,
// shorter one.
func TestRelaxing(t *testing.T) {
	e := &Engine{relaxed: time.Second, maintained: map[string]time.Time{}}
	now := time.Now()
	require.False(t, e.Relaxing(now), "nothing announced")

	e.maintenance("a:1", true, 0)
	require.True(t, e.Relaxing(now))
	require.True(t, e.Relaxing(now.Add(1900*time.Millisecond)), "relaxed_timeout, and relaxed_timeout more")
	require.False(t, e.Relaxing(now.Add(2100*time.Millisecond)))

	e.maintenance("b:1", true, 5)
	require.True(t, e.Relaxing(now.Add(5900*time.Millisecond)), "the announced 5s, and relaxed_timeout more")
	e.maintenance("a:1", true, 0)
	require.True(t, e.Relaxing(now.Add(5900*time.Millisecond)), "a shorter window does not shorten it")
	e.maintenance("b:1", false, 0)
	require.True(t, e.Relaxing(now.Add(5900*time.Millisecond)), "the end of a maintenance does not cut the window short")
	require.False(t, e.Relaxing(now.Add(6100*time.Millisecond)))

	e.noteRelaxing(now.Add(time.Minute)) // a handoff's post-handoff window
	require.True(t, e.Relaxing(now.Add(59*time.Second)))
}
