package mux

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A call the reader has taken but not yet answered when its caller's
// deadline passes is uncounted once: by pop, not again by abandon. (Were
// it counted twice, the count would go below zero and the socket would
// never be found unused.)
func TestAbandonAfterPopUncountsOnce(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	d := New(Config{Dial: nil})
	s := newSocket(d, "pipe", client)
	s.ready = true
	v := s.attach() // another user: the socket stays open
	require.NotNil(t, v)

	c := callPool.Get().(*call)
	require.NoError(t, s.enqueueCall(c, []byte("*1\r\n$4\r\nPING\r\n"), nil))
	s.mu.Lock()
	s.takeLocked() // the writer took it
	require.Equal(t, 1, s.calls)
	s.mu.Unlock()

	r, unused := s.pop() // the reader took it, and has not delivered yet
	require.Same(t, c, r)
	assert.False(t, unused)
	assert.True(t, s.abandon(c), "the deadline passed first")
	s.mu.Lock()
	assert.Equal(t, 0, s.calls)
	s.mu.Unlock()
	r.deliver([]byte("+PONG\r\n")) // dropped: the caller gave up
	assert.Empty(t, c.reply)
}
