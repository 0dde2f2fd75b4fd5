package cache

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// hitHook returns the cache's process hook over a next that answers every
// miss with reply (no server: the hit path alone is measured), with key
// already cached for cmd.
func hitHook(tb testing.TB, cfg Config, warm redis.Cmder, reply func(redis.Cmder)) redis.ProcessHook {
	tb.Helper()
	c := New(cfg)
	tb.Cleanup(func() { _ = c.Close() })
	h := c.Hook().ProcessHook(func(_ context.Context, cmd redis.Cmder) error {
		reply(cmd)
		return nil
	})
	if err := h(context.Background(), warm); err != nil {
		tb.Fatal(err)
	}
	if c.Stats().Entries != 1 {
		tb.Fatalf("warm-up did not cache: %+v", c.Stats())
	}
	return h
}

func answer(cmd redis.Cmder) {
	switch c := cmd.(type) {
	case *redis.StringCmd:
		c.SetVal("value")
	case *redis.MapStringStringCmd:
		c.SetVal(map[string]string{"a": "1", "b": "2", "c": "3", "d": "4"})
	case *redis.StringSliceCmd:
		c.SetVal([]string{"a", "b"})
	case *redis.SliceCmd:
		vals := make([]any, len(c.Args())-1)
		for i := range vals {
			vals[i] = "v"
		}
		c.SetVal(vals)
	}
}

// BenchmarkHit measures the cache's hit path alone, with a command object
// reused across iterations (go-redis's own cost of building one is not
// counted):
//
//	go test -run '^$' -bench BenchmarkHit -benchmem ./cache/
func BenchmarkHit(b *testing.B) {
	ctx := context.Background()
	cases := []struct {
		name string
		cfg  Config
		cmd  redis.Cmder
	}{
		{"GET", Config{Commands: []string{"get"}, MaxEntries: 100}, redis.NewStringCmd(ctx, "get", "user:1")},
		{"GET-ttl", Config{Commands: []string{"get"}, MaxEntries: 100, TTL: time.Minute}, redis.NewStringCmd(ctx, "get", "user:1")},
		{"HGET", Config{Commands: []string{"hget"}, MaxEntries: 100}, redis.NewStringCmd(ctx, "hget", "user:1", "name")},
		{"HGETALL", Config{Commands: []string{"hgetall"}, MaxEntries: 100}, redis.NewMapStringStringCmd(ctx, "hgetall", "user:1")},
		{"LRANGE", Config{Commands: []string{"lrange"}, MaxEntries: 100}, redis.NewStringSliceCmd(ctx, "lrange", "user:1", 0, -1)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			h := hitHook(b, tc.cfg, tc.cmd, answer)
			b.ReportAllocs()
			for b.Loop() {
				if err := h(ctx, tc.cmd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
