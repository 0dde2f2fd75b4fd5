package cache

import (
	"context"
	"strconv"
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

// indexed counts the index entries of every shard.
func (c *Cache) indexed() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		for _, l := range s.names {
			n += len(l)
		}
		s.mu.RUnlock()
	}
	return n
}

// Entries evicted, replaced or invalidated leave no index entries behind
// in other shards: a multi-key entry of a key never written must not keep
// its value alive outside the bounds.
func TestRemovedEntriesLeaveNoIndex(t *testing.T) {
	ctx := context.Background()
	c := New(Config{Commands: []string{"get", "mget"}, MaxEntries: 1})
	t.Cleanup(func() { _ = c.Close() })
	h := c.Hook().ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		answer(cmd)
		return nil
	})
	// Keys a and b in different shards, so MGET a b is indexed in two.
	a, b := "a", "b"
	for i := 0; c.shardOf(a) == c.shardOf(b); i++ {
		b = "b" + strconv.Itoa(i)
	}
	for range 1000 {
		require.NoError(t, h(ctx, redis.NewSliceCmd(ctx, "mget", a, b)))
		require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "get", "c"))) // evicts the MGET entry
	}
	assert.EqualValues(t, 1, c.Stats().Entries)
	assert.LessOrEqual(t, c.indexed(), 3, "index entries of evicted entries stayed")

	require.NoError(t, h(ctx, redis.NewSliceCmd(ctx, "mget", a, b))) // evicts GET c
	c.Invalidate(a)
	assert.Zero(t, c.indexed(), "invalidating the home key left the other key's index entry")
	require.NoError(t, h(ctx, redis.NewSliceCmd(ctx, "mget", a, b)))
	c.Invalidate(b)
	assert.Zero(t, c.indexed(), "invalidating the other key left the home key's index entry")
	assert.Zero(t, c.Stats().Entries)
}

// A store never evicts the entry it stored while another can go, even
// when every other entry of its shard was hit since (second chances).
func TestStoreKeepsItsEntry(t *testing.T) {
	ctx := context.Background()
	const max = 64 // evictOne gives at most 64 second chances
	c := New(Config{Commands: []string{"get"}, MaxEntries: max})
	t.Cleanup(func() { _ = c.Close() })
	h := c.Hook().ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		answer(cmd)
		return nil
	})
	// max+1 keys of one shard, each stored and then hit.
	var keys []string
	for i := 0; len(keys) <= max; i++ {
		if k := "k" + strconv.Itoa(i); c.shardOf(k) == &c.shards[0] {
			keys = append(keys, k)
		}
	}
	for _, k := range keys[:max] {
		require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "get", k)))
		require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "get", k)))
	}
	hits := c.Stats().Hits
	require.EqualValues(t, max, hits)
	last := keys[max]
	require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "get", last)))
	require.NoError(t, h(ctx, redis.NewStringCmd(ctx, "get", last)))
	assert.Equal(t, hits+1, c.Stats().Hits, "the entry just stored was evicted")
	assert.EqualValues(t, max, c.Stats().Entries)
}

// The allow list's table keeps free slots (so that a lookup of a name it
// lacks ends) and short probe chains, with every known command allowed.
func TestAllowListHoldsEverySpec(t *testing.T) {
	require.Less(t, len(specs), allowSlots/2)
	var l allowList
	for name, spec := range specs {
		l.add(name, spec)
	}
	for name, spec := range specs {
		assert.Same(t, spec, l.get(name), name)
	}
	for _, name := range []string{"set", "del", "", "getx", "hgetal", "json.set"} {
		assert.Nil(t, l.get(name), name)
	}
}
