package main

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

type rehearseOut struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *rehearseOut) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *rehearseOut) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// rehearse runs a proxy from stdin commands: a MOVING hands the client off
// to the new endpoint, and the report says so.
func TestRehearseMoving(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})

	in, feed := io.Pipe()
	rehearseInput = in
	t.Cleanup(func() { rehearseInput = nil })
	listen := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	// The new endpoint, a second proxy (it answers the handshake too, and
	// sees the connections arrive).
	peer := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
	var out, errOut rehearseOut
	done := make(chan int)
	go func() {
		done <- run([]string{"rehearse", "--listen", listen, "--upstream", a.Addr(), "--peer-listen", peer, "--peer-upstream", b.Addr()}, &out, &errOut, nil)
	}()
	eventuallyCLI(t, func() bool { return strings.Contains(out.String(), "maintenance proxy listening") }, "proxy listening")

	c := redis.NewClient(&redis.Options{Addr: listen, Protocol: 3, PoolSize: 1,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeEnabled}})
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx).Err())
	eventuallyCLI(t, func() bool { return strings.Contains(out.String(), "client negotiated maintenance notifications") }, "negotiated")

	_, err := io.WriteString(feed, "clients\nmigrating\nmigrated\nmoving peer 1\nbogus\n")
	require.NoError(t, err)
	eventuallyCLI(t, func() bool { return strings.Contains(out.String(), "sent MOVING") }, "MOVING sent")
	require.NoError(t, c.Ping(ctx).Err()) // reads the MOVING; the connection is handed off after it
	eventuallyCLI(t, func() bool { return strings.Contains(out.String(), "arrived at the new endpoint") }, "report")
	require.NoError(t, c.Set(ctx, "rehearsed", "yes", 0).Err())
	require.Equal(t, "yes", b.Client(t).Get(ctx, "rehearsed").Val())

	_, err = io.WriteString(feed, "quit\n")
	require.NoError(t, err)
	require.Equal(t, exitOK, <-done)
	s := out.String()
	require.Contains(t, s, "client 1 127.0.0.1:")
	require.Contains(t, s, "sent MIGRATING")
	require.Contains(t, s, "sent MIGRATED")
	require.Contains(t, s, `msg="sent MOVING" seq=3 endpoint=`+peer)
	require.Contains(t, s, "to 1 connection(s): 1 closed by the client before the deadline, 0 cut, 0 still open")
	require.Contains(t, s, "arrived at the new endpoint: 1 connection(s), 1 of them negotiated notifications")
	require.Contains(t, errOut.String(), `unknown command "bogus"`)
}

func TestRehearseUsage(t *testing.T) {
	r := runCLI(t, nil, "rehearse", "--listen", "127.0.0.1:0")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, "missing --upstream")
	r = runCLI(t, nil, "rehearse", "--upstream", "127.0.0.1:1", "--peer-listen", "127.0.0.1:0")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, "--peer-listen and --peer-upstream go together")
	r = runCLI(t, nil, "rehearse", "--upstream", "127.0.0.1:1", "--max-conns", "-1")
	require.Equal(t, exitUsage, r.code, r)
	require.Contains(t, r.stderr, "must not be negative")
}

func eventuallyCLI(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
