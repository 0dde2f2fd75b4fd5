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

// batchHook records the size of every pipeline its client sends.
type batchHook struct {
	batches atomic.Int64
	largest atomic.Int64
}

func (b *batchHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (b *batchHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (b *batchHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		b.batches.Add(1)
		for n := int64(len(cmds)); ; {
			cur := b.largest.Load()
			if n <= cur || b.largest.CompareAndSwap(cur, n) {
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestAutoPipelineBatchesConcurrentCallers: with pipeline.auto, the
// commands of concurrent callers share pipelines, and every caller gets
// its own reply.
func TestAutoPipelineBatchesConcurrentCallers(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n    pipeline:\n      auto: true\n", srv.Addr()), factory.Options{})
	h, err := f.Handle("a")
	require.NoError(t, err)
	var bh batchHook
	h.AddHook(&bh)
	c, err := f.Lookup("a")
	require.NoError(t, err)
	require.NotNil(t, c.AutoPipeliner())

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
	assert.Greater(t, bh.largest.Load(), int64(1), "concurrent commands shared a pipeline")
	t.Logf("%d batches, largest %d commands", bh.batches.Load(), bh.largest.Load())
}

// TestAutoPipelineLeavesConnectionBoundWorkToThePool: transactions,
// blocking commands, pub/sub and commands with a deadline keep working as
// with bare go-redis, and a blocking command does not hold up batched ones.
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
	// the socket timeout.
	srv.Pause()
	dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	start = time.Now()
	err = h.Get(dctx, "tx:k").Err()
	cancel()
	took := time.Since(start)
	srv.Resume()
	require.Error(t, err)
	assert.Less(t, took, 2*time.Second, "the deadline, not the 3s socket timeout, ended the command")
	require.NoError(t, h.Ping(ctx).Err())
}

// TestAutoPipelineRetriesOnlyRepeatableCommands: a batch whose connection
// is cut after the server ran it, before the replies arrive, retries its
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
	h, err := f.Handle("a")
	require.NoError(t, err)
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
	t.Logf("%d operations; INCR: %d ok, %d failed, %d applied", ops.Load(), incrOK.Load(), incrFailed.Load(), n)
}

// TestAutoPipelineReloadAndClose: a reload under load swaps the
// auto-pipeliner without a failed command, the old one is drained and
// closed, and closing the factory leaves no goroutine behind.
func TestAutoPipelineReloadAndClose(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	profile := func(batch int) string {
		return fmt.Sprintf("profiles:\n  a:\n    addr: %s\n    drain_timeout: 5s\n    pipeline:\n      auto: true\n      max_batch: %d\n", srv.Addr(), batch)
	}
	rt := runtime.New(runtime.Options{})
	f, err := factory.New(load(t, "%s", profile(50)), factory.Options{Runtime: rt})
	require.NoError(t, err)
	h, err := f.Handle("a")
	require.NoError(t, err)
	ctx := context.Background()
	old, err := f.Lookup("a")
	require.NoError(t, err)

	w := startWorkload(h, 16, 100)
	w.waitOps(t, 300)
	require.NoError(t, f.Apply(ctx, load(t, "%s", profile(100))).Err)
	w.waitOps(t, 300)
	assert.Empty(t, w.stop(), "no command failed across the reload")
	cur, err := f.Lookup("a")
	require.NoError(t, err)
	require.NotSame(t, old, cur)
	assert.Equal(t, 100, cur.AutoPipeliner().Config().MaxBatchSize)
	redistest.Eventually(t, 5*time.Second, "the old auto-pipeliner is closed", func() bool {
		return old.AutoPipeliner().IsClosed()
	})
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
	require.NotNil(t, l.AutoPipeliner())
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
