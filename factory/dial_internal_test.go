package factory

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestHealthCheckNeverSplitsACommand: go-redis writes a large command (or
// pipeline) in several Writes, and on a slow or loaded machine more than
// the interval can pass between two of them. The check must not run
// between them: a PING there lands in the middle of the command, the
// server answers "Protocol error" and resets the connection (seen in the
// conformance harness under -race: "Tx should exec bulks", 20,000 INCRs,
// with a 5ms interval).
func TestHealthCheckNeverSplitsACommand(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	raw, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	checks := 0
	c := &healthConn{Conn: raw, interval: time.Millisecond, timeout: time.Second,
		hooks: healthHooks{checked: func() { checks++ }}}
	defer c.Close()
	c.touch()
	r := bufio.NewReader(c)
	for i := range 3 {
		_, err = c.Write([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n"))
		require.NoError(t, err)
		time.Sleep(5 * time.Millisecond) // longer than the interval, mid-command
		_, err = c.Write([]byte("$1\r\nv\r\n"))
		require.NoError(t, err)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Equal(t, "+OK\r\n", line, "command %d arrived whole", i)
		time.Sleep(5 * time.Millisecond) // idle between commands: the next one is checked
	}
	require.Equal(t, 2, checks, "a check before the 2nd and 3rd commands, none inside one")
}
