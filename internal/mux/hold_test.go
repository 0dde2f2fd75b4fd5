package mux_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// gate answers each WAIT when the test lets one through, ECHO at once
// (after the replies before it, as a server answers in order).
type gate struct{ pass chan struct{} }

func (g gate) reply(s *fakeServer, args []string) string {
	if strings.EqualFold(args[0], "WAIT") {
		select {
		case <-g.pass:
		case <-s.done:
		}
		return "+PASSED\r\n"
	}
	return echo(s, args)
}

// With HoldAt or more replies due, a new command waits for the reader's
// next read instead of going out alone; the read releases it, and every
// reply still reaches its command. With fewer due, a command goes out at
// once: few callers never wait a round trip for the batch to grow.
func TestBatchHeldWhileManyRepliesAreDue(t *testing.T) {
	for _, tc := range []struct {
		name string
		due  int
		held bool
	}{
		{"fewer due: written at once", mux.HoldAt - 1, false},
		{"HoldAt due: held for the next read", mux.HoldAt, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gate{pass: make(chan struct{}, 64)}
			srv := startFake(t, answer(g.reply))
			d := newDialer(t, mux.Config{})
			waiting := make([]*conn, tc.due)
			for i := range waiting {
				waiting[i] = dial(t, d, srv.Addr())
				waiting[i].send(t, "WAIT")
			}
			redistest.Eventually(t, wait, "the waiting commands written", func() bool {
				return d.Stats().Commands == uint64(tc.due)
			})
			late := dial(t, d, srv.Addr())
			late.send(t, "ECHO", "late")
			if !tc.held {
				redistest.Eventually(t, wait, "the late command written at once", func() bool {
					return d.Stats().Commands == uint64(tc.due)+1
				})
				assert.False(t, mux.Holding(d))
			} else {
				redistest.Eventually(t, wait, "the writer holding the late command", func() bool { return mux.Holding(d) })
				assert.Equal(t, uint64(tc.due), d.Stats().Commands, "held, not written")
				g.pass <- struct{}{} // one reply: the reader's next read releases the batch
				redistest.Eventually(t, wait, "the late command written after a read", func() bool {
					return d.Stats().Commands == uint64(tc.due)+1
				})
			}
			for range tc.due {
				g.pass <- struct{}{}
			}
			for _, c := range waiting {
				require.Equal(t, "+PASSED\r\n", c.next(t))
			}
			assert.Equal(t, bulk("late"), late.next(t))
		})
	}
}
