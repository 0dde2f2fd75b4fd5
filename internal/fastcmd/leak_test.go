package fastcmd

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestDecoderCloseLeavesNoGoroutines checks that the in-memory client starts
// nothing that outlives Close, including after a slow-path call has dialled.
func TestDecoderCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	d := NewDecoder()
	ctx := context.Background()
	cmd := redis.NewStringCmd(ctx, "get", "k")
	require.EqualError(t, d.SetReply(ctx, cmd, []byte("-ERR x\r\n")), "ERR x")
	require.NoError(t, d.Close())
}
