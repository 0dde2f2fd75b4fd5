package profiles_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

// noLimits lifts every limit, for the scaling measurements.
var noLimits = profiles.Limits{MaxFileSize: -1, MaxTotalSize: -1, MaxFiles: -1, MaxNodes: -1, MaxProfiles: -1}

// manyProfiles is a configuration of n profiles with a defaults block,
// extends and varied keys (the shape of BenchmarkLoad1000Profiles).
func manyProfiles(n int) []byte {
	var sb strings.Builder
	sb.WriteString("defaults:\n  timeouts:\n    connect: 2s\n    socket: 3s\n  retry:\n    retries: 2\nprofiles:\n  base:\n    pool:\n      size: 20\n")
	for i := range n - 1 {
		fmt.Fprintf(&sb, "  p%06d:\n    extends: base\n    addr: 10.%d.%d.%d:6379\n    db: %d\n    client_name: svc-%d\n    retry:\n      also_on: [busy_loading]\n      backoff:\n        strategy: decorrelated_jitter\n        base: 5ms\n        cap: 500ms\n    health_check_interval: 3s\n", i, i/62500, i/250%250, i%250, i%16, i)
	}
	return []byte(sb.String())
}

// unknownKeys is one profile with n unknown keys, half of them holding maps.
func unknownKeys(n int) []byte {
	var sb strings.Builder
	sb.WriteString("profiles:\n  p:\n    addr: h:1\n")
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&sb, "    unknown_%06d: 1\n", i)
		} else {
			fmt.Fprintf(&sb, "    unknown_%06d: {a: 1}\n", i)
		}
	}
	return []byte(sb.String())
}

// manyFiles writes n files of one profile each into a new directory.
func manyFiles(tb testing.TB, n int) string {
	dir := tb.TempDir()
	for i := range n {
		body := fmt.Sprintf("profiles:\n  p%06d:\n    addr: 10.0.%d.%d:6379\n    db: %d\n", i, i/250%250, i%250, i%16)
		require.NoError(tb, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%06d.yaml", i)), []byte(body), 0o600))
	}
	return dir
}

// perItem times one load and returns the time per item (profile, key or
// file).
func perItem(tb testing.TB, opts profiles.Options, items int, wantOK bool) time.Duration {
	opts.Limits = noLimits
	start := time.Now()
	_, err := profiles.Load(opts)
	d := time.Since(start)
	if wantOK {
		require.NoError(tb, err)
	} else {
		require.Error(tb, err)
	}
	return d / time.Duration(items)
}

// scaling measures the per-item load time of a small and a large input in
// alternating rounds (so that machine noise hits both alike) and returns
// the ratio of their medians: 1.0 is linear, large / small is quadratic.
func scaling(tb testing.TB, rounds int, small, large func() time.Duration) float64 {
	var s, l []time.Duration
	for range rounds {
		s = append(s, small())
		l = append(l, large())
	}
	return float64(median(l)) / float64(median(s))
}

func median(ds []time.Duration) time.Duration {
	c := append([]time.Duration(nil), ds...)
	for i := range c {
		for j := i + 1; j < len(c); j++ {
			if c[j] < c[i] {
				c[i], c[j] = c[j], c[i]
			}
		}
	}
	return c[len(c)/2]
}

func bytesOpts(data []byte) profiles.Options {
	return profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", data)}}
}

// BenchmarkLoadScaling reports how the per-item load time grows from a
// small to a large input, for many profiles (1k vs 100k), many unknown keys
// in one profile (1k vs 40k) and many files in a directory (250 vs 10k).
// The ratio metric is per-item time at the large size over the small one.
func BenchmarkLoadScaling(b *testing.B) {
	small, large := manyProfiles(1000), manyProfiles(100_000)
	b.Run("profiles-1k-vs-100k", func(b *testing.B) {
		var r float64
		for b.Loop() {
			r = scaling(b, 3,
				func() time.Duration { return perItem(b, bytesOpts(small), 1000, true) },
				func() time.Duration { return perItem(b, bytesOpts(large), 100_000, true) })
		}
		b.ReportMetric(r, "ratio")
	})
	uk1, uk40 := unknownKeys(1000), unknownKeys(40_000)
	b.Run("unknown-keys-1k-vs-40k", func(b *testing.B) {
		var r float64
		for b.Loop() {
			r = scaling(b, 3,
				func() time.Duration { return perItem(b, bytesOpts(uk1), 1000, false) },
				func() time.Duration { return perItem(b, bytesOpts(uk40), 40_000, false) })
		}
		b.ReportMetric(r, "ratio")
	})
	d250, d10k := manyFiles(b, 250), manyFiles(b, 10_000)
	b.Run("files-250-vs-10k", func(b *testing.B) {
		var r float64
		for b.Loop() {
			r = scaling(b, 3,
				func() time.Duration { return perItem(b, profiles.Options{Paths: []string{d250}}, 250, true) },
				func() time.Duration { return perItem(b, profiles.Options{Paths: []string{d10k}}, 10_000, true) })
		}
		b.ReportMetric(r, "ratio")
	})
}

// TestLoadScalesLinearly guards against quadratic loading with a margin
// wide enough for a busy machine: per-item time at 20 times the size may
// not be 8 times the small one's (quadratic work would make it about 20).
func TestLoadScalesLinearly(t *testing.T) {
	if testing.Short() {
		t.Skip("measures load times")
	}
	small, large := manyProfiles(250), manyProfiles(5000)
	r := scaling(t, 3,
		func() time.Duration { return perItem(t, bytesOpts(small), 250, true) },
		func() time.Duration { return perItem(t, bytesOpts(large), 5000, true) })
	t.Logf("profiles: per-profile time at 5k / at 250 = %.2f", r)
	require.Less(t, r, 8.0, "loading profiles is not linear")

	uk1, uk20 := unknownKeys(500), unknownKeys(10_000)
	r = scaling(t, 3,
		func() time.Duration { return perItem(t, bytesOpts(uk1), 500, false) },
		func() time.Duration { return perItem(t, bytesOpts(uk20), 10_000, false) })
	t.Logf("unknown keys: per-key time at 10k / at 500 = %.2f", r)
	require.Less(t, r, 8.0, "reporting unknown keys is not linear")

	d50, d1k := manyFiles(t, 50), manyFiles(t, 1000)
	r = scaling(t, 3,
		func() time.Duration { return perItem(t, profiles.Options{Paths: []string{d50}}, 50, true) },
		func() time.Duration { return perItem(t, profiles.Options{Paths: []string{d1k}}, 1000, true) })
	t.Logf("files: per-file time at 1k / at 50 = %.2f", r)
	require.Less(t, r, 8.0, "loading a directory of files is not linear")
}
