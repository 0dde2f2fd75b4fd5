package factory_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// awaitDirectPath waits until the engine's direct path takes commands:
// the first ones may take the ordinary path while the socket is prepared.
func awaitDirectPath(t *testing.T, h *factory.Handle, c *factory.Client) {
	t.Helper()
	redistest.Eventually(t, 10*time.Second, "the direct path in use", func() bool {
		require.NoError(t, h.Set(context.Background(), "direct:warm", "1", 0).Err())
		st, _ := c.PipelineStats()
		return st.Direct > 0
	})
}

// awaitDirectMiss waits until a cache miss (GET of a key nobody wrote)
// takes the direct path: its socket's tracking is current.
func awaitDirectMiss(t *testing.T, h *factory.Handle, c *factory.Client, what string) {
	t.Helper()
	redistest.Eventually(t, 10*time.Second, what, func() bool {
		before, _ := c.PipelineStats()
		require.ErrorIs(t, h.Get(context.Background(), fmt.Sprint("absent:", time.Now().UnixNano())).Err(), redis.Nil)
		after, _ := c.PipelineStats()
		return after.Direct > before.Direct
	})
}

// nameHook counts the commands of each name it sees.
type nameHook struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *nameHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *nameHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.mu.Lock()
		h.seen[cmd.Name()]++
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}
func (h *nameHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *nameHook) count(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[name]
}

// With pipeline.auto on a standalone profile without a cache, the
// engine's direct path sends GET, SET, INCR… itself: the results are
// go-redis's (values, redis.Nil, error replies with their types), the
// commands run in the profile's database (the socket was prepared by
// go-redis's handshake), and a hook the user adds afterwards still sees
// every command.
func TestAutoPipelineDirectPath(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    db: 2
    pipeline:
      auto: true
`, srv.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	bare := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 2})
	defer bare.Close()
	require.NoError(t, bare.Ping(ctx).Err())

	awaitDirectPath(t, h, c)
	hook := &nameHook{seen: map[string]int{}}
	h.AddHook(hook)
	before, _ := c.PipelineStats()

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 100 {
				key, val := fmt.Sprintf("direct:%d", g), fmt.Sprintf("v%d", i)
				if !assert.NoError(t, h.Set(ctx, key, val, 0).Err()) {
					return
				}
				got, err := h.Get(ctx, key).Result()
				if !assert.NoError(t, err) || !assert.Equal(t, val, got) {
					return
				}
				if !assert.Equal(t, int64(i+1), h.Incr(ctx, fmt.Sprintf("direct:n:%d", g)).Val()) {
					return
				}
			}
		})
	}
	wg.Wait()
	after, _ := c.PipelineStats()
	assert.GreaterOrEqual(t, after.Direct-before.Direct, uint64(8*300), "every command took the direct path")
	assert.Equal(t, 800, hook.count("get"), "the user's hook saw every GET")
	assert.Equal(t, 800, hook.count("set"))
	assert.Equal(t, "v99", bare.Get(ctx, "direct:7").Val(), "the commands ran in database 2")

	// Replies other than a plain value are go-redis's own.
	require.NoError(t, bare.LPush(ctx, "direct:list", "x").Err())
	for _, tc := range []struct {
		name      string
		ours, its redis.Cmder
	}{
		{"missing key", h.Get(ctx, "direct:missing"), bare.Get(ctx, "direct:missing")},
		{"wrong type", h.Get(ctx, "direct:list"), bare.Get(ctx, "direct:list")},
		{"not an integer", h.Incr(ctx, "direct:0"), bare.Incr(ctx, "direct:0")},
		{"SET NX on an existing key", h.SetArgs(ctx, "direct:0", "x", redis.SetArgs{Mode: "NX"}), bare.SetArgs(ctx, "direct:0", "x", redis.SetArgs{Mode: "NX"})},
		{"SET GET", h.SetArgs(ctx, "direct:1", "v99", redis.SetArgs{Get: true}), bare.SetArgs(ctx, "direct:1", "v99", redis.SetArgs{Get: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, fmt.Sprint(tc.its), fmt.Sprint(tc.ours))
			if tc.its.Err() == nil {
				assert.NoError(t, tc.ours.Err())
				return
			}
			require.Error(t, tc.ours.Err())
			assert.Equal(t, tc.its.Err().Error(), tc.ours.Err().Error())
			assert.IsType(t, tc.its.Err(), tc.ours.Err())
			assert.Equal(t, errors.Is(tc.its.Err(), redis.Nil), errors.Is(tc.ours.Err(), redis.Nil))
			var a, b redis.Error
			assert.Equal(t, errors.As(tc.its.Err(), &a), errors.As(tc.ours.Err(), &b))
		})
	}
}

// With the cache, a miss takes the direct path on a socket whose
// tracking, turned on by its handshake client, redirects to the cache's
// current invalidation connection: the server tracks what it reads, so
// another client's write invalidates it. Writes take the direct path and
// drop what the cache holds at once. When the invalidation connection is
// replaced, misses take the engine's virtual connections (which turn
// tracking on again) until the socket's own tracking is refreshed, and
// values stay fresh throughout (cache.TestTrackingOf checks the rule
// itself).
func TestAutoPipelineDirectPathWithCache(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    protocol: 3
    cache:
      enabled: true
      max_entries: 1000
    pipeline:
      auto: true
`, srv.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	other := srv.Client(t)
	awaitDirectPath(t, h, c)
	// Misses take the direct path once the socket's tracking redirects to
	// the cache's invalidation connection (which may come up after the
	// socket was prepared: the socket's tracking is then refreshed).
	awaitDirectMiss(t, h, c, "a miss takes the direct path")

	// fresh checks, for each key, that a write of ours is read at once,
	// that reads then come from the cache, and that another client's
	// write reaches the cache.
	fresh := func(t *testing.T, round string) {
		t.Helper()
		for i := range 20 {
			key := fmt.Sprint("k", i)
			val := round + fmt.Sprint(i)
			require.NoError(t, h.Set(ctx, key, val, 0).Err())
			require.Equal(t, val, h.Get(ctx, key).Val(), "a write is read at once")
			// The invalidation our own SET caused may still be on its way
			// and keep the first miss from being stored: reads are hits
			// soon, and always right.
			redistest.Eventually(t, 2*time.Second, "reads of "+key+" are hits", func() bool {
				hits := c.Cache().Stats().Hits
				require.Equal(t, val, h.Get(ctx, key).Val())
				return c.Cache().Stats().Hits > hits
			})
			require.NoError(t, other.Set(ctx, key, val+"-other", 0).Err())
			redistest.Eventually(t, 2*time.Second, "another client's write invalidates "+key, func() bool {
				return h.Get(ctx, key).Val() == val+"-other"
			})
		}
	}
	before, _ := c.PipelineStats()
	fresh(t, "a")
	mid, _ := c.PipelineStats()
	// Per key: the SET, the miss after it, and the miss after the other
	// client's write; the hits send nothing.
	assert.GreaterOrEqual(t, mid.Direct-before.Direct, uint64(20*3), "SETs and misses took the direct path")
	assert.Less(t, mid.Direct-before.Direct, uint64(20*6), "hits took no path")

	require.NoError(t, other.Do(ctx, "CLIENT", "KILL", "ID", invalidationID(t, srv)).Err())
	redistest.Eventually(t, 5*time.Second, "the invalidation connection replaced", func() bool {
		return c.Cache().Stats().Flushes > 0 && h.Get(ctx, "k0").Err() == nil && func() bool {
			hits := c.Cache().Stats().Hits
			_ = h.Get(ctx, "k0")
			return c.Cache().Stats().Hits > hits
		}()
	})
	fresh(t, "b")
	// The socket's tracking is refreshed (its handshake client sends one
	// more command, which the cache's wrapper precedes with tracking), and
	// misses take the direct path again, still fresh.
	awaitDirectMiss(t, h, c, "a miss takes the direct path again")
	fresh(t, "c")
}

// A server demoted behind the profile's address (a VIP or DNS name now
// reaching the new master) answers writes with READONLY: the direct path
// retires its socket, as go-redis drops a connection that answers
// READONLY, so that the next commands dial the new master instead of
// failing on the old socket for as long as it lives.
func TestAutoPipelineDirectPathReadOnlyRetiresSocket(t *testing.T) {
	oldMaster := redistest.Start(t, redistest.Options{})
	newMaster := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, oldMaster.Addr())
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    retry: {retries: 0}
    pipeline:
      auto: true
`, proxy.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	awaitDirectPath(t, h, c)

	host, port, err := net.SplitHostPort(newMaster.Addr())
	require.NoError(t, err)
	require.NoError(t, oldMaster.Client(t).ReplicaOf(ctx, host, port).Err())
	proxy.SetUpstream(newMaster.Addr())
	err = h.Set(ctx, "ro:k", "v", 0).Err()
	require.Error(t, err, "the old socket still reaches the demoted server")
	assert.True(t, redis.IsReadOnlyError(err), "%v", err)
	require.NoError(t, h.Set(ctx, "ro:k", "v", 0).Err(), "the next write dials the new master")
	assert.Equal(t, "v", newMaster.Client(t).Get(ctx, "ro:k").Val())
	awaitDirectPath(t, h, c)
}

// pool.conn_max_lifetime with pipeline.auto replaces the engine's shared
// sockets, not only go-redis's virtual connections: under a load of
// direct and ordinary commands, sockets are replaced in turn, no command
// fails, every INCR is applied once, the direct path resumes on the new
// sockets, and the old ones close.
func TestAutoPipelineConnMaxLifetimeReplacesSockets(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    pool: {conn_max_lifetime: 200ms}
    pipeline: {auto: true}
`, srv.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	awaitDirectPath(t, h, c)
	received := func() int64 { return srv.InfoInt(t, "stats", "total_connections_received") }
	before := received()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var incrs atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !assert.NoError(t, h.Incr(ctx, "life:n").Err()) { // direct
					return
				}
				incrs.Add(1)
				if !assert.NoError(t, h.Echo(ctx, "x").Err()) { // a virtual connection
					return
				}
			}
		})
	}
	redistest.Eventually(t, 10*time.Second, "three sockets opened in turn", func() bool { return received()-before >= 3 })
	mid, _ := c.PipelineStats()
	redistest.Eventually(t, 10*time.Second, "the direct path on a new socket", func() bool {
		st, _ := c.PipelineStats()
		return st.Direct > mid.Direct+100
	})
	// The replaced sockets close as go-redis drops their connections,
	// under the load at once: they do not pile up.
	redistest.Eventually(t, 10*time.Second, "the replaced sockets closed", func() bool {
		st, _ := c.PipelineStats()
		return st.Sockets <= 2
	})
	close(stop)
	wg.Wait()
	n, err := srv.Client(t).Get(ctx, "life:n").Int64()
	require.NoError(t, err)
	assert.Equal(t, incrs.Load(), n, "every INCR was applied once")

	// Idle, the sockets still close at their age (once quiet for a
	// second), although go-redis holds idle connections on them; the next
	// commands find new ones.
	redistest.Eventually(t, 10*time.Second, "every socket closed once quiet past its age", func() bool {
		st, _ := c.PipelineStats()
		return st.Sockets == 0
	})
	require.NoError(t, h.Incr(ctx, "life:n").Err())
	require.NoError(t, h.Echo(ctx, "after").Err())
}

// A server that answers LOADING when the engine's socket is prepared
// (a service started while Redis reads its dataset) delays the direct
// path, it does not lose it: the preparation is tried again, and once the
// server answers, the profile's commands go direct. Meanwhile they take
// the ordinary path and succeed.
func TestDirectPathAfterLoading(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	proxy := redistest.NewProxy(t, srv.Addr())
	loading := proxy.InjectReply(func(cmd []string) bool {
		return len(cmd) == 2 && strings.EqualFold(cmd[0], "ECHO") && cmd[1] == "redisfactory" // the preparation's
	}, []byte("-LOADING Redis is loading the dataset in memory\r\n"), 3)
	f := newFactory(t, load(t, `profiles:
  a:
    addr: %s
    pipeline: {auto: true}
`, proxy.Addr()), factory.Options{})
	h, c := engineHandle(t, f, "a")
	ctx := context.Background()
	require.NoError(t, h.Set(ctx, "loading:k", "v", 0).Err())
	awaitDirectPath(t, h, c)
	assert.Equal(t, 3, loading.Hits(), "the preparation was answered LOADING three times")
	assert.Equal(t, "v", h.Get(ctx, "loading:k").Val())
}
