package factory_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
)

type capturedLogger struct {
	mu    sync.Mutex
	lines []string
}

func (l *capturedLogger) Printf(_ context.Context, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// sch.mode auto against open-source Redis 7.0 (which answers "ERR unknown
// subcommand 'maint_notifications'") stays quiet: go-redis 9.23 turns the
// feature off without logging (redis/go-redis#3536 is fixed there; the log
// line is commented out in initConn), the handshake error reaches neither
// the retry policy nor the runtime's log, and no command fails.
func TestSCHAutoIsQuietOnOSSRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	gl := &capturedLogger{}
	redis.SetLogger(gl)
	t.Cleanup(func() { redis.SetLogger(&capturedLogger{}) }) // go-redis has no getter to restore
	var logs bytes.Buffer
	var logMu sync.Mutex
	rt := runtime.New(runtime.Options{Logger: slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	})
	doc := fmt.Sprintf("profiles:\n  p:\n    addr: %s\n    protocol: 3\n    pool: {size: 16}\n    sch: {mode: auto}\n", srv.Addr())
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("q.yaml", []byte(doc))}})
	require.NoError(t, err)
	c, err := factory.Build("p", r.Config.Profiles["p"], rt, factory.BuildOptions{})
	require.NoError(t, err)
	defer c.Close()

	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 16*50)
	for range 16 { // 16 connections racing through the handshake
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := c.Ping(ctx).Err(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("command failed: %v", err)
	}
	gl.mu.Lock()
	defer gl.mu.Unlock()
	for _, l := range gl.lines {
		require.NotContains(t, strings.ToLower(l), "maint", "go-redis logged: %s", l)
	}
	logMu.Lock()
	defer logMu.Unlock()
	require.NotContains(t, strings.ToLower(logs.String()), "maint_notifications", logs.String())
	require.Zero(t, rt.Events().Count(runtime.RetryAttempted))
	require.Zero(t, rt.Events().Count(runtime.MaintenanceNotification))
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
