package cache_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// cache is closed (Close waits for its invalidation goroutines), every
// go-redis client closed, every redis-server stopped by the time it runs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
