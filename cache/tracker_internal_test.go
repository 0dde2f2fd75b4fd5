package cache

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestTrackReadsALongErrorReply: CLIENT TRACKING ON REDIRECT to an
// invalidation connection that is already gone is refused with an error
// line of about 60 bytes. track must read it (and fail the write with it),
// not stop at its reader's buffer size with "bufio: buffer full" and leave
// the rest of the line on the connection (seen in the conformance harness
// under -race, when an invalidation connection was replaced while a 10 MiB
// SET was being written).
func TestTrackReadsALongErrorReply(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer raw.Close()
	tc := &trackedConn{Conn: raw, n: &node{c: &Cache{cfg: Config{Timeout: 2 * time.Second}}}}
	err = tc.track(1 << 40) // no such client
	require.Error(t, err)
	require.Contains(t, err.Error(), "CLIENT TRACKING: ERR")

	// Nothing of the reply is left on the connection.
	_, err = raw.Write([]byte("*1\r\n$4\r\nPING\r\n"))
	require.NoError(t, err)
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(2*time.Second)))
	line, err := bufio.NewReader(raw).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+PONG\r\n", line)
}

// TestTrackNeverSplitsACommand: go-redis writes a large command in several
// Writes; when the invalidation connection is replaced between two of them,
// tracking is set up again before the next command, not in the middle of
// this one (where CLIENT TRACKING would be read as part of the command).
func TestTrackNeverSplitsACommand(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	id, err := admin.ClientID(context.Background()).Result()
	require.NoError(t, err)
	raw, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	defer raw.Close()
	n := &node{c: &Cache{cfg: Config{Timeout: 2 * time.Second}}}
	n.state.Store(&nodeState{gen: 1, id: id})
	tc := &trackedConn{Conn: raw, n: n, ready: true, gen: 1}
	r := bufio.NewReader(tc)

	_, err = tc.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n"))
	require.NoError(t, err)
	n.state.Store(&nodeState{gen: 2, id: id}) // the invalidation connection was replaced
	_, err = tc.Write([]byte("$1\r\nv\r\n"))
	require.NoError(t, err)
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(2*time.Second)))
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "+OK\r\n", line, "the SET arrived whole")

	// The next command sets tracking up first.
	_, err = tc.Write([]byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"))
	require.NoError(t, err)
	require.Equal(t, uint64(2), tc.gen, "tracked again before the next command")
	line, err = r.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "$1\r\n", line)
}
