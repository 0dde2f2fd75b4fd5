package retry_test

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

const loadingReply = "-LOADING Redis is loading the dataset in memory\r\n"

// These tests run a real go-redis client over a socket against the fake
// server of server_test.go, with go-redis's own retries off.

func TestHookLoading(t *testing.T) {
	// The first two INCRs are refused with LOADING.
	script := func(cmd []string, n int) action {
		if cmd[0] == "incr" && n <= 2 {
			return action{reply: loadingReply}
		}
		return action{}
	}
	t.Run("listed: retried, then succeeds", func(t *testing.T) {
		srv := startFake(t, script)
		var rec recorder
		pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.AlsoOn = []errclass.Class{errclass.BusyLoading} }), rec.options())
		rdb := newClient(t, srv.Addr(), pol)
		v, err := rdb.Incr(testCtx(t), "n").Result()
		require.NoError(t, err)
		assert.Equal(t, int64(1), v, "refused twice, ran once")
		assert.Equal(t, 3, srv.Count("incr"))
		assert.Equal(t, []retry.Kind{retry.Attempted, retry.Attempted}, rec.kinds())
		assert.Equal(t, errclass.BusyLoading, rec.events[0].Class)
	})
	t.Run("not listed: returned", func(t *testing.T) {
		srv := startFake(t, script)
		var rec recorder
		pol := retry.NewPolicy(profile(nil), rec.options())
		rdb := newClient(t, srv.Addr(), pol)
		err := rdb.Incr(testCtx(t), "n").Err()
		require.Error(t, err)
		assert.True(t, redis.IsLoadingError(err))
		assert.Equal(t, 1, srv.Count("incr"))
		assert.Empty(t, rec.events)
	})
}

func TestHookIncrReadTimeout(t *testing.T) {
	// The first INCR runs, but its reply comes after the read timeout.
	script := func(cmd []string, n int) action {
		if cmd[0] == "incr" && n == 1 {
			return action{delay: 500 * time.Millisecond}
		}
		return action{}
	}
	t.Run("default: sent once", func(t *testing.T) {
		srv := startFake(t, script)
		var rec recorder
		rdb := newClient(t, srv.Addr(), retry.NewPolicy(profile(nil), rec.options()))
		err := rdb.Incr(testCtx(t), "n").Err()
		require.Error(t, err)
		assert.Equal(t, errclass.Timeout, errclass.Of(err))
		assert.Equal(t, 1, srv.Count("incr"), "INCR must not be sent twice")
		assert.Empty(t, rec.events)
	})
	t.Run("non_idempotent: sent again", func(t *testing.T) {
		srv := startFake(t, script)
		var rec recorder
		rdb := newClient(t, srv.Addr(), retry.NewPolicy(profile(func(r *schema.Retry) { r.NonIdempotent = true }), rec.options()))
		v, err := rdb.Incr(testCtx(t), "n").Result()
		require.NoError(t, err)
		assert.Equal(t, int64(2), v, "the first try ran too")
		assert.Equal(t, 2, srv.Count("incr"))
		assert.Equal(t, []retry.Kind{retry.Attempted}, rec.kinds())
		assert.Equal(t, errclass.Timeout, rec.events[0].Class)
	})
	t.Run("a read is retried by default", func(t *testing.T) {
		srv := startFake(t, func(cmd []string, n int) action {
			if cmd[0] == "get" && n == 1 {
				return action{delay: 500 * time.Millisecond}
			}
			return action{}
		})
		rdb := newClient(t, srv.Addr(), retry.NewPolicy(profile(nil), retry.Options{}))
		err := rdb.Get(testCtx(t), "k").Err()
		assert.True(t, err == redis.Nil, "got %v", err)
		assert.Equal(t, 2, srv.Count("get"))
	})
}

func TestHookDialFailure(t *testing.T) {
	srv := startFake(t, nil)
	var dials atomic.Int32
	var rec recorder
	pol := retry.NewPolicy(profile(nil), rec.options())
	rdb := newClient(t, srv.Addr(), pol, func(o *redis.Options) {
		o.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if dials.Add(1) == 1 {
				return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	})
	v, err := rdb.Incr(testCtx(t), "n").Result()
	require.NoError(t, err)
	assert.Equal(t, int64(1), v)
	assert.Equal(t, 1, srv.Count("incr"))
	require.Equal(t, []retry.Kind{retry.Attempted}, rec.kinds())
	assert.Equal(t, errclass.Connection, rec.events[0].Class)
	assert.True(t, errclass.NotSent(rec.events[0].Err))
}

// TestHookWaits measures (with an injected Sleep) the waits between tries
// of a command that keeps failing, for each strategy.
func TestHookWaits(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		strategy schema.BackoffStrategy
		want     []time.Duration // rnd is 0.5
	}{
		{schema.BackoffNone, []time.Duration{0, 0, 0, 0}},
		{schema.BackoffConstant, []time.Duration{10 * ms, 10 * ms, 10 * ms, 10 * ms}},
		{schema.BackoffExponential, []time.Duration{20 * ms, 40 * ms, 50 * ms, 50 * ms}},
		{schema.BackoffExponentialJitter, []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms}},
		{schema.BackoffFullJitter, []time.Duration{10 * ms, 20 * ms, 25 * ms, 25 * ms}},
		{schema.BackoffEqualJitter, []time.Duration{15 * ms, 30 * ms, 37500 * time.Microsecond, 37500 * time.Microsecond}},
		// 10 → U(10,30)=20 → U(10,60)=35 → U(10,105)=57.5 capped at 50
		{schema.BackoffDecorrelatedJitter, []time.Duration{10 * ms, 20 * ms, 35 * ms, 50 * ms}},
	}
	srv := startFake(t, func(cmd []string, n int) action {
		if cmd[0] == "set" {
			return action{reply: loadingReply}
		}
		return action{}
	})
	for _, tt := range tests {
		t.Run(string(tt.strategy), func(t *testing.T) {
			var rec recorder
			pol := retry.NewPolicy(profile(func(r *schema.Retry) {
				r.Retries = 4
				r.On = []errclass.Class{errclass.BusyLoading}
				r.Backoff = schema.Backoff{Strategy: tt.strategy, Base: 10 * ms, Cap: 50 * ms}
			}), rec.options())
			rdb := newClient(t, srv.Addr(), pol)
			before := srv.Count("set")
			err := rdb.Set(testCtx(t), "k", "v", 0).Err()
			assert.True(t, redis.IsLoadingError(err))
			assert.Equal(t, 5, srv.Count("set")-before)
			assert.Equal(t, tt.want, rec.sleeps)
			require.Len(t, rec.events, 5)
			for i, e := range rec.events[:4] {
				assert.Equal(t, retry.Attempted, e.Kind)
				assert.Equal(t, i+2, e.Attempt, "the upcoming try: the first retry is try 2")
				assert.Equal(t, tt.want[i], e.Delay)
				assert.Equal(t, "set", e.Command)
			}
			assert.Equal(t, retry.Exhausted, rec.events[4].Kind)
			assert.Equal(t, 5, rec.events[4].Attempt, "five tries made")
		})
	}
}

func TestHookBudget(t *testing.T) {
	srv := startFake(t, func(cmd []string, n int) action {
		if cmd[0] == "get" && cmd[1] == "bad" {
			return action{reply: loadingReply}
		}
		return action{}
	})
	var rec recorder
	pol := retry.NewPolicy(profile(func(r *schema.Retry) {
		r.Retries = 10
		r.AlsoOn = []errclass.Class{errclass.BusyLoading}
		r.Budget = schema.Budget{MaxTokens: 4, TokenRatio: 0.5}
	}), rec.options())
	rdb := newClient(t, srv.Addr(), pol)
	ctx := testCtx(t)
	err := rdb.Get(ctx, "bad").Err()
	assert.True(t, redis.IsLoadingError(err), "the original error: %v", err)
	assert.Equal(t, 2, srv.Count("get"), "4 tokens: one retry, then 2 left is not more than half")
	assert.Equal(t, []retry.Kind{retry.Attempted, retry.Throttled}, rec.kinds())
	assert.NotEmpty(t, rec.events[1].Reason)
	assert.Equal(t, 2.0, pol.Budget().Tokens())

	// Retries stay off until successes refill the bucket above half.
	err = rdb.Get(ctx, "bad").Err()
	assert.True(t, redis.IsLoadingError(err))
	assert.Equal(t, 3, srv.Count("get"))
	for range 6 {
		require.True(t, rdb.Get(ctx, "good").Err() == redis.Nil)
	}
	assert.Equal(t, 4.0, pol.Budget().Tokens(), "1 + 6·0.5, capped at 4")
	rec.events = nil
	_ = rdb.Get(ctx, "bad").Err()
	assert.Equal(t, []retry.Kind{retry.Attempted, retry.Throttled}, rec.kinds())
}

func TestHookPipeline(t *testing.T) {
	// The first pipeline is refused with LOADING; the next one succeeds.
	srv := startFake(t, func(cmd []string, n int) action {
		if (cmd[0] == "incr" || cmd[0] == "set") && n == 1 {
			return action{reply: loadingReply}
		}
		return action{}
	})
	var rec recorder
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.AlsoOn = []errclass.Class{errclass.BusyLoading} }), rec.options())
	rdb := newClient(t, srv.Addr(), pol)
	pipe := rdb.Pipeline()
	set := pipe.Set(testCtx(t), "k", "v", 0)
	incr := pipe.Incr(testCtx(t), "n")
	get := pipe.Get(testCtx(t), "missing")
	_, err := pipe.Exec(testCtx(t))
	assert.True(t, err == redis.Nil, "got %v", err)
	assert.NoError(t, set.Err())
	assert.Equal(t, int64(1), incr.Val())
	assert.True(t, get.Err() == redis.Nil)
	assert.Equal(t, 2, srv.Count("incr"))
	assert.Equal(t, 2, srv.Count("set"))
	require.Equal(t, []retry.Kind{retry.Attempted}, rec.kinds())
	assert.Equal(t, "pipeline", rec.events[0].Command)

	t.Run("INCR hit by a timeout is not repeated", func(t *testing.T) {
		srv := startFake(t, func(cmd []string, n int) action {
			if cmd[0] == "incr" && n == 1 {
				return action{delay: 500 * time.Millisecond}
			}
			return action{}
		})
		rdb := newClient(t, srv.Addr(), retry.NewPolicy(profile(nil), retry.Options{}))
		pipe := rdb.Pipeline()
		pipe.Get(testCtx(t), "k")
		pipe.Incr(testCtx(t), "n")
		_, err := pipe.Exec(testCtx(t))
		assert.Equal(t, errclass.Timeout, errclass.Of(err))
		assert.Equal(t, 1, srv.Count("incr"))
	})
}
