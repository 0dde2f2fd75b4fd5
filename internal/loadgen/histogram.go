package loadgen

import (
	"math/bits"
	"time"
)

// Histogram records durations in log-linear buckets, in the manner of HDR
// histograms: values below 2^subBits ns get one bucket each, and every
// further power of two is split into 2^(subBits-1) equal buckets, so a
// recorded value is known to within 1/32 (about 3%) of itself whatever its
// magnitude. Its size is fixed (about 15 KiB) however many values are
// recorded. The exact minimum, maximum and sum are kept too.
//
// A Histogram is not safe for concurrent use; give each goroutine its own
// and Merge them.
type Histogram struct {
	counts   [numBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	subBits    = 6
	subCount   = 1 << subBits
	half       = subCount / 2
	numBuckets = subCount + (64-subBits)*half
)

// bucket returns the index of the bucket holding v.
func bucket(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	m := v >> shift                  // in [half, subCount)
	return subCount + (shift-1)*half + int(m-half)
}

// upper returns the largest value that falls into bucket i.
func upper(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	i -= subCount
	shift := i/half + 1
	m := uint64(i%half + half)
	return (m+1)<<shift - 1
}

// Record adds one duration; negative ones count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucket(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds the values recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of recorded values.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest recorded value (exact).
func (h *Histogram) Max() time.Duration { return h.max }

// Min returns the smallest recorded value (exact).
func (h *Histogram) Min() time.Duration { return h.min }

// Mean returns the mean of the recorded values (exact).
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the value below or at which a share q (0..1) of the
// recorded values lie: the upper bound of the bucket holding the value of
// that rank, never more than Max and never less than Min. Quantiles are
// therefore monotonic in q, and Quantile(1) is Max.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(q*float64(h.n) + 0.999999999) // ceil, 1-based
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := time.Duration(upper(i))
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}
