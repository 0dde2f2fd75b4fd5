package factory_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// workload runs concurrent idempotent SET/GET pairs through a client until
// stopped, and counts operations and failures.
type workload struct {
	ops      atomic.Int64
	mu       sync.Mutex
	failures []error
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startWorkload(c redis.UniversalClient, workers, keys int) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{cancel: cancel}
	for i := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				key := fmt.Sprintf("key:%d", (i*7919+n)%keys)
				val := fmt.Sprintf("v%d-%d", i, n)
				err := c.Set(context.Background(), key, val, 0).Err()
				if err == nil {
					// A restarted server without persistence lost the key:
					// redis.Nil is an answer, not a failure.
					if err = c.Get(context.Background(), key).Err(); err == redis.Nil {
						err = nil
					}
				}
				if err != nil {
					w.mu.Lock()
					w.failures = append(w.failures, err)
					w.mu.Unlock()
				}
				w.ops.Add(1)
			}
		}()
	}
	return w
}

// waitOps waits until the workload has done n more operations.
func (w *workload) waitOps(t *testing.T, n int64) {
	t.Helper()
	target := w.ops.Load() + n
	require.Eventually(t, func() bool { return w.ops.Load() >= target }, 20*time.Second, time.Millisecond)
}

// stop ends the workload and returns a summary of its failures: their
// count and the first few distinct errors ("" when none failed).
func (w *workload) stop() string {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failures) == 0 {
		return ""
	}
	seen := map[string]bool{}
	var first []string
	for _, err := range w.failures {
		if s := fmt.Sprintf("%T %v", err, err); !seen[s] && len(first) < 5 {
			seen[s] = true
			first = append(first, s)
		}
	}
	return fmt.Sprintf("%d failed commands, e.g. %q", len(w.failures), first)
}

// TestServerKilledAndRestartedUnderLoad: with enough retries and backoff,
// no idempotent command fails while the server is killed and restarted,
// and the waits between tries are the configured strategy's.
func TestServerKilledAndRestartedUnderLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, `profiles:
  a:
    addr: %s
    timeouts:
      connect: 500ms
      socket: 1s
    retry:
      retries: 8
      backoff:
        strategy: exponential
        base: 10ms
        cap: 320ms
`, srv.Addr())
	f := newFactory(t, cfg, factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.RetryAttempted, runtime.RetryExhausted)
	defer cancel()
	c := client(t, f, "a")

	w := startWorkload(c, 16, 200)
	w.waitOps(t, 500)
	srv.Kill()
	srv.Restart(t)
	w.waitOps(t, 500)
	failures := w.stop()

	assert.Empty(t, failures, "no command may fail across a restart")
	attempts := ev.list()
	require.NotEmpty(t, attempts, "the restart was survived by retrying")
	for _, e := range attempts {
		require.Equal(t, runtime.RetryAttempted, e.Kind, "%s", e)
		failure := e.Attempt - 1 // the upcoming try's number: 2 after the first failure
		want := min(320*time.Millisecond, 10*time.Millisecond<<failure)
		assert.Equal(t, want, e.Delay, "attempt %d waits base·2^failures, capped", e.Attempt)
		assert.Equal(t, "connection", e.Class)
	}
	t.Logf("%d operations, %d retries", w.ops.Load(), len(attempts))
}

// TestTooFewRetriesShowTheFailures proves the setup: the same restart with
// no retries makes commands fail.
func TestTooFewRetriesShowTheFailures(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n    retry:\n      retries: 0\n", srv.Addr())
	c := client(t, newFactory(t, cfg, factory.Options{}), "a")
	w := startWorkload(c, 16, 200)
	w.waitOps(t, 500)
	srv.Kill()
	srv.Restart(t)
	w.waitOps(t, 500)
	assert.NotEmpty(t, w.stop(), "without retries the in-flight commands fail")
}

// sentinelFailoverProfile is the configuration of one sentinel profile,
// name, monitoring sn's master, that rides out a failover: short timeouts
// and retries on the errors a failover produces. extra holds more keys of
// the profile, indented as its keys are.
func sentinelFailoverProfile(sn *redistest.Sentinel, name, extra string) string {
	return fmt.Sprintf(`profiles:
  %s:
    mode: sentinel
    sentinel:
      master_name: %s
      addrs: [%s]
    timeouts:
      connect: 500ms
      socket: 1s
    retry:
      retries: 10
      also_on: [read_only, master_down]
      backoff:
        strategy: exponential_jitter
        base: 20ms
        cap: 500ms
`, name, sn.MasterName, sn.SentinelAddrs()[0]) + extra
}

func TestSentinelFailoverUnderLoad(t *testing.T) {
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{})
	cfg := load(t, "%s", sentinelFailoverProfile(sn, "a", ""))
	f := newFactory(t, cfg, factory.Options{})
	c := client(t, f, "a")
	ctx := context.Background()
	before, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)

	w := startWorkload(c, 8, 100)
	w.waitOps(t, 300)
	fctx, cancelF := context.WithTimeout(ctx, 30*time.Second)
	defer cancelF()
	require.NoError(t, sn.Failover(fctx))
	after, err := sn.CurrentMasterAddr(ctx)
	require.NoError(t, err)
	require.NotEqual(t, before, after)
	w.waitOps(t, 300)
	assert.Empty(t, w.stop())

	// New writes reach the new master.
	require.NoError(t, c.Set(ctx, "after-failover", "1", 0).Err())
	info, err := c.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	assert.Equal(t, "master", info[0])
}

func TestClusterNodeRestartUnderLoad(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	addrs := cl.Addrs()
	cfg := load(t, `profiles:
  a:
    mode: cluster
    addrs: [%s, %s, %s]
    timeouts:
      connect: 500ms
      socket: 1s
    retry:
      retries: 20 # ~17s of backoff: a node restart plus cluster recovery on a loaded CI machine
      backoff:
        strategy: exponential
        base: 20ms
        cap: 1s
`, addrs[0], addrs[1], addrs[2])
	f := newFactory(t, cfg, factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.RetryAttempted, runtime.RetryExhausted)
	defer cancel()
	c := client(t, f, "a")
	ctx := context.Background()

	// Keys on every node.
	seen := map[string]bool{}
	for i := 0; len(seen) < 3; i++ {
		seen[cl.NodeForKey(fmt.Sprintf("key:%d", i)).Addr()] = true
	}
	w := startWorkload(c, 8, 300)
	w.waitOps(t, 300)
	victim := cl.NodeForKey("key:0")
	victim.Kill()
	victim.Restart(t)
	cl.WaitReady(t)
	w.waitOps(t, 300)
	assert.Empty(t, w.stop())
	require.NoError(t, c.Set(ctx, "key:0", "after", 0).Err())
	assert.Positive(t, ev.count(runtime.RetryAttempted), "the restart was survived by the profile's retries")
	assert.Zero(t, ev.count(runtime.RetryExhausted))
	if t.Failed() {
		for _, e := range ev.list() {
			t.Log(e.String())
		}
	}
}
