package docs

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// readmeYAML returns the README's redis.yaml (the ```yaml block after
// "`redis.yaml`:") with its server address replaced by addr.
func readmeYAML(t *testing.T, addr string) string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)`redis.yaml`:\n\n```yaml\n(.*?)```").FindSubmatch(b)
	require.NotNil(t, m, "README.md shows a redis.yaml")
	doc := string(m[1])
	require.Contains(t, doc, "addr: redis.internal.example:6379")
	return strings.Replace(doc, "redis.internal.example:6379", addr, 1)
}

// saveFile replaces path's content the way an editor or a ConfigMap update
// does: a new file renamed over the old one.
func saveFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".redis.yaml.tmp")
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// TestREADMEGoRuns builds every Go program of README.md and runs it as a
// reader would, in a directory holding the README's redis.yaml pointed at a
// real redis-server:
//
//   - the loader prints the sessions profile's address, socket timeout
//     and retry classes, and exits 0;
//   - the service writes its session key, applies a valid edit of
//     redis.yaml (the new client's connections carry the new client name),
//     logs a rejected edit on stderr with the issue (no logger configured),
//     and exits 0 on SIGTERM.
func TestREADMEGoRuns(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	blocks, pkgs, lines := writeBlocks(t)
	require.Len(t, blocks, 2, "README.md has two Go programs; a new one needs its expectations here")
	require.Contains(t, blocks[0], "profiles.Load(", "README.md:%d: the loader", lines[0])
	require.Contains(t, blocks[1], "f.Watch(", "README.md:%d: the service", lines[1])

	bin := t.TempDir()
	build := exec.Command("go", append([]string{"build", "-o", bin + string(filepath.Separator)}, pkgs...)...)
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build of the README's Go programs:\n%s", out)

	var env []string // the environment without overrides of the profiles
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "APP_REDIS_") {
			env = append(env, kv)
		}
	}
	work := t.TempDir()
	path := filepath.Join(work, "redis.yaml")
	doc := readmeYAML(t, srv.Addr())
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))

	t.Run("loader", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(bin, "blocka"))
		cmd.Dir, cmd.Env = work, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "README.md:%d: stdout:\n%s\nstderr:\n%s", lines[0], stdout.String(), stderr.String())
		assert.Equal(t, srv.Addr()+" 500ms [connection timeout busy_loading read_only]\n", stdout.String())
	})

	t.Run("service", func(t *testing.T) {
		ctx := context.Background()
		admin := srv.Client(t)
		require.NoError(t, admin.Del(ctx, "session:42").Err())
		cmd := exec.Command(filepath.Join(bin, "blockb"))
		cmd.Dir, cmd.Env = work, env
		var stdout, stderr redistest.SyncBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		defer func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-exited
			}
		}()
		report := func() string { return "stdout:\n" + stdout.String() + "\nstderr:\n" + stderr.String() }
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("the service's output:\n%s", report())
			}
		})

		redistest.Eventually(t, 30*time.Second, "the service writes session:42", func() bool {
			return admin.Get(ctx, "session:42").Val() == "payload"
		})
		ttl := admin.TTL(ctx, "session:42").Val()
		assert.Greater(t, ttl, 59*time.Minute, "the session's TTL")

		// A valid edit is applied: the sessions profile's new client, with
		// the new name, is the one the background probe (every 5s) uses.
		edited := strings.Replace(doc, "  sessions:\n    db: 0\n", "  sessions:\n    db: 0\n    client_name: readme-reloaded\n", 1)
		require.NotEqual(t, doc, edited)
		saveFile(t, path, edited)
		redistest.Eventually(t, 30*time.Second, "a connection named readme-reloaded", func() bool {
			return strings.Contains(admin.ClientList(ctx).Val(), " name=readme-reloaded ")
		})

		// An invalid edit is rejected, and the rejection is on stderr.
		saveFile(t, path, strings.Replace(edited, "socket: 500ms", "socket: 500", 1))
		redistest.Eventually(t, 30*time.Second, "the rejected reload on stderr", func() bool {
			return strings.Contains(stderr.String(), "kind=reload.rejected")
		})
		assert.Contains(t, stderr.String(), "WARN")
		assert.Contains(t, stderr.String(), "defaults.timeouts.socket: a duration needs a unit", report())

		require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
		select {
		case err := <-exited:
			require.NoError(t, err, "the service exits 0 on SIGTERM\n%s", report())
		case <-time.After(30 * time.Second):
			t.Fatalf("the service did not stop on SIGTERM\n%s", report())
		}
		redistest.Eventually(t, 10*time.Second, "the service's connections closed", func() bool {
			return !strings.Contains(admin.ClientList(ctx).Val(), " name=readme-reloaded ")
		})
	})
}
