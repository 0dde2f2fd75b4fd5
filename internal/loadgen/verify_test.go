package loadgen_test

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/loadgen"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// staleHook answers every GET with a fixed old value, as a broken cache
// would.
type staleHook struct{}

func (staleHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (staleHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if g, ok := cmd.(*redis.StringCmd); ok && cmd.Name() == "get" {
			g.SetVal("stale")
			return nil
		}
		return next(ctx, cmd)
	}
}
func (staleHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func TestVerifyDetectsStaleReads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	ctx := context.Background()

	good := srv.Client(t)
	op := loadgen.Verify{Keys: 3, Reads: 1, Writes: 1, Seed: 1}.Worker(0)
	for range 200 {
		out := op(ctx, good)
		require.NoError(t, out.Err, "a correct client never reads stale")
	}

	bad := redis.NewClient(srv.RedisOptions())
	defer bad.Close()
	bad.AddHook(staleHook{})
	op = loadgen.Verify{Keys: 3, Reads: 1, Writes: 1, Seed: 1}.Worker(1)
	var stale int
	for range 200 {
		if out := op(ctx, bad); out.Err != nil {
			var ce *loadgen.ClassError
			require.True(t, errors.As(out.Err, &ce))
			assert.Equal(t, loadgen.StaleClass, ce.Class)
			stale++
		}
	}
	assert.Positive(t, stale, "a client that serves old values is caught")
}
