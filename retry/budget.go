package retry

import (
	"math"
	"sync/atomic"

	"github.com/redisfactory/redisfactory/schema"
)

// milli is the fixed-point scale of a Budget: tokens are counted in
// thousandths, the precision gRPC's retry throttling specifies for
// token_ratio.
const milli = 1000

// Budget is a retry budget with the arithmetic of gRPC's retry throttling
// (the retryThrottling block of a gRPC service config):
//
//   - the bucket starts full, with MaxTokens tokens;
//   - every failed try whose error the policy would retry takes one token
//     (the bucket never goes below 0), whether or not the retry then happens;
//   - every successful command gives back TokenRatio tokens (the bucket
//     never goes above MaxTokens);
//   - a retry is allowed only while more than MaxTokens/2 tokens are left
//     after the failure's token was taken.
//
// Tokens are kept in thousandths in one atomic integer, so a Budget is safe
// for concurrent use, takes no lock and never allocates. One Budget is shared
// by all the commands of one client. The methods of a nil *Budget allow
// every retry.
type Budget struct {
	tokens atomic.Int64 // in thousandths
	max    int64        // MaxTokens in thousandths
	ratio  int64        // TokenRatio in thousandths
}

// NewBudget returns a full Budget for b, or nil when b is not enabled
// (MaxTokens is 0).
func NewBudget(b schema.Budget) *Budget {
	if !b.Enabled() {
		return nil
	}
	bu := &Budget{max: toMilli(b.MaxTokens), ratio: toMilli(b.TokenRatio)}
	bu.tokens.Store(bu.max)
	return bu
}

func toMilli(f float64) int64 {
	switch {
	case !(f > 0): // also NaN
		return 0
	case f >= math.MaxInt64/(4*milli):
		return math.MaxInt64 / (4 * milli)
	}
	return int64(math.Round(f * milli))
}

// Success records a successful command: it gives back TokenRatio tokens.
// When the bucket is already full it costs one atomic load.
func (b *Budget) Success() {
	if b == nil || b.ratio == 0 {
		return
	}
	for {
		t := b.tokens.Load()
		if t >= b.max {
			return
		}
		if b.tokens.CompareAndSwap(t, min(b.max, t+b.ratio)) {
			return
		}
	}
}

// Failure records a failed try whose error the policy would retry: it takes
// one token and reports whether a retry is still allowed, that is whether
// more than MaxTokens/2 tokens are left.
func (b *Budget) Failure() (allowed bool) {
	if b == nil {
		return true
	}
	for {
		t := b.tokens.Load()
		n := max(0, t-milli)
		if b.tokens.CompareAndSwap(t, n) {
			return 2*n > b.max
		}
	}
}

// Allowed reports whether a retry would be allowed now, without taking a
// token.
func (b *Budget) Allowed() bool {
	if b == nil {
		return true
	}
	return 2*b.tokens.Load() > b.max
}

// Tokens returns the tokens left (0 when b is nil).
func (b *Budget) Tokens() float64 {
	if b == nil {
		return 0
	}
	return float64(b.tokens.Load()) / milli
}

// MaxTokens returns the size of the bucket (0 when b is nil).
func (b *Budget) MaxTokens() float64 {
	if b == nil {
		return 0
	}
	return float64(b.max) / milli
}
