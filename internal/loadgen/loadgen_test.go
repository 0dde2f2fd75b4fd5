package loadgen

import (
	"context"
	"errors"
	"math/rand/v2"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 66, 127, 128, 1000, 1 << 20, 1<<40 + 12345, 1 << 62} {
		i := bucket(v)
		require.Greater(t, i, prev, "buckets grow with values")
		require.Less(t, i, numBuckets)
		require.GreaterOrEqual(t, upper(i), v, "value %d within its bucket", v)
		if i > 0 {
			require.Less(t, upper(i-1), v, "value %d above the previous bucket", v)
		}
		if v >= subCount {
			require.LessOrEqual(t, float64(upper(i)-v)/float64(v), 1.0/half)
		}
		prev = i
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h, a, b Histogram
	require.Zero(t, h.Quantile(0.5))
	rng := rand.New(rand.NewPCG(1, 2))
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(rng.ExpFloat64() * float64(time.Millisecond))
		h.Record(vals[i])
		if i%2 == 0 {
			a.Record(vals[i])
		} else {
			b.Record(vals[i])
		}
	}
	a.Merge(&b)
	require.Equal(t, h, a, "merging gives what recording in one histogram gives")
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	require.Equal(t, vals[len(vals)-1], h.Max())
	require.Equal(t, vals[0], h.Min())
	last := time.Duration(0)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		got := h.Quantile(q)
		exact := vals[int(q*float64(len(vals)))-1]
		require.InEpsilon(t, float64(exact), float64(got), 0.04, "q=%v", q)
		require.GreaterOrEqual(t, got, last)
		last = got
	}
	require.Equal(t, h.Max(), h.Quantile(1))
}

// fakeWork is a workload that does not talk to Redis.
type fakeWork struct {
	ops  atomic.Int64
	each func(n int64) Outcome
}

func (f *fakeWork) Worker(int) OpFunc {
	return func(ctx context.Context, _ redis.UniversalClient) Outcome {
		out := f.each(f.ops.Add(1))
		if out.Err == errBlock {
			<-ctx.Done()
			out.Err = ctx.Err()
		}
		return out
	}
}

var errBlock = errors.New("block until interrupted")

func TestRunTalliesOutcomes(t *testing.T) {
	stale := &ClassError{Class: "stale_read", Err: errors.New("read an old value")}
	w := &fakeWork{each: func(n int64) Outcome {
		switch n % 4 {
		case 0:
			return Outcome{Kind: Write}
		case 1:
			return Outcome{Kind: Read, Hit: true}
		case 2:
			return Outcome{Kind: Read}
		default:
			return Outcome{Kind: Read, Err: stale}
		}
	}}
	var progress atomic.Int64
	rep := Run(context.Background(), nil, Options{
		Duration: 300 * time.Millisecond, Concurrency: 3, Workload: w,
		ProgressInterval: 50 * time.Millisecond,
		Progress:         func(Progress) { progress.Add(1) },
	})
	require.False(t, rep.Interrupted)
	require.GreaterOrEqual(t, rep.Elapsed, 300*time.Millisecond)
	require.Equal(t, uint64(w.ops.Load()), rep.Ops, "every operation is counted once")
	require.Equal(t, rep.Ops, rep.Reads+rep.Writes)
	require.Equal(t, rep.Reads, rep.Hits+rep.Misses+rep.Failures)
	require.Positive(t, rep.Failures)
	require.Equal(t, map[string]uint64{"stale_read": rep.Failures}, rep.FailuresByClass)
	require.Equal(t, "read an old value", rep.Errors["stale_read"])
	require.Equal(t, rep.Ops, rep.Histogram.Count())
	require.Positive(t, progress.Load())
}

func TestRunStopsOnInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &fakeWork{each: func(n int64) Outcome {
		if n == 100 {
			cancel()
		}
		if n >= 100 {
			return Outcome{Kind: Read, Err: errBlock}
		}
		return Outcome{Kind: Write}
	}}
	rep := Run(ctx, nil, Options{Concurrency: 4, Workload: w}) // no duration: until ctx
	require.True(t, rep.Interrupted)
	require.Zero(t, rep.Failures, "operations cut short are not failures")
	require.Equal(t, uint64(99), rep.Ops)
	require.Positive(t, rep.Cut)
}

func TestRunMixAgainstServer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	client := srv.Client(t)
	rt := runtime.New(runtime.Options{})
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	rt.Events().Publish(runtime.Event{Kind: runtime.RetryAttempted}) // before the run: not counted
	rep := Run(context.Background(), client, Options{
		Duration: 200 * time.Millisecond, Concurrency: 2, Events: rt.Events(),
		Workload: Mix{Keys: 10, Reads: 1, Writes: 1, KeyPrefix: "t:", TTL: time.Minute, ValueSize: 7},
	})
	require.Positive(t, rep.Ops)
	require.Zero(t, rep.Failures, rep.Errors)
	require.Zero(t, rep.Retries.Attempted)
	keys, err := client.Keys(context.Background(), "*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	for _, k := range keys {
		require.Regexp(t, `^t:\d$`, k)
		v, err := client.Get(context.Background(), k).Result()
		require.NoError(t, err)
		require.Len(t, v, 7)
		ttl, err := client.TTL(context.Background(), k).Result()
		require.NoError(t, err)
		require.Positive(t, ttl)
	}
}
