package profiles

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestWatchSet checks which directories are watched (never files) and
// which events in them count, for each layout.
func TestWatchSet(t *testing.T) {
	root := t.TempDir()
	mk := func(p, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	}
	// A plain file and a configured directory.
	mk(filepath.Join(root, "plain", "redis.yaml"), "")
	mk(filepath.Join(root, "confd", "a.yaml"), "")
	// A Kubernetes volume: redis.yaml -> ..data/redis.yaml, ..data -> ..ts1.
	kube := filepath.Join(root, "kube")
	mk(filepath.Join(kube, "..ts1", "redis.yaml"), "")
	require.NoError(t, os.Symlink("..ts1", filepath.Join(kube, "..data")))
	require.NoError(t, os.Symlink("..data/redis.yaml", filepath.Join(kube, "redis.yaml")))
	// A deployment link: current -> releases/r1, config in it.
	mk(filepath.Join(root, "app", "releases", "r1", "redis.yaml"), "")
	require.NoError(t, os.Symlink("releases/r1", filepath.Join(root, "app", "current")))
	// A file in a directory that does not exist yet.
	missing := filepath.Join(root, "later", "deeper", "password")

	set := buildWatchSet(
		[]string{filepath.Join(root, "plain", "redis.yaml"), filepath.Join(root, "confd"), filepath.Join(kube, "redis.yaml"), filepath.Join(root, "app", "current", "redis.yaml")},
		[]string{missing},
	)
	for dir := range set {
		st, err := os.Stat(dir)
		require.NoError(t, err)
		assert.True(t, st.IsDir(), "%s is watched but is not a directory", dir)
	}
	cases := []struct {
		name string
		want bool
	}{
		{"plain/redis.yaml", true},
		{"plain/redis.yaml~", false},
		{"plain/.redis.yaml.swp", false},
		{"plain/4913", false},
		{"confd/a.yaml", true},
		{"confd/new.yml", true},
		{"confd/.hidden.yaml", false},
		{"confd/notes.txt", false},
		{"confd/..data", true},
		{"confd", true}, // the directory itself
		{"kube/redis.yaml", true},
		{"kube/..data", true},
		{"kube/..data_tmp", false},
		{"kube/..ts1/redis.yaml", true},
		{"kube/other.yaml", false},
		{"app/current", true},
		{"app/releases/r1/redis.yaml", true},
		{"app/releases/r2", false},
		{"later", true}, // the closest existing ancestor of a missing file
		{"unrelated/redis.yaml", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, set.relevant(filepath.Join(root, tc.name)))
		})
	}
}

func internalWatch(t *testing.T, path string, useNotify bool, poll time.Duration) (*Watcher, chan Change) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	opts := Options{Paths: []string{path}}
	cur, err := Load(opts)
	require.NoError(t, err)
	changes := make(chan Change, 100)
	w, err := watch(context.Background(), WatchOptions{Load: opts, Current: cur, Debounce: 50 * time.Millisecond, PollInterval: poll},
		func(c Change) error { changes <- c; return nil }, useNotify)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	return w, changes
}

func nextChange(t *testing.T, ch chan Change) Change {
	t.Helper()
	select {
	case c := <-ch:
		require.NoError(t, c.Err)
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
		return Change{}
	}
}

// TestWatchOverflow: events were lost (a queue overflow); the watcher
// checks the configuration and applies what it missed.
func TestWatchOverflow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a: {}\n"), 0o600))
	w, changes := internalWatch(t, path, true, -1)

	// Lose the events behind the watcher's back, change the file, and
	// report the overflow fsnotify would.
	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.NoError(t, w.fs.Remove(real))
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    db: 4\n"), 0o600))
	w.fs.Errors <- fsnotify.ErrEventOverflow
	c := nextChange(t, changes)
	assert.Contains(t, c.Trigger, "watch error")
	assert.Equal(t, 4, c.Result.Config.Profiles["a"].DB)

	// The watch was added again.
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    db: 5\n"), 0o600))
	assert.Equal(t, 5, nextChange(t, changes).Result.Config.Profiles["a"].DB)
}

// TestWatchPollSafetyNet: a watch that broke silently; the poll notices
// the change and re-adds the watch.
func TestWatchPollSafetyNet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a: {}\n"), 0o600))
	w, changes := internalWatch(t, path, true, 100*time.Millisecond)

	real, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	require.NoError(t, w.fs.Remove(real))
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    db: 6\n"), 0o600))
	c := nextChange(t, changes)
	assert.Equal(t, "poll", c.Trigger)
	assert.Equal(t, 6, c.Result.Config.Profiles["a"].DB)
	assert.Contains(t, w.fs.WatchList(), real, "the poll adds the lost watch again")
}

// TestWatchPollOnly: without file events at all (fsnotify unavailable),
// the poll alone keeps the configuration current, debounced.
func TestWatchPollOnly(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redis.yaml")
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a: {}\n"), 0o600))
	w, changes := internalWatch(t, path, false, 50*time.Millisecond)
	require.Nil(t, w.fs)

	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    db: 7\n"), 0o600))
	c := nextChange(t, changes)
	assert.Equal(t, "poll", c.Trigger)
	assert.Equal(t, 7, c.Result.Config.Profiles["a"].DB)
	require.NoError(t, os.Remove(path))
	select {
	case c := <-changes:
		require.Error(t, c.Err)
	case <-time.After(10 * time.Second):
		t.Fatal("no callback")
	}
	require.NoError(t, os.WriteFile(path, []byte("profiles:\n  a:\n    db: 8\n"), 0o600))
	assert.Equal(t, 8, nextChange(t, changes).Result.Config.Profiles["a"].DB)
}
