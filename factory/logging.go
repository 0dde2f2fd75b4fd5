package factory

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// goRedisLogs routes go-redis's internal logger through slog; done once.
var goRedisLogs sync.Once

// routeGoRedisLogs replaces go-redis's internal logger, which prints to
// stderr ("redis: failed to dial after 1 attempts: ..." on every failed
// dial), with one that writes to [slog.Default] (looked up at each line).
//
// go-redis's logger is process-global (redis.SetLogger), so this is done
// once per process, when the first client is built, and affects every
// go-redis client of the process, built by the factory or not. An
// application that wants go-redis's lines elsewhere calls redis.SetLogger
// after building its first factory client; the factory never sets it again.
func routeGoRedisLogs() {
	goRedisLogs.Do(func() { redis.SetLogger(slogForGoRedis{}) })
}

// slogForGoRedis implements go-redis's internal.Logging on slog.Default.
//
// Levels: what go-redis reports about commands and connections (failed
// dials, pool and push-handler errors) reaches the application as the
// factory's own events and errors — a failed dial is a retry event and the
// command's error — so those lines are Debug; a sentinel's switch to a new
// master is Info; a recovered panic is Error.
type slogForGoRedis struct{}

// Printf logs one go-redis line with the attribute source=go-redis.
func (slogForGoRedis) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := goRedisLevel(msg)
	l := slog.Default()
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, level) {
		return
	}
	l.LogAttrs(ctx, level, msg, slog.String("source", "go-redis"))
}

func goRedisLevel(msg string) slog.Level {
	switch {
	case strings.Contains(msg, "panic"):
		return slog.LevelError
	case strings.HasPrefix(msg, "sentinel: new master"):
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}
