package cache

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A hit allocates nothing: what a cached GET costs beyond a round trip's
// absence is go-redis's own command object, built by the caller.
func TestHitAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  Config
		cmd  redis.Cmder
	}{
		{"GET", Config{Commands: []string{"get"}, MaxEntries: 10}, redis.NewStringCmd(ctx, "get", "k")},
		{"GET with a TTL", Config{Commands: []string{"get"}, MaxEntries: 10, TTL: time.Minute}, redis.NewStringCmd(ctx, "get", "k")},
		{"GET with a short TTL", Config{Commands: []string{"get"}, MaxEntries: 10, TTL: 500 * time.Millisecond}, redis.NewStringCmd(ctx, "get", "k")},
		{"HGET", Config{Commands: []string{"hget"}, MaxEntries: 10}, redis.NewStringCmd(ctx, "hget", "k", "f")},
		{"GETRANGE", Config{Commands: []string{"getrange"}, MaxEntries: 10}, redis.NewStringCmd(ctx, "getrange", "k", 0, -1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := hitHook(t, tc.cfg, tc.cmd, answer)
			allocs := testing.AllocsPerRun(1000, func() {
				if err := h(ctx, tc.cmd); err != nil {
					t.Fatal(err)
				}
			})
			assert.Zero(t, allocs)
		})
	}
}

// Keys of different argument lists never collide: each is its own entry.
func TestKeysOfArgumentLists(t *testing.T) {
	ctx := context.Background()
	c := New(Config{Commands: []string{"getrange", "get"}, MaxEntries: 100})
	t.Cleanup(func() { _ = c.Close() })
	calls := 0
	h := c.Hook().ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		calls++
		cmd.(*redis.StringCmd).SetVal(cmd.String())
		return nil
	})
	cmds := [][]any{
		{"get", "a"},
		{"get", "a\x00"},
		{"getrange", "a", 0, 1},
		{"getrange", "a", 0, -1},
		{"getrange", "a", "0", "1"}, // a string is not an int
		{"getrange", "a", 1, 0},
		{"getrange", "a1", 0, 1},
		{"getrange", "a", int64(300), 1},
	}
	for round := range 2 {
		for _, args := range cmds {
			cmd := redis.NewStringCmd(ctx, args...)
			require.NoError(t, h(ctx, cmd))
			assert.Equal(t, redis.NewStringCmd(ctx, args...).String(), cmd.Val(), "round %d: %v", round, args)
		}
	}
	// int and int64 are sent alike, so 300 as either is one entry.
	require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "getrange", "a", 300, 1)))
	assert.Equal(t, len(cmds), calls, "one round trip per distinct argument list")
	assert.EqualValues(t, len(cmds), c.Stats().Entries)
}

// With a TTL long enough for the coarse clock, an entry still expires
// within its TTL, and not much before it.
func TestCoarseClockTTL(t *testing.T) {
	ctx := context.Background()
	const ttl = coarseMinTTL
	cmd := redis.NewStringCmd(ctx, "get", "k")
	c := New(Config{Commands: []string{"get"}, MaxEntries: 10, TTL: ttl})
	t.Cleanup(func() { _ = c.Close() })
	require.True(t, c.coarseTTL)
	fetches := 0
	h := c.Hook().ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		fetches++
		cmd.(*redis.StringCmd).SetVal("v")
		return nil
	})
	stored := time.Now()
	require.NoError(t, h(ctx, cmd))
	for fetches == 1 {
		require.Less(t, time.Since(stored), ttl, "entry outlived its TTL")
		require.NoError(t, h(ctx, cmd))
		time.Sleep(time.Millisecond) // polling granularity, not a synchronisation
	}
	age := time.Since(stored)
	t.Logf("expired after %v (TTL %v, tick %v)", age, ttl, coarseTick)
	assert.Greater(t, age, ttl-3*coarseTick)
}
