package retry_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

const (
	ms   = time.Millisecond
	base = 10 * ms
	cap_ = time.Second
)

func strategy(kind schema.BackoffStrategy) retry.Strategy {
	return retry.NewStrategy(schema.Backoff{Strategy: kind, Base: base, Cap: cap_})
}

// expOf is min(cap, base·2^f) computed in floating point.
func expOf(f int) time.Duration {
	v := float64(base) * math.Pow(2, float64(f))
	if v > float64(cap_) {
		return cap_
	}
	return time.Duration(v)
}

func TestDelayDeterministic(t *testing.T) {
	tests := []struct {
		kind schema.BackoffStrategy
		want []time.Duration // failures 1, 2, …
	}{
		{schema.BackoffNone, []time.Duration{0, 0, 0}},
		{schema.BackoffConstant, []time.Duration{base, base, base}},
		{schema.BackoffExponential, []time.Duration{20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, cap_, cap_}},
		{"", []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			s := strategy(tt.kind)
			for i, want := range tt.want {
				for _, r := range []float64{0, 0.5, 0.999} {
					assert.Equal(t, want, s.Delay(i+1, 0, r), "failure %d rnd %v", i+1, r)
				}
			}
		})
	}
}

func TestDelayJitterExact(t *testing.T) {
	tests := []struct {
		kind    schema.BackoffStrategy
		failure int
		prev    time.Duration
		rnd     float64
		want    time.Duration
	}{
		{schema.BackoffExponentialJitter, 1, 0, 0.5, 10 * ms},
		{schema.BackoffExponentialJitter, 3, 0, 0.25, 20 * ms},
		{schema.BackoffExponentialJitter, 10, 0, 0.5, cap_},    // 10.24s·0.5 → cap
		{schema.BackoffExponentialJitter, 9, 0, 0.1, 512 * ms}, // jitter before the cap: 5.12s·0.1
		{schema.BackoffFullJitter, 2, 0, 0.5, 20 * ms},
		{schema.BackoffFullJitter, 10, 0, 0.5, cap_ / 2}, // cap before the jitter
		{schema.BackoffEqualJitter, 2, 0, 0, 20 * ms},
		{schema.BackoffEqualJitter, 2, 0, 0.5, 30 * ms},
		{schema.BackoffEqualJitter, 10, 0, 0.5, 750 * ms},
		{schema.BackoffDecorrelatedJitter, 1, 0, 0.7, base}, // first value after reset
		{schema.BackoffDecorrelatedJitter, 2, base, 0.5, 20 * ms},
		{schema.BackoffDecorrelatedJitter, 2, 100 * ms, 0.5, 155 * ms},
		{schema.BackoffDecorrelatedJitter, 9, 900 * ms, 0.5, cap_},
	}
	for _, tt := range tests {
		got := strategy(tt.kind).Delay(tt.failure, tt.prev, tt.rnd)
		assert.Equal(t, tt.want, got, "%s f=%d prev=%v rnd=%v", tt.kind, tt.failure, tt.prev, tt.rnd)
	}
}

// TestDelayBounds checks every strategy's documented bounds for failures
// 1..64 (and beyond: no overflow), for extreme and random draws.
func TestDelayBounds(t *testing.T) {
	rnds := []float64{0, 1e-12, 0.5, math.Nextafter(1, 0)}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		rnds = append(rnds, rng.Float64())
	}
	huge := retry.NewStrategy(schema.Backoff{Strategy: schema.BackoffExponential, Base: time.Hour, Cap: math.MaxInt64})
	for f := 1; f <= 200; f++ {
		require.Equal(t, time.Duration(math.MaxInt64), huge.Delay(f+40, 0, 0.5), "saturates")
	}
	for _, kind := range schema.BackoffStrategies {
		s := strategy(kind)
		t.Run(string(kind), func(t *testing.T) {
			prev := time.Duration(0)
			for f := 1; f <= 64; f++ {
				e := expOf(f)
				for _, r := range rnds {
					d := s.Delay(f, prev, r)
					require.GreaterOrEqual(t, d, time.Duration(0))
					require.LessOrEqual(t, d, cap_, "f=%d", f)
					switch kind {
					case schema.BackoffNone:
						require.Zero(t, d)
					case schema.BackoffConstant:
						require.Equal(t, base, d)
					case schema.BackoffExponential:
						require.Equal(t, e, d)
					case schema.BackoffExponentialJitter, schema.BackoffFullJitter:
						require.LessOrEqual(t, d, e)
					case schema.BackoffEqualJitter:
						require.GreaterOrEqual(t, d, e/2)
						require.LessOrEqual(t, d, e)
					case schema.BackoffDecorrelatedJitter:
						require.GreaterOrEqual(t, d, base)
						require.LessOrEqual(t, d, max(base, 3*prev))
					}
				}
				prev = s.Delay(f, prev, rnds[f%len(rnds)])
			}
			// Far beyond 64 and with a huge prev: no overflow.
			for _, f := range []int{65, 100, 1 << 20, math.MaxInt} {
				d := s.Delay(f, math.MaxInt64/2, 0.999)
				require.GreaterOrEqual(t, d, time.Duration(0))
				require.LessOrEqual(t, d, cap_)
			}
		})
	}
}

// TestDelayDistribution checks the mean of 10k draws of each jittered
// strategy against its expected value.
func TestDelayDistribution(t *testing.T) {
	const n = 10000
	rng := rand.New(rand.NewPCG(7, 11))
	mean := func(s retry.Strategy, f int) float64 {
		var sum float64
		for range n {
			sum += float64(s.Delay(f, 0, rng.Float64()))
		}
		return sum / n
	}
	tests := []struct {
		kind schema.BackoffStrategy
		f    int
		want float64
	}{
		{schema.BackoffExponentialJitter, 3, float64(80*ms) / 2},
		{schema.BackoffFullJitter, 3, float64(80*ms) / 2},
		{schema.BackoffFullJitter, 20, float64(cap_) / 2},
		{schema.BackoffEqualJitter, 3, float64(80*ms) * 0.75},
		{schema.BackoffEqualJitter, 20, float64(cap_) * 0.75},
	}
	for _, tt := range tests {
		got := mean(strategy(tt.kind), tt.f)
		assert.InEpsilon(t, tt.want, got, 0.03, "%s f=%d", tt.kind, tt.f)
	}
	// exponential_jitter beyond the cap: P(R·5.12s > 1s) = 1−1/5.12, so the
	// mean is 1s·(1−0.5/5.12).
	got := mean(strategy(schema.BackoffExponentialJitter), 9)
	assert.InEpsilon(t, float64(cap_)*(1-0.5/5.12), got, 0.03)
	// decorrelated_jitter from prev=100ms: U(10ms, 300ms), mean 155ms.
	s := strategy(schema.BackoffDecorrelatedJitter)
	var sum float64
	for range n {
		sum += float64(s.Delay(2, 100*ms, rng.Float64()))
	}
	assert.InEpsilon(t, float64(155*ms), sum/n, 0.03)
}
