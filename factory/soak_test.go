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

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// TestSoakReloadsUnderLoad changes the configuration 100 times — timeouts,
// pool size, retry policy, and the address moving between two real
// servers — while workers issue commands through the handle. No command
// may fail; after every reload the next command runs with the new settings
// on the new server; afterwards no goroutine and no connection is left.
func TestSoakReloadsUnderLoad(t *testing.T) {
	srvs := []*redistest.Server{redistest.Start(t, redistest.Options{}), redistest.Start(t, redistest.Options{})}
	admins := []*redis.Client{srvs[0].Client(t), srvs[1].Client(t)}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	profile := func(i int) string {
		return fmt.Sprintf(`profiles:
  app:
    addr: %s
    client_name: gen-%d
    drain_timeout: 2s
    timeouts:
      socket: %dms
    pool:
      size: %d
    retry:
      retries: %d
      backoff:
        strategy: %s
        base: 5ms
        cap: 100ms
`, srvs[i%2].Addr(), i, 500+100*(i%5), 2+i%6, 2+i%3, []string{"exponential_jitter", "full_jitter", "constant", "decorrelated_jitter"}[i%4])
	}
	rt := runtime.New(runtime.Options{})
	f, err := factory.New(load(t, "%s", profile(0)), factory.Options{Runtime: rt})
	require.NoError(t, err)
	h, err := f.Handle("app")
	require.NoError(t, err)

	ctx, stop := context.WithCancel(context.Background())
	var ops atomic.Int64
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				key := fmt.Sprintf("soak:%d:%d", w, n%50)
				err := h.Set(context.Background(), key, n, 0).Err()
				if err == nil {
					// The address moves between two servers that share no
					// data: a missing key is an answer, not a failure.
					if err = h.Get(context.Background(), key).Err(); err == redis.Nil {
						err = nil
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
				}
				ops.Add(1)
			}
		}()
	}

	for i := 1; i <= 100; i++ {
		before := ops.Load()
		r := f.Apply(context.Background(), load(t, "%s", profile(i)))
		require.NoError(t, r.Err, "reload %d", i)
		require.Equal(t, []string{"app"}, r.Changed)
		// The first command after the reload completed uses the new client.
		info, err := h.ClientInfo(context.Background()).Result()
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("gen-%d", i), info.Name, "reload %d", i)
		assert.Equal(t, srvs[i%2].Port(), portOf(info.LAddr), "reload %d: on the new server", i)
		// Let the workers run on the new client before the next change.
		require.Eventually(t, func() bool { return ops.Load() > before+100 }, 10*time.Second, time.Millisecond)
	}
	stop()
	wg.Wait()
	assert.Empty(t, failures, "no command may fail across 100 reloads")
	t.Logf("%d operations across 100 reloads", ops.Load())

	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.Close(closeCtx))
	require.NoError(t, rt.Close(closeCtx))

	// Every connection the clients opened is closed (drained clients too).
	for i, a := range admins {
		require.Eventually(t, func() bool {
			list, err := a.ClientList(context.Background()).Result()
			return err == nil && !strings.Contains(list, "name=gen-")
		}, 10*time.Second, 5*time.Millisecond, "server %d still has connections of the factory", i)
	}
}

func portOf(addr string) int {
	var port int
	if i := strings.LastIndexByte(addr, ':'); i >= 0 {
		fmt.Sscanf(addr[i+1:], "%d", &port)
	}
	return port
}
