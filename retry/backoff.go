package retry

import (
	"math"
	"time"

	"github.com/redisfactory/redisfactory/schema"
)

// Strategy computes the waits of one backoff strategy. It is built once per
// profile with [NewStrategy] and is immutable, so one Strategy is shared by
// all the commands of a client.
//
// A Strategy keeps no per-command state: the only state a strategy needs
// (decorrelated_jitter's previous wait) is passed to [Strategy.Delay] by the
// caller, which starts every command with prev = 0.
type Strategy struct {
	kind schema.BackoffStrategy
	base time.Duration
	cap  time.Duration
}

// NewStrategy returns the Strategy of b. Negative durations count as 0. An
// unknown or empty strategy name waits nothing, like "none" (profiles are
// validated before they reach this package, so that does not happen in
// practice).
func NewStrategy(b schema.Backoff) Strategy {
	return Strategy{kind: b.Strategy, base: max(b.Base, 0), cap: max(b.Cap, 0)}
}

// Kind returns the name of the strategy.
func (s Strategy) Kind() schema.BackoffStrategy { return s.kind }

// Delay returns the wait before the retry that follows failure number
// failure (1 for the first failed try). prev is the wait Delay returned for
// the previous failure of the same command (0 for the first); only
// decorrelated_jitter uses it. rnd is a uniform random number in [0, 1); the
// deterministic strategies ignore it.
//
// The formulas are redis-py's (backoff.py), with exp = min(cap, base·2^failure)
// computed without overflow (it saturates at cap for any failure):
//
//	none                 0
//	constant             base
//	exponential          exp
//	exponential_jitter   min(cap, rnd·base·2^failure)
//	full_jitter          rnd·exp
//	equal_jitter         exp/2 + rnd·exp/2
//	decorrelated_jitter  min(cap, base + rnd·(max(base, 3·prev) − base))
//
// The first decorrelated_jitter wait of a command is therefore exactly base.
// Delay is a pure function and safe for concurrent use.
func (s Strategy) Delay(failure int, prev time.Duration, rnd float64) time.Duration {
	switch s.kind {
	case schema.BackoffConstant:
		return s.base
	case schema.BackoffExponential:
		return s.exp(failure)
	case schema.BackoffExponentialJitter:
		// The jitter is applied before the cap, as in redis-py.
		return min(s.cap, scale(s.expUncapped(failure), rnd))
	case schema.BackoffFullJitter:
		return scale(s.exp(failure), rnd)
	case schema.BackoffEqualJitter:
		t := s.exp(failure) / 2
		return t + scale(t, rnd)
	case schema.BackoffDecorrelatedJitter:
		m := s.base
		if prev > 0 {
			if prev > math.MaxInt64/3 {
				m = math.MaxInt64
			} else {
				m = max(s.base, 3*prev)
			}
		}
		return min(s.cap, s.base+scale(m-s.base, rnd))
	}
	return 0
}

// expUncapped returns base·2^failure, saturated at the largest Duration.
func (s Strategy) expUncapped(failure int) time.Duration {
	if s.base <= 0 {
		return 0
	}
	if failure <= 0 {
		return s.base
	}
	if failure >= 63 || s.base > math.MaxInt64>>failure {
		return math.MaxInt64
	}
	return s.base << failure
}

// exp returns min(cap, base·2^failure).
func (s Strategy) exp(failure int) time.Duration { return min(s.cap, s.expUncapped(failure)) }

// scale returns d·r for r in [0, 1), never more than d nor less than 0.
func scale(d time.Duration, r float64) time.Duration {
	if d <= 0 || r <= 0 {
		return 0
	}
	if r >= 1 {
		return d
	}
	v := time.Duration(float64(d) * r)
	// float64(MaxInt64)·r can round up past d; clamp.
	if v > d || v < 0 {
		return d
	}
	return v
}
