package mux_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind: every
// Dialer is closed (Close waits for its sockets' goroutines), every
// go-redis client closed, every fake server and redis-server stopped by
// the time it runs.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
