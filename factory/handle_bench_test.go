package factory

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// answerHook answers every command with OK without any I/O, so that a
// benchmark measures only what is in front of the network.
type answerHook struct{}

func (answerHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (answerHook) ProcessHook(redis.ProcessHook) redis.ProcessHook {
	return func(_ context.Context, cmd redis.Cmder) error { return nil }
}
func (answerHook) ProcessPipelineHook(redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(context.Context, []redis.Cmder) error { return nil }
}

// BenchmarkHandleOverhead compares a command sent through a Handle with
// the same command sent to the client directly. The client answers in a
// hook without I/O, so the difference is the handle's own cost per call.
//
//	go test -run '^$' -bench HandleOverhead -count 10 ./factory/
func BenchmarkHandleOverhead(b *testing.B) {
	rc := redis.NewClient(&redis.Options{Addr: "unused.invalid:0"})
	rc.AddHook(answerHook{})
	defer rc.Close()
	h := newHandle("bench", &Client{UniversalClient: rc})
	ctx := context.Background()
	for _, bc := range []struct {
		name string
		c    redis.UniversalClient
	}{{"client=direct", rc}, {"client=handle", h}} {
		b.Run(bc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = bc.c.Get(ctx, "k")
			}
		})
		b.Run(bc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = bc.c.Get(ctx, "k")
				}
			})
		})
	}
}
