// Package redistest is the shared test infrastructure of this module.
//
// It starts real redis-server processes (standalone, cluster and sentinel
// topologies) on free loopback ports inside t.TempDir(), stops them when the
// test ends, and prints their logs when a test fails. For faults a real server
// cannot produce on demand it offers a RESP-aware TCP fault proxy, see
// [NewProxy].
//
// Every helper that starts a process calls [Require] first, so tests are
// skipped on machines without redis-server, except in CI (env CI non-empty)
// where a missing redis-server is a test failure.
//
// Typical use:
//
//	func TestSomething(t *testing.T) {
//		srv := redistest.Start(t, redistest.Options{Password: "secret"})
//		rdb := srv.Client(t)
//		require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
//	}
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serverBinary is the name of the Redis server executable looked up on PATH.
const serverBinary = "redis-server"

// Timeouts used while waiting for processes. They are generous because CI
// machines can be slow; the helpers poll, so the happy path is fast.
const (
	readyTimeout  = 20 * time.Second
	stableTimeout = 30 * time.Second
	pollInterval  = 20 * time.Millisecond
)

// Available reports whether a redis-server executable is on PATH.
func Available() bool {
	_, err := exec.LookPath(serverBinary)
	return err == nil
}

// Require skips the test when redis-server is not on PATH. When the
// environment variable CI is non-empty it fails the test instead, because CI
// must never silently skip the integration tests.
func Require(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	msg := "redistest: redis-server not found on PATH; install it (e.g. apt-get install redis-server) to run this test"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, refusing to skip)")
	}
	t.Skip(msg)
}

// FreePort returns a TCP port that is currently free on 127.0.0.1 (and on
// ::1 when IPv6 is available). Another process may still grab it before it
// is used; [Start] retries with a new port when that happens.
func FreePort(t testing.TB) int {
	t.Helper()
	ports, err := freePorts(1)
	if err != nil {
		t.Fatalf("redistest: FreePort: %v", err)
	}
	return ports[0]
}

// freePorts returns n distinct free ports. All listeners are held open until
// every port has been chosen so that the kernel cannot hand out one twice.
func freePorts(n int) ([]int, error) {
	var (
		ports     []int
		listeners []net.Listener
	)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for attempt := 0; len(ports) < n; attempt++ {
		if attempt > 100 {
			return nil, errors.New("could not find free ports")
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		port := l.Addr().(*net.TCPAddr).Port
		// redis-server also binds ::1 (optionally) and cluster nodes use
		// an explicit bus port, so ports above 55535 are fine but the port
		// must be free on ::1 too when IPv6 is there.
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		if err == nil {
			listeners = append(listeners, l6)
		} else if errors.Is(err, syscall.EADDRINUSE) {
			continue
		}
		ports = append(ports, port)
	}
	return ports, nil
}

// waitFor polls cond every pollInterval until it returns nil or timeout
// elapses; it returns the last error from cond.
func waitFor(ctx context.Context, timeout time.Duration, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = cond(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %v: %w", timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// parseInfo parses the output of INFO / CLUSTER INFO into a map.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// tail returns at most the last max bytes of b, cut at a line boundary.
func tail(b []byte, max int) []byte {
	if len(b) <= max {
		return b
	}
	b = b[len(b)-max:]
	if i := strings.IndexByte(string(b), '\n'); i >= 0 {
		b = b[i+1:]
	}
	return b
}
