package factory_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
)

const logsChildEnv = "REDISFACTORY_TEST_LOGS_CHILD"

// TestLogsByDefault runs a service the way the README shows it — no
// runtime, no logger configured, slog untouched — in a child process, and
// reads the child's stderr: a rejected reload is there (through
// slog.Default, whose standard handler writes to stderr), and go-redis's
// own stderr logger, which prints "redis: ... failed to dial" on every
// failed dial, is not.
func TestLogsByDefault(t *testing.T) {
	if os.Getenv(logsChildEnv) != "" {
		logsChild(t, os.Getenv(logsChildEnv))
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLogsByDefault$", "-test.count=1")
	cmd.Env = append(os.Environ(), logsChildEnv+"="+dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "child: %s\n%s", stdout.String(), stderr.String())
	errOut := stderr.String()

	assert.Contains(t, errOut, "WARN", "the rejected reload is logged as a warning")
	assert.Contains(t, errOut, "kind=reload.rejected")
	assert.Contains(t, errOut, "profiles.app.timeouts.socket: a duration needs a unit", "the log line names the problem")
	assert.Contains(t, errOut, "kind=retry.exhausted", "the failed command's exhausted retries are logged")
	for _, line := range strings.Split(errOut, "\n") {
		assert.NotRegexp(t, `^redis: |source=go-redis`, line, "a go-redis log line reached stderr")
	}
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
