package runtime_test

import (
	"bytes"
	"errors"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/redisfactory/redisfactory/runtime"
)

// captureDefault points slog.Default at a text handler writing to the
// returned buffer (without times) for the rest of the test.
func captureDefault(t *testing.T, level slog.Level) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		},
	})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

func TestDefaultLoggerIsSlogDefault(t *testing.T) {
	rt, _ := newRuntime(t, runtime.Options{})
	// slog.SetDefault after runtime.New is followed: services often set
	// up logging after building their dependencies.
	buf := captureDefault(t, slog.LevelInfo)
	rt.Events().Publish(runtime.Event{Kind: runtime.ReloadRejected, Message: "1 problem", Err: errors.New("redis.yaml:5: bad")})
	rt.Events().Publish(runtime.Event{Kind: runtime.ReloadApplied, Message: "applied"}) // Debug: dropped at Info
	assert.Equal(t, "level=WARN msg=\"1 problem\" kind=reload.rejected err=\"redis.yaml:5: bad\"\n", buf.String())

	buf.Reset()
	rt.Logger().With("a", 1).WithGroup("g").Warn("x", "b", 2)
	assert.Equal(t, "level=WARN msg=x a=1 g.b=2\n", buf.String())
}

func TestDiscardLogs(t *testing.T) {
	buf := captureDefault(t, slog.LevelDebug)
	logger := slog.New(slog.NewTextHandler(buf, nil))
	for _, opts := range []runtime.Options{{DiscardLogs: true}, {DiscardLogs: true, Logger: logger}} {
		rt, _ := newRuntime(t, opts)
		rt.Events().Publish(runtime.Event{Kind: runtime.ReloadRejected, Err: errors.New("bad")})
		assert.Equal(t, uint64(1), rt.Events().Count(runtime.ReloadRejected), "the event is still counted")
	}
	assert.Empty(t, buf.String())
}

// During an outage every command fails: the log gets one line per second
// per kind and profile, with the number left out, not one per command.
func TestHighVolumeFailuresAreSampledInTheLog(t *testing.T) {
	var buf bytes.Buffer
	h := slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}})
	rt, clk := newRuntime(t, runtime.Options{Logger: slog.New(h)})
	sub := rt.Events().Subscribe(runtime.WithKinds(runtime.RetryExhausted))
	defer sub.Close()
	for range 5 {
		rt.Events().Publish(runtime.Event{Kind: runtime.RetryExhausted, Profile: "a", Class: "connection"})
	}
	rt.Events().Publish(runtime.Event{Kind: runtime.RetryExhausted, Profile: "b", Class: "connection"})
	rt.Events().Publish(runtime.Event{Kind: runtime.ReloadRejected}) // never sampled
	rt.Events().Publish(runtime.Event{Kind: runtime.ReloadRejected})
	clk.Advance(runtime.LogInterval)
	rt.Events().Publish(runtime.Event{Kind: runtime.RetryExhausted, Profile: "a", Class: "connection"})

	assert.Equal(t, "level=WARN msg=retry.exhausted kind=retry.exhausted profile=a class=connection\n"+
		"level=WARN msg=retry.exhausted kind=retry.exhausted profile=b class=connection\n"+
		"level=WARN msg=reload.rejected kind=reload.rejected\n"+
		"level=WARN msg=reload.rejected kind=reload.rejected\n"+
		"level=WARN msg=retry.exhausted kind=retry.exhausted profile=a class=connection suppressed=4\n", buf.String())
	assert.Equal(t, uint64(7), rt.Events().Count(runtime.RetryExhausted))
	assert.Len(t, sub.C(), 7, "subscribers see every event")
}
