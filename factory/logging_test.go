package factory_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
)

const (
	logsChildEnv      = "REDISFACTORY_TEST_LOGS_CHILD"
	logsChildDebugEnv = "REDISFACTORY_TEST_LOGS_CHILD_DEBUG"
)

// TestLogsByDefault runs a service the way the README shows it — no
// runtime, no logger configured, slog's default handler — in a child
// process, and reads the child's stderr: a rejected reload is there
// (through slog.Default, whose standard handler writes to stderr), and
// go-redis's own stderr logger, which prints "redis: <time> pool.go:N:
// redis: connection pool: failed to dial after 1 attempts: ..." on every
// failed dial, is not.
//
// The child's command fails to dial, so go-redis does log that line: run
// again with the default handler's level lowered to Debug
// (slog.SetLogLoggerLevel, the handler still slog's own), the line is
// there once per failed dial, as a slog record at Debug with
// source=go-redis, and never in go-redis's raw format.
func TestLogsByDefault(t *testing.T) {
	if os.Getenv(logsChildEnv) != "" {
		if os.Getenv(logsChildDebugEnv) != "" {
			slog.SetLogLoggerLevel(slog.LevelDebug)
		}
		logsChild(t, os.Getenv(logsChildEnv))
		return
	}
	child := func(debug bool) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestLogsByDefault$", "-test.count=1")
		cmd.Env = append(os.Environ(), logsChildEnv+"="+t.TempDir())
		if debug {
			cmd.Env = append(cmd.Env, logsChildDebugEnv+"=1")
		}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "child: %s\n%s", stdout.String(), stderr.String())
		return stderr.String()
	}
	// go-redis's own format: log.New(os.Stderr, "redis: ", log.LstdFlags|log.Lshortfile).
	raw := regexp.MustCompile(`(?m)^redis: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \S+\.go:\d+: `)
	const dialFailed = "redis: connection pool: failed to dial after 1 attempts"

	errOut := child(false)
	assert.Contains(t, errOut, "WARN", "the rejected reload is logged as a warning")
	assert.Contains(t, errOut, "kind=reload.rejected")
	assert.Contains(t, errOut, "profiles.app.timeouts.socket: a duration needs a unit", "the log line names the problem")
	assert.Contains(t, errOut, "kind=retry.exhausted", "the failed command's exhausted retries are logged")
	assert.NotRegexp(t, raw, errOut, "a go-redis log line reached stderr raw")
	assert.NotContains(t, errOut, "failed to dial", "go-redis's dial failures are Debug, below the default level:\n%s", errOut)

	debugOut := child(true)
	assert.Contains(t, debugOut, "kind=reload.rejected")
	assert.NotRegexp(t, raw, debugOut, "a go-redis log line reached stderr raw")
	// slog's default handler writes "<date> <time> LEVEL msg key=value".
	routed := regexp.MustCompile(`(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d DEBUG ` + regexp.QuoteMeta(dialFailed) + `: .*connection refused source=go-redis$`)
	lines := routed.FindAllString(debugOut, -1)
	assert.Len(t, lines, 2, "each of the 2 failed dials (the try and its retry) is one slog Debug record from go-redis:\n%s", debugOut)
	assert.Equal(t, len(lines), strings.Count(debugOut, "failed to dial"), "every go-redis dial line went through slog:\n%s", debugOut)
}

// logsChild is the service: a profile whose server is down, a command that
// fails, and an invalid edit of the file.
func logsChild(t *testing.T, dir string) {
	path := filepath.Join(dir, "redis.yaml")
	doc := "profiles:\n  app:\n    addr: 127.0.0.1:%d\n    timeouts:\n      connect: 200ms\n      socket: %s\n    retry:\n      retries: 1\n      backoff: {strategy: none}\n"
	port := redistest.FreePort(t) // nothing listens there
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(doc, port, "1s")), 0o600))
	lo := profiles.Options{Paths: []string{path}}
	res, err := profiles.Load(lo)
	require.NoError(t, err)
	f, err := factory.New(res.Config, factory.Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := f.Watch(ctx, profiles.WatchOptions{Load: lo, Current: res, Debounce: 20 * time.Millisecond, PollInterval: -1})
	require.NoError(t, err)

	c, err := f.Client("app")
	require.NoError(t, err)
	require.Error(t, c.Get(ctx, "k").Err(), "nothing listens on the profile's port")

	require.NoError(t, os.WriteFile(path+".tmp", []byte(fmt.Sprintf(doc, port, "5")), 0o600))
	require.NoError(t, os.Rename(path+".tmp", path))
	require.Eventually(t, func() bool { return f.ReloadStats().Rejected == 1 }, 10*time.Second, 5*time.Millisecond)

	require.NoError(t, w.Close())
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	require.NoError(t, f.Close(cctx))
}
