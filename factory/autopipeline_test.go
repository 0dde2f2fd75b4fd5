package factory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// cmdHook counts the INCRs that run through the hooks of the client it is
// added to, and the pipelines that carry one of the workload's commands
// (go-redis's connection handshake is a pipeline of its own).
type cmdHook struct {
	incrs     atomic.Int64
	pipelines atomic.Int64
}

func (b *cmdHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (b *cmdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "incr" {
			b.incrs.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (b *cmdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if n := c.Name(); n == "set" || n == "get" || n == "incr" {
				b.pipelines.Add(1)
				break
			}
		}
		return next(ctx, cmds)
	}
}

// engineHandle returns the profile's handle and its client, which runs the
// factory's engine (see engine).
func engineHandle(t *testing.T, f *factory.Factory, name string) (*factory.Handle, *factory.Client) {
	t.Helper()
	h, err := f.Handle(name)
	require.NoError(t, err)
	return h, engine(t, f, name)
}

// engine returns the profile's client and checks that it runs the
// factory's pipelining engine (a standalone profile with pipeline.auto),
// not go-redis's auto-pipeliner.
func engine(t *testing.T, f *factory.Factory, name string) *factory.Client {
	t.Helper()
	c, err := f.Lookup(name)
	require.NoError(t, err)
	require.Nil(t, c.AutoPipeliner(), "a standalone profile does not use go-redis's auto-pipeliner")
	_, ok := c.PipelineStats()
	require.True(t, ok, "the profile uses the factory's engine")
	require.IsType(t, &redis.Client{}, c.Batched())
	return c
}

// warmEngine has the engine's client hold n virtual connections at once,
// each through its handshake, and return them to its pool. A new virtual
// connection's handshake (HELLO, CLIENT SETINFO, …) goes through the
// shared socket like any command, its replies queued behind the replies
// already coming: a test that holds replies back (the proxy's Delay holds
// each reply of a socket behind the previous one) warms the pool first, so
// that only its own commands wait.
func warmEngine(t *testing.T, c *factory.Client, n int) {
	t.Helper()
	bc := c.Batched().(*redis.Client)
	conns := make([]*redis.Conn, n)
	for i := range conns {
		conns[i] = bc.Conn()
		require.NoError(t, conns[i].Ping(context.Background()).Err())
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	require.GreaterOrEqual(t, int(bc.PoolStats().IdleConns), n)
}

// TestAutoPipelineBatchesConcurrentCallers: with pipeline.auto, the
// commands of concurrent callers share the engine's writes, every caller
// gets its own reply, and each command runs the hooks on its own (the
// engine makes no go-redis pipeline).
func TestAutoPipelineBatchesConcurrentCallers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n    pipeline:\n      auto: true\n", srv.Addr()), factory.Options{})
	h, err := f.Handle("a")
	require.NoError(t, err)
	var hk cmdHook
	h.AddHook(&hk)
	c := engine(t, f, "a")

	ctx := context.Background()
	const workers, rounds = 32, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			for n := range rounds {
				key, val := fmt.Sprintf("ap:%d", i), fmt.Sprintf("v%d-%d", i, n)
				if err := h.Set(ctx, key, val, 0).Err(); err != nil {
					errs <- err
					return
				}
				got, err := h.Get(ctx, key).Result()
				if err != nil || got != val {
					errs <- fmt.Errorf("GET %s = %q, %v; want %q", key, got, err, val)
					return
				}
				if err := h.Incr(ctx, "ap:counter").Err(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n, err := srv.Client(t).Get(ctx, "ap:counter").Int()
	require.NoError(t, err)
	assert.Equal(t, workers*rounds, n, "every INCR ran once")
	assert.Equal(t, int64(workers*rounds), hk.incrs.Load(), "every INCR ran the handle's hook once")
	assert.Zero(t, hk.pipelines.Load(), "no command went out as a go-redis pipeline")
	st, _ := c.PipelineStats()
	assert.Equal(t, 1, st.Sockets, "concurrent_batches (default 1) sockets carry every caller")
	assert.GreaterOrEqual(t, st.Commands, uint64(3*workers*rounds), "every command went through the engine")
	assert.Greater(t, float64(st.Commands)/float64(st.Writes), 1.0, "concurrent commands shared writes")
	t.Logf("%d commands in %d writes (%.1f per write)", st.Commands, st.Writes, float64(st.Commands)/float64(st.Writes))
}

// TestAutoPipelineLeavesConnectionBoundWorkToThePool: transactions,
// blocking commands and pub/sub go to the pool and keep working as with
// bare go-redis, a blocking command does not hold up batched ones, and a
// command with a deadline (which goes through the engine) is bounded by
// it.
func TestAutoPipelineLeavesConnectionBoundWorkToThePool(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n    timeouts:\n      socket: 3s\n    pipeline:\n      auto: true\n", srv.Addr()), factory.Options{})
	h, err := f.Handle("a")
	require.NoError(t, err)
	ctx := context.Background()

	// WATCH/MULTI/EXEC on one connection.
	require.NoError(t, h.Set(ctx, "tx:k", "1", 0).Err())
	err = h.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, "tx:k").Int()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, "tx:k", v+1, 0)
			return nil
		})
		return err
	}, "tx:k")
	require.NoError(t, err)
	assert.Equal(t, "2", h.Get(ctx, "tx:k").Val())

	// A BLPOP waiting on the server does not delay batched commands.
	popped := make(chan error, 1)
	go func() { popped <- h.BLPop(ctx, 2*time.Second, "ap:list").Err() }()
	require.Eventually(t, func() bool {
		l, _ := srv.Client(t).ClientList(ctx).Result()
		return strings.Contains(l, "cmd=blpop")
	}, 2*time.Second, time.Millisecond)
	start := time.Now()
	for range 20 {
		require.NoError(t, h.Ping(ctx).Err())
	}
	assert.Less(t, time.Since(start), time.Second, "batched commands ran while BLPOP blocked")
	require.NoError(t, h.RPush(ctx, "ap:list", "x").Err())
	require.NoError(t, <-popped)

	// Pub/sub.
	sub := h.Subscribe(ctx, "ap:chan")
	defer sub.Close()
	_, err = sub.Receive(ctx)
	require.NoError(t, err)
	require.NoError(t, h.Publish(ctx, "ap:chan", "hello").Err())
	msg, err := sub.ReceiveMessage(ctx)
	require.NoError(t, err)
	assert.Equal(t, "hello", msg.Payload)

	// A caller's deadline bounds its command, as with bare go-redis: the
	// server is paused, and the command returns at its deadline, not at
	// the socket timeout; the engine's next command goes to a new socket.
	c := engine(t, f, "a")
	before, _ := c.PipelineStats()
	srv.Pause()
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start = time.Now()
	err = h.Get(dctx, "tx:k").Err()
	cancel()
	took := time.Since(start)
	srv.Resume()
	require.Error(t, err)
	assert.Less(t, took, 2*time.Second, "the deadline, not the 3s socket timeout, ended the command")
	after, _ := c.PipelineStats()
	assert.Greater(t, after.Commands, before.Commands, "the GET went through the engine")
	require.NoError(t, h.Ping(ctx).Err())
}

// TestAutoPipelineRetriesOnlyRepeatableCommands: a batch whose socket is
// cut after the server ran it, before the replies arrive, retries its
// GETs and not its INCR, which ran exactly once.
func TestAutoPipelineRetriesOnlyRepeatableCommands(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    timeouts:
      socket: 5s
    retry:
      retries: 5
      backoff:
        strategy: constant
        base: 20ms
    pipeline:
      auto: true
`, proxy.Addr()), factory.Options{})
	ev, stopEv := collect(f.Runtime(), runtime.RetryAttempted)
	defer stopEv()
	h, err := f.Handle("a")
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, h.Set(ctx, "r:k", "v", 0).Err())
	c := engine(t, f, "a")
	warmEngine(t, c, 16) // the 8 GET workers and the INCR

	// Replies are held back; 100ms after the INCR has gone to the server,
	// every connection is cut, with the INCR's reply (and those of the
	// GETs around it) still held.
	proxy.Delay(300 * time.Millisecond)
	var once sync.Once
	proxy.OnCommand(func(cmd []string) {
		if len(cmd) > 0 && strings.EqualFold(cmd[0], "incr") {
			once.Do(func() { time.AfterFunc(100*time.Millisecond, func() { proxy.CutAll() }) })
		}
	})
	var wg sync.WaitGroup
	var getFailures atomic.Int64
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if v, err := h.Get(ctx, "r:k").Result(); err != nil || v != "v" {
					getFailures.Add(1)
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond) // GETs are in flight; not a synchronisation
	incrErr := h.Incr(ctx, "r:counter").Err()
	proxy.Delay(0)
	time.Sleep(100 * time.Millisecond) // more GETs after the cut; not a synchronisation
	close(stop)
	wg.Wait()

	require.Error(t, incrErr, "the INCR's reply was lost with its connection")
	assert.Equal(t, errclass.Connection, errclass.Of(incrErr))
	assert.Zero(t, getFailures.Load(), "every GET of the cut batch was retried")
	n, err := srv.Client(t).Get(ctx, "r:counter").Int()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "the INCR ran once and was not sent again")
	assert.Equal(t, 1, proxy.Count("incr"))
	var gets int
	for _, e := range ev.list() {
		assert.NotEqual(t, "incr", e.Command)
		if e.Command == "get" {
			gets++
		}
	}
	assert.Positive(t, gets, "the GETs were retried, each as its own event")
}

// TestAutoPipelineServerKilledUnderLoad: the server is killed (-9) and
// restarted under a SET/GET/INCR load: no idempotent command fails, and no
// INCR is applied twice (the server's AOF keeps the counter across the
// kill; applied INCRs lie between those that succeeded and those tried).
func TestAutoPipelineServerKilledUnderLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    timeouts:
      connect: 500ms
      socket: 1s
    retry:
      retries: 10
      also_on: [busy_loading] # the restarted server answers LOADING while it reads its AOF
      backoff:
        strategy: exponential
        base: 10ms
        cap: 320ms
    pipeline:
      auto: true
`, srv.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()

	var ops, incrOK, incrFailed atomic.Int64
	var mu sync.Mutex
	var failures []error
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				key := fmt.Sprintf("kill:%d", (i*7919+n)%200)
				err := h.Set(ctx, key, n, 0).Err()
				if err == nil {
					if err = h.Get(ctx, key).Err(); err == redis.Nil {
						err = nil
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
				if h.Incr(ctx, "kill:counter").Err() == nil {
					incrOK.Add(1)
				} else {
					incrFailed.Add(1)
				}
				ops.Add(1)
			}
		})
	}
	waitOps := func(n int64) {
		target := ops.Load() + n
		require.Eventually(t, func() bool { return ops.Load() >= target }, 30*time.Second, time.Millisecond)
	}
	waitOps(300)
	srv.Kill()
	srv.Restart(t)
	waitOps(300)
	close(done)
	wg.Wait()

	assert.Empty(t, failures, "no idempotent command may fail across the restart")
	n, err := srv.Client(t).Get(ctx, "kill:counter").Int64()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, incrOK.Load(), "every INCR that succeeded was applied")
	assert.LessOrEqual(t, n, incrOK.Load()+incrFailed.Load(), "no INCR was applied twice")
	st, _ := c.PipelineStats()
	assert.Greater(t, st.Commands, uint64(ops.Load()), "the load went through the engine")
	t.Logf("%d operations; INCR: %d ok, %d failed, %d applied; engine: %d commands in %d writes", ops.Load(), incrOK.Load(), incrFailed.Load(), n, st.Commands, st.Writes)
}

// TestAutoPipelineReloadAndClose: a reload under load swaps the engine
// without a failed command, the new one batching with the new settings,
// the old one is drained and closed (its sockets too), and closing the
// factory leaves no goroutine behind.
func TestAutoPipelineReloadAndClose(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	profile := func(batch int) string {
		return fmt.Sprintf("profiles:\n  a:\n    addr: %s\n    drain_timeout: 5s\n    pipeline:\n      auto: true\n      max_batch: %d\n      concurrent_batches: %d\n", srv.Addr(), batch, batch/50)
	}
	rt := runtime.New(runtime.Options{})
	f, err := factory.New(load(t, "%s", profile(50)), factory.Options{Runtime: rt})
	require.NoError(t, err)
	h, err := f.Handle("a")
	require.NoError(t, err)
	ctx := context.Background()
	old := engine(t, f, "a")

	w := startWorkload(h, 16, 100)
	w.waitOps(t, 300)
	require.NoError(t, f.Apply(ctx, load(t, "%s", profile(100))).Err)
	w.waitOps(t, 300)
	assert.Empty(t, w.stop(), "no command failed across the reload")
	cur := engine(t, f, "a")
	require.NotSame(t, old, cur)
	assert.Equal(t, 100, cur.Profile().Pipeline.MaxBatch)
	st, _ := cur.PipelineStats()
	assert.Equal(t, 2, st.Sockets, "the new engine runs concurrent_batches sockets")
	assert.Greater(t, float64(st.Commands)/float64(st.Writes), 1.0, "the new engine batches (%d commands, %d writes)", st.Commands, st.Writes)
	redistest.Eventually(t, 5*time.Second, "the old engine's sockets are closed", func() bool {
		st, _ := old.PipelineStats()
		return st.Sockets == 0
	})
	assert.ErrorIs(t, old.Batched().Ping(ctx).Err(), redis.ErrClosed, "the old engine's client is closed")
	require.NoError(t, h.Set(ctx, "after", "1", 0).Err())

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, f.Close(cctx))
	require.NoError(t, rt.Close(cctx))
	err = h.Set(ctx, "closed", "1", 0).Err()
	require.Error(t, err)
	assert.True(t, errors.Is(err, redis.ErrClosed) || errors.Is(err, factory.ErrClosed), "%v", err)
}

// TestAutoPipelineSentinelFailoverUnderLoad: a sentinel profile with
// pipeline.auto follows a failover under load without a failed command,
// its batches going to the new master.
func TestAutoPipelineSentinelFailoverUnderLoad(t *testing.T) {
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{})
	cfg := load(t, "%s", sentinelFailoverProfile(sn, "a", "    pipeline:\n      auto: true\n"))
	f := newFactory(t, cfg, factory.Options{})
	c := client(t, f, "a")
	l, err := f.Lookup("a")
	require.NoError(t, err)
	require.NotNil(t, l.AutoPipeliner(), "a sentinel profile keeps go-redis's auto-pipeliner")
	_, ok := l.PipelineStats()
	require.False(t, ok, "a sentinel profile does not use the factory's engine")
	require.Same(t, l.AutoPipeliner(), l.Batched())
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
	require.NoError(t, c.Set(ctx, "after-failover", "1", 0).Err())
}

// TestAutoPipelineDeadlineBoundsCommand: a command whose context has a
// deadline goes through the factory's engine and is bounded by that
// deadline, not by the socket timeout: with the server gone silent (the
// fault proxy swallows everything), a GET with 50ms left fails within
// about 50ms, as a timeout. Its socket is retired: once the silence ends,
// commands go to a new socket, none to the old one (whose swallowed GET
// will never be answered), and each gets its own reply.
func TestAutoPipelineDeadlineBoundsCommand(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    timeouts:
      socket: 5s
    pipeline:
      auto: true
`, proxy.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	require.NoError(t, h.Set(ctx, "dl:k", "v", 0).Err())
	warmEngine(t, c, 4) // idle virtual connections on the socket
	before, _ := c.PipelineStats()
	require.Equal(t, 1, before.Sockets)
	conns := proxy.TotalConns()

	proxy.Blackhole(true)
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	start := time.Now()
	err := h.Get(dctx, "dl:k").Err()
	took := time.Since(start)
	cancel()
	require.Error(t, err)
	assert.Equal(t, errclass.Timeout, errclass.Of(err), "%v", err)
	assert.GreaterOrEqual(t, took, 45*time.Millisecond)
	assert.Less(t, took, 50*time.Millisecond+closeSlack, "the deadline, not the 5s socket timeout, ended the GET")
	st, _ := c.PipelineStats()
	assert.Greater(t, st.Commands, before.Commands, "the GET went through the engine")
	proxy.Blackhole(false)

	start = time.Now()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for n := range 20 {
				key, val := fmt.Sprintf("dl:%d", i), fmt.Sprintf("v%d", n)
				if !assert.NoError(t, h.Set(ctx, key, val, 0).Err()) {
					return
				}
				got, err := h.Get(ctx, key).Result()
				if !assert.NoError(t, err) || !assert.Equal(t, val, got, "each command gets its own reply") {
					return
				}
			}
		})
	}
	wg.Wait()
	assert.Less(t, time.Since(start), 2*time.Second, "no command waited for the old socket")
	assert.Greater(t, proxy.TotalConns(), conns, "a new socket was opened")
	redistest.Eventually(t, 5*time.Second, "the old socket is closed with its last virtual connection", func() bool {
		st, _ := c.PipelineStats()
		return st.Sockets == 1
	})
}
