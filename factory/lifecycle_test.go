package factory_test

import (
	"context"
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
)

// load8 runs 8 workers sending INCRs through h until one gets an error;
// it returns a function that waits for them and returns their errors and
// the number of INCRs that succeeded.
func load8(h redis.UniversalClient, key string) (wait func() ([]error, int64)) {
	var ok atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := h.Incr(context.Background(), key).Err(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				ok.Add(1)
			}
		}()
	}
	return func() ([]error, int64) { wg.Wait(); return errs, ok.Load() }
}

// TestCloseWithCommandsInFlight: Close(context.Background()) returns
// promptly while 8 goroutines keep sending commands through a handle (it
// used to wait for them forever); from then on every call through the
// handle fails with redis.ErrClosed, class closed, and no command reaches
// the server after Close returned. Ten concurrent Close calls all return its
// result, and so does a later one.
func TestCloseWithCommandsInFlight(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	ctx := context.Background()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	for _, concurrent := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d Close calls", concurrent), func(t *testing.T) {
			key := "close:" + t.Name()
			f, err := factory.New(load(t, "profiles:\n  a:\n    addr: %s\n    drain_timeout: 30s\n", srv.Addr()), factory.Options{})
			require.NoError(t, err)
			h, err := f.Client("a")
			require.NoError(t, err)
			wait := load8(h, key)
			redistest.Eventually(t, 10*time.Second, "load running", func() bool {
				n, _ := admin.Get(ctx, key).Int()
				return n > 1000
			})

			start := time.Now()
			errs := make([]error, concurrent)
			var wg sync.WaitGroup
			for i := range concurrent {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = f.Close(context.Background()) }()
			}
			wg.Wait()
			took := time.Since(start)
			served, err := admin.Get(ctx, key).Int()
			require.NoError(t, err)
			for _, err := range errs {
				assert.NoError(t, err)
			}
			// The calls in flight finish in a round trip or so: far less than
			// the drain_timeout of 30s, which only bounds slow ones.
			assert.Less(t, took, 5*time.Second, "Close returned after %s", took)
			assert.NoError(t, f.Close(context.Background()), "Close is idempotent")

			workerErrs, ok := wait()
			require.Len(t, workerErrs, 8)
			for _, err := range workerErrs {
				assert.ErrorIs(t, err, redis.ErrClosed)
				assert.Equal(t, errclass.Closed, errclass.Of(err), "%v", err)
			}
			after, err := admin.Get(ctx, key).Int()
			require.NoError(t, err)
			assert.Equal(t, served, after, "no command reached the server after Close returned")
			assert.Equal(t, int64(after), ok, "every INCR the server applied was answered")

			err = h.Set(ctx, "k", "v", 0).Err()
			assert.ErrorIs(t, err, redis.ErrClosed)
			_, err = h.Pipelined(ctx, func(p redis.Pipeliner) error { p.Get(ctx, "k"); return nil })
			assert.ErrorIs(t, err, redis.ErrClosed)
		})
	}
}

// closeSlack is how long after its context's deadline Close may return.
// Past the deadline Close only closes sockets and pools (no network wait),
// which takes a few milliseconds; the rest is the scheduler of a loaded
// 2-core CI machine running other tests' servers beside this one, with the
// race detector on.
const closeSlack = 200 * time.Millisecond

// TestCloseIsBoundedByItsContext: a call that does not finish (a BLPOP
// with no timeout) keeps Close waiting only until Close's context ends;
// the call is then ended by go-redis's Close.
func TestCloseIsBoundedByItsContext(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f, blocked := factoryWithBlockedCall(t, srv)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := f.Close(ctx)
	took := time.Since(start)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "1 calls still running were cut")
	assert.Less(t, took, 300*time.Millisecond+closeSlack, "Close returned %s after its deadline", took-300*time.Millisecond)
	select {
	case err := <-blocked:
		assert.Error(t, err, "the BLPOP was ended by closing its client")
	case <-time.After(10 * time.Second):
		t.Fatal("the BLPOP still runs after Close")
	}
}

// TestAfterCloseEverythingIsClassClosed: the factory's own entry points
// return ErrClosed, which errclass classifies as closed.
func TestAfterCloseEverythingIsClassClosed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, "profiles:\n  a:\n    addr: %s\n", srv.Addr())
	f, err := factory.New(cfg, factory.Options{})
	require.NoError(t, err)
	require.NoError(t, f.Close(context.Background()))

	_, err = f.Client("a")
	assert.Equal(t, errclass.Closed, errclass.Of(err), "Client: %v", err)
	_, err = f.Handle("a")
	assert.Equal(t, errclass.Closed, errclass.Of(err), "Handle: %v", err)
	_, err = f.Lookup("a")
	assert.Equal(t, errclass.Closed, errclass.Of(err), "Lookup: %v", err)
	_, err = f.Health("a")
	assert.Equal(t, errclass.Closed, errclass.Of(err), "Health: %v", err)
	r := f.Apply(context.Background(), cfg)
	assert.ErrorIs(t, r.Err, factory.ErrClosed)
	assert.Equal(t, errclass.Closed, errclass.Of(r.Err), "Apply: %v", r.Err)
	assert.ErrorIs(t, r.Err, redis.ErrClosed, "ErrClosed wraps go-redis's")
}

// TestHandleCloseKeepsTheHandleWorking: a handle is shared by every
// holder of the profile, so its Close does not close the profile's client.
func TestHandleCloseKeepsTheHandleWorking(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n", srv.Addr()), factory.Options{})
	h1 := client(t, f, "a")
	h2 := client(t, f, "a")
	ctx := context.Background()
	require.NoError(t, h1.Close())
	require.NoError(t, h1.Set(ctx, "k", "v", 0).Err(), "the handle that was closed")
	require.NoError(t, h2.Get(ctx, "k").Err(), "another holder of the profile")
}

// TestReloadsLeaveNoGoroutine: 100 reloads that add and remove a profile
// (RESP3, SCH auto: go-redis starts maintenance-notification goroutines
// for such clients), then Close: no goroutine is left.
func TestReloadsLeaveNoGoroutine(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	base := fmt.Sprintf("profiles:\n  a:\n    addr: %s\n", srv.Addr())
	withB := base + fmt.Sprintf("  b:\n    addr: %s\n    drain_timeout: 1m\n", srv.Addr())
	f, err := factory.New(load(t, "%s", base), factory.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 100 {
		r := f.Apply(ctx, load(t, "%s", withB))
		require.NoError(t, r.Err, "reload %d", i)
		require.Equal(t, []string{"b"}, r.Added)
		b, err := f.Client("b")
		require.NoError(t, err)
		require.NoError(t, b.Ping(ctx).Err())
		r = f.Apply(ctx, load(t, "%s", base))
		require.NoError(t, r.Err, "reload %d", i)
		require.Equal(t, []string{"b"}, r.Removed)
		assert.ErrorIs(t, b.Ping(ctx).Err(), factory.ErrProfileRemoved)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, f.Close(closeCtx))
}

// proxyGoroutines are the fault proxy's own goroutines: the test's, not
// the factory's; they end when the proxy is closed after the leak check
// (closing it first would also end any go-redis read the factory left
// behind, and hide it).
var proxyGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/redisfactory/redisfactory/internal/respproxy.(*Proxy).acceptLoop"),
	goleak.IgnoreAnyFunction("github.com/redisfactory/redisfactory/internal/respproxy.(*Proxy).serve"),
	goleak.IgnoreAnyFunction("github.com/redisfactory/redisfactory/internal/respproxy.(*Conn).serverLoop"),
	goleak.IgnoreAnyFunction("github.com/redisfactory/redisfactory/internal/respproxy.(*Conn).writeLoop"),
}

// TestCloseWithAutoPipelineBlackholed: with pipeline.auto (the factory's
// engine, for a standalone profile), commands in flight and the server
// gone silent (the fault proxy swallows everything, no FIN, no RST), Close
// returns by its context's deadline, although the commands wait for their
// replies up to the socket timeout (10s here): at the deadline the factory
// closes the engine's sockets, the commands waiting on them fail at once,
// and the engine's goroutines end. No goroutine of the factory, the engine
// or go-redis is left.
func TestCloseWithAutoPipelineBlackholed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	ignore := append([]goleak.Option{goleak.IgnoreCurrent()}, proxyGoroutines...)
	f, err := factory.New(load(t, `profiles:
  a:
    addr: %s
    drain_timeout: 1m
    timeouts:
      socket: 10s
    retry:
      retries: 0
    pipeline:
      auto: true
`, proxy.Addr()), factory.Options{})
	require.NoError(t, err)
	h, err := f.Client("a")
	require.NoError(t, err)
	c, err := f.Lookup("a")
	require.NoError(t, err)
	require.Nil(t, c.AutoPipeliner(), "a standalone profile does not use go-redis's auto-pipeliner")
	_, ok := c.PipelineStats()
	require.True(t, ok, "the profile auto-pipelines through the factory's engine")
	wait := load8(h, "close:autopipeline")
	admin := srv.Client(t)
	redistest.Eventually(t, 10*time.Second, "load running", func() bool {
		n, _ := admin.Get(context.Background(), "close:autopipeline").Int()
		return n > 100
	})
	proxy.Blackhole(true)
	time.Sleep(100 * time.Millisecond) // every worker is now waiting for a reply

	const deadline = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err = f.Close(ctx)
	took := time.Since(start)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "calls were still running at the deadline")
	assert.Less(t, took, deadline+closeSlack, "Close returned %s after its deadline", took-deadline)

	workerErrs, _ := wait()
	require.Len(t, workerErrs, 8)
	st, _ := c.PipelineStats()
	assert.Zero(t, st.Sockets, "the engine's sockets are closed")
	goleak.VerifyNone(t, ignore...)
	proxy.Close()
}

// TestCloseByDeadlineUnderLoad: 8 workers loop INCR through the handle,
// with a drain_timeout far longer than Close's context; Close returns by
// its deadline (the calls in flight finish in a round trip, so it usually
// returns at once), every worker then fails with ErrClosed, and nothing is
// left running.
func TestCloseByDeadlineUnderLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f, err := factory.New(load(t, "profiles:\n  a:\n    addr: %s\n    drain_timeout: 1m\n", srv.Addr()), factory.Options{})
	require.NoError(t, err)
	h, err := f.Client("a")
	require.NoError(t, err)
	wait := load8(h, "close:deadline")
	redistest.Eventually(t, 10*time.Second, "load running", func() bool {
		n, _ := admin.Get(context.Background(), "close:deadline").Int()
		return n > 1000
	})

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	err = f.Close(ctx)
	took := time.Since(start)
	assert.NoError(t, err, "the calls in flight finished within the deadline")
	assert.Less(t, took, deadline+closeSlack, "Close returned %s after its deadline", took-deadline)
	workerErrs, _ := wait()
	require.Len(t, workerErrs, 8)
	for _, err := range workerErrs {
		assert.ErrorIs(t, err, redis.ErrClosed)
	}
}

// TestConcurrentClosesEachByItsDeadline: a call that never finishes (a
// BLPOP with no timeout) holds the first Close until its deadline; four
// more Close calls, each with its own deadline (shorter and longer than
// the first's), return by theirs: a waiting caller gives up when its own
// context ends, and one whose context outlives the first Close returns
// the first Close's result.
func TestConcurrentClosesEachByItsDeadline(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f, blocked := factoryWithBlockedCall(t, srv)

	// The first call is started alone, so it is the one that closes.
	const first = 400 * time.Millisecond
	others := []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 600 * time.Millisecond, 2 * time.Second}
	type result struct {
		err  error
		took time.Duration
	}
	run := func(d time.Duration, out chan<- result) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		start := time.Now()
		err := f.Close(ctx)
		out <- result{err, time.Since(start)}
	}
	firstOut := make(chan result, 1)
	go run(first, firstOut)
	time.Sleep(20 * time.Millisecond)
	outs := make([]chan result, len(others))
	for i, d := range others {
		outs[i] = make(chan result, 1)
		go run(d, outs[i])
	}

	r := <-firstOut
	assert.ErrorIs(t, r.err, context.DeadlineExceeded)
	assert.Contains(t, r.err.Error(), "1 calls still running were cut")
	assert.Less(t, r.took, first+closeSlack, "the first Close returned %s after its deadline", r.took-first)
	for i, d := range others {
		r := <-outs[i]
		require.Error(t, r.err, "Close with a %s deadline", d)
		assert.ErrorIs(t, r.err, context.DeadlineExceeded, "Close with a %s deadline", d)
		// The Close started 20ms after the first: its deadline is at most
		// that much later than the first's, so it returns by its own.
		assert.Less(t, r.took, min(d, first)+closeSlack, "Close with a %s deadline returned after %s", d, r.took)
		if d < first {
			assert.Contains(t, r.err.Error(), "waiting for a concurrent Close", "Close with a %s deadline", d)
		} else {
			assert.Contains(t, r.err.Error(), "1 calls still running were cut", "Close with a %s deadline returns the first Close's result", d)
		}
	}
	select {
	case err := <-blocked:
		assert.Error(t, err, "the BLPOP was ended by closing its client")
	case <-time.After(10 * time.Second):
		t.Fatal("the BLPOP still runs after Close")
	}
}

// factoryWithBlockedCall returns a factory with one profile (drain timeout
// 1m) whose handle runs a call that never finishes on its own — a BLPOP
// with no timeout, seen blocked on the server — and the channel its error
// arrives on once something ends it.
func factoryWithBlockedCall(t *testing.T, srv *redistest.Server) (*factory.Factory, <-chan error) {
	t.Helper()
	f, err := factory.New(load(t, "profiles:\n  a:\n    addr: %s\n    drain_timeout: 1m\n", srv.Addr()), factory.Options{})
	require.NoError(t, err)
	h, err := f.Client("a")
	require.NoError(t, err)
	blocked := make(chan error, 1)
	go func() { blocked <- h.BLPop(context.Background(), 0, "close:never").Err() }()
	admin := srv.Client(t)
	redistest.Eventually(t, 10*time.Second, "BLPOP blocked", func() bool {
		list, _ := admin.ClientList(context.Background()).Result()
		return strings.Contains(list, "cmd=blpop")
	})
	return f, blocked
}
