package sch

import (
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
