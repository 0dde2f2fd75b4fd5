package redistest

import (
	"testing"
	"time"
)

// Eventually polls cond every millisecond until it holds, failing the test
// with what if d passes first. It returns how long cond took to hold: a
// measurement, where a sleep would only be a guess.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}
