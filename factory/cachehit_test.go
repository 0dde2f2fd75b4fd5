package factory_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestHandleGetHit: through the handle, a GET hit is answered with one
// allocation and the same command bare go-redis returns (name, arguments,
// value or redis.Nil), with or without pipeline.auto; a write through the
// handle is seen by the next GET. With pipeline.auto, a miss goes through
// the factory's engine, whose client fills the cache.
func TestHandleGetHit(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	for _, auto := range []bool{false, true} {
		t.Run(map[bool]string{false: "pool", true: "pipeline.auto"}[auto], func(t *testing.T) {
			f := newFactory(t, load(t, `profiles:
  c:
    addr: %s
    cache:
      enabled: true
      max_entries: 1000
    pipeline:
      auto: %t
`, srv.Addr(), auto), factory.Options{})
			h, err := f.Handle("c")
			require.NoError(t, err)
			c, err := f.Lookup("c")
			require.NoError(t, err)
			ctx := context.Background()
			key := "hit:" + t.Name()
			require.NoError(t, h.Set(ctx, key, "v1", 0).Err())
			require.Equal(t, "v1", h.Get(ctx, key).Val())
			redistest.Eventually(t, 2*time.Second, "the GET is cached", func() bool {
				return c.Cache().GetHit(ctx, key) != nil
			})

			bare := srv.Client(t).Get(ctx, key)
			hit := h.Get(ctx, key)
			require.NoError(t, hit.Err())
			assert.Equal(t, bare.Val(), hit.Val())
			assert.Equal(t, bare.Name(), hit.Name())
			assert.Equal(t, bare.Args(), hit.Args())
			assert.Equal(t, bare.String(), hit.String())

			before := c.Cache().Stats().Hits
			allocs := testing.AllocsPerRun(1000, func() { _ = h.Get(ctx, key).Val() })
			assert.LessOrEqual(t, allocs, 1.0, "a GET hit allocates its command only")
			assert.GreaterOrEqual(t, c.Cache().Stats().Hits-before, uint64(1000), "the GETs were hits")

			// A bypassed context is not answered from the cache.
			hits := c.Cache().Stats().Hits
			require.Equal(t, "v1", h.Get(cache.Bypass(ctx), key).Val())
			assert.Equal(t, hits, c.Cache().Stats().Hits)

			// A write through the handle is read back at once.
			require.NoError(t, h.Set(ctx, key, "v2", 0).Err())
			assert.Equal(t, "v2", h.Get(ctx, key).Val())

			// A missing key is cached as redis.Nil.
			missing := key + ":missing"
			sent, engine := c.PipelineStats()
			require.Equal(t, auto, engine, "the factory's engine runs pipeline.auto")
			require.ErrorIs(t, h.Get(ctx, missing).Err(), redis.Nil)
			if after, _ := c.PipelineStats(); auto {
				assert.Greater(t, after.Commands, sent.Commands, "the miss went through the engine")
			}
			redistest.Eventually(t, 2*time.Second, "the missing key is cached", func() bool {
				return c.Cache().GetHit(ctx, missing) != nil
			})
			require.ErrorIs(t, h.Get(ctx, missing).Err(), redis.Nil)
			require.NoError(t, srv.Client(t).Set(ctx, missing, "now", 0).Err())
			redistest.Eventually(t, 2*time.Second, "another client's write invalidates", func() bool {
				return h.Get(ctx, missing).Val() == "now"
			})
		})
	}
}
