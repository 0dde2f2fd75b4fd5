package factory

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestSealHook: on a cluster node, a command's final transient error is
// sealed from go-redis's cluster loop, but a handshake command's error is
// not — it is the error of some command's dial, which the policy must still
// be able to classify and retry (a sealed EOF has no class).
func TestSealHook(t *testing.T) {
	ctx := context.Background()
	failing := func(err error) redis.ProcessHook {
		return func(context.Context, redis.Cmder) error { return err }
	}
	cases := []struct {
		name   string
		cmd    redis.Cmder
		err    error
		sealed bool
	}{
		{"command EOF", redis.NewStatusCmd(ctx, "set", "k", "v"), io.EOF, true},
		{"handshake EOF", redis.NewMapStringInterfaceCmd(ctx, "hello", "3"), io.EOF, false},
		{"auth EOF", redis.NewStatusCmd(ctx, "auth", "pw"), io.EOF, false},
		{"client setname EOF", redis.NewStatusCmd(ctx, "client", "setname", "x"), io.EOF, false},
		{"redirect", redis.NewStatusCmd(ctx, "get", "k"), errors.New("MOVED 1 127.0.0.1:7000"), false},
		{"nil", redis.NewStringCmd(ctx, "get", "k"), redis.Nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := sealHook{}.ProcessHook(failing(tc.err))(ctx, tc.cmd)
			var s *sealedError
			if got := errors.As(err, &s); got != tc.sealed {
				t.Fatalf("sealed = %v, want %v (err %v)", got, tc.sealed, err)
			}
		})
	}
}
