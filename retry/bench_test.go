package retry_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

// BenchmarkProcessHookSuccess measures what the hook adds to a command that
// succeeds: next is a no-op, so the numbers are the hook's own cost.
func BenchmarkProcessHookSuccess(b *testing.B) {
	for _, bc := range []struct {
		name   string
		budget schema.Budget
	}{
		{"no-budget", schema.Budget{}},
		{"budget", schema.Budget{MaxTokens: 10, TokenRatio: 0.1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Budget = bc.budget }), retry.Options{})
			next := func(ctx context.Context, cmd redis.Cmder) error { return nil }
			h := pol.Hook().ProcessHook(next)
			ctx := context.Background()
			cmd := redis.NewIntCmd(ctx, "incr", "k")
			b.ReportAllocs()
			for b.Loop() {
				if err := h(ctx, cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("baseline-no-hook", func(b *testing.B) {
		next := redis.ProcessHook(func(ctx context.Context, cmd redis.Cmder) error { return nil })
		ctx := context.Background()
		cmd := redis.NewIntCmd(ctx, "incr", "k")
		b.ReportAllocs()
		for b.Loop() {
			_ = next(ctx, cmd)
		}
	})
}

// BenchmarkProcessPipelineHookSuccess is the same for pipelines.
func BenchmarkProcessPipelineHookSuccess(b *testing.B) {
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Budget = schema.Budget{MaxTokens: 10, TokenRatio: 0.1} }), retry.Options{})
	h := pol.Hook().ProcessPipelineHook(func(ctx context.Context, cmds []redis.Cmder) error { return nil })
	ctx := context.Background()
	cmds := []redis.Cmder{redis.NewIntCmd(ctx, "incr", "k"), redis.NewStringCmd(ctx, "get", "k")}
	b.ReportAllocs()
	for b.Loop() {
		_ = h(ctx, cmds)
	}
}

func TestProcessHookSuccessDoesNotAllocate(t *testing.T) {
	pol := retry.NewPolicy(profile(func(r *schema.Retry) { r.Budget = schema.Budget{MaxTokens: 10, TokenRatio: 0.1} }), retry.Options{})
	ctx := context.Background()
	h := pol.Hook().ProcessHook(func(ctx context.Context, cmd redis.Cmder) error { return nil })
	hn := pol.Hook().ProcessHook(func(ctx context.Context, cmd redis.Cmder) error { return redis.Nil })
	p := pol.Hook().ProcessPipelineHook(func(ctx context.Context, cmds []redis.Cmder) error { return nil })
	cmd := redis.NewIntCmd(ctx, "incr", "k")
	cmds := []redis.Cmder{cmd}
	pol.Budget().Failure() // not full: Success takes the CAS path
	if n := testing.AllocsPerRun(1000, func() { _ = h(ctx, cmd); _ = hn(ctx, cmd); _ = p(ctx, cmds) }); n != 0 {
		t.Fatalf("success path allocates %v times", n)
	}
}
