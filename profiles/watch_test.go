package profiles_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// testDebounce is short, so that tests are fast; waits are long, so that
// they pass on a loaded machine. No test sleeps to synchronise: each waits
// for a callback or a log line, with a deadline.
const (
	testDebounce = 50 * time.Millisecond
	deadline     = 10 * time.Second
)

func cfg(user string) string { return "profiles:\n  a:\n    username: " + user + "\n" }

// logRec is one log line of the watcher.
type logRec struct {
	msg   string
	attrs map[string]string
}

type logHandler struct {
	ch chan logRec
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	rec := logRec{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	select {
	case h.ch <- rec:
	default: // never block the watcher
	}
	return nil
}
func (h *logHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logHandler) WithGroup(string) slog.Handler      { return h }

// harness runs a Watcher and records its callbacks and log lines.
type harness struct {
	t       *testing.T
	w       *profiles.Watcher
	changes chan profiles.Change
	logs    chan logRec
	reject  atomic.Int32 // onChange returns an error this many times
}

// startWatch loads opts.Load (the caller's first load), then watches.
// Debounce defaults to testDebounce and the poll is off unless set, so
// that file events alone are tested.
func startWatch(t *testing.T, opts profiles.WatchOptions) *harness {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
	h := &harness{t: t, changes: make(chan profiles.Change, 1000), logs: make(chan logRec, 10000)}
	if opts.Debounce == 0 {
		opts.Debounce = testDebounce
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = -1
	}
	if opts.Current == nil {
		if r, err := profiles.Load(opts.Load); err == nil {
			opts.Current = r
		}
	}
	opts.Logger = slog.New(&logHandler{ch: h.logs})
	w, err := profiles.Watch(context.Background(), opts, func(c profiles.Change) error {
		h.changes <- c
		if h.reject.Load() > 0 {
			h.reject.Add(-1)
			return errors.New("rejected by the test")
		}
		return nil
	})
	require.NoError(t, err)
	h.w = w
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	return h
}

// next waits for the next callback.
func (h *harness) next() profiles.Change {
	h.t.Helper()
	select {
	case c := <-h.changes:
		return c
	case <-time.After(deadline):
		h.t.Fatalf("no callback within %v", deadline)
		return profiles.Change{}
	}
}

// nextOK waits for the next callback and requires a valid configuration.
func (h *harness) nextOK() *profiles.Result {
	h.t.Helper()
	c := h.next()
	require.NoError(h.t, c.Err, "trigger %s", c.Trigger)
	require.NotNil(h.t, c.Result)
	return c.Result
}

// nextUser waits for the next callback and requires profile a's username.
func (h *harness) nextUser(want string) profiles.Change {
	h.t.Helper()
	c := h.next()
	require.NoError(h.t, c.Err, "trigger %s", c.Trigger)
	require.Equal(h.t, want, c.Result.Config.Profiles["a"].Username, "trigger %s", c.Trigger)
	return c
}

// nextErr waits for the next callback and requires a failed load.
func (h *harness) nextErr() schema.Issues {
	h.t.Helper()
	c := h.next()
	require.Error(h.t, c.Err, "trigger %s", c.Trigger)
	assert.Nil(h.t, c.Result)
	var is schema.Issues
	require.ErrorAs(h.t, c.Err, &is)
	return is
}

// waitLog waits for a log line whose message contains msg and, if given,
// whose attribute key has a value containing val.
func (h *harness) waitLog(msg, key, val string) {
	h.t.Helper()
	timeout := time.After(deadline)
	for {
		select {
		case r := <-h.logs:
			if strings.Contains(r.msg, msg) && (key == "" || strings.Contains(r.attrs[key], val)) {
				return
			}
		case <-timeout:
			h.t.Fatalf("no log %q %s=%q within %v", msg, key, val, deadline)
		}
	}
}

// noCallback requires that no callback is pending.
func (h *harness) noCallback() {
	h.t.Helper()
	select {
	case c := <-h.changes:
		h.t.Fatalf("unexpected callback: trigger %s, err %v", c.Trigger, c.Err)
	default:
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
}

// layout is a way a configuration file is stored and updated.
type layout struct {
	name string
	// setup creates the configuration with content in dir and returns
	// the path to configure.
	setup func(t *testing.T, dir, content string) string
	// update replaces the content the way this layout's owner does.
	update func(t *testing.T, dir, content string)
}

var plainLayout = layout{
	name: "plain file",
	setup: func(t *testing.T, dir, content string) string {
		p := filepath.Join(dir, "redis.yaml")
		write(t, p, content)
		return p
	},
	update: func(t *testing.T, dir, content string) { write(t, filepath.Join(dir, "redis.yaml"), content) },
}

// kubeDirs counts the timestamped directories of the Kubernetes layouts.
var kubeDirs atomic.Int64

// kubeSetup lays out a ConfigMap volume as the kubelet does:
// name -> ..data/name, ..data -> ..<timestamp>/.
func kubeSetup(t *testing.T, dir, name, content string) {
	t.Helper()
	ts := fmt.Sprintf("..2026_01_01_00_00_00.%d", kubeDirs.Add(1))
	write(t, filepath.Join(dir, ts, name), content)
	require.NoError(t, os.Symlink(ts, filepath.Join(dir, "..data")))
	require.NoError(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
}

// kubeSwap updates a ConfigMap volume as the kubelet's atomic writer does:
// a new timestamped directory, a ..data_tmp link renamed over ..data, then
// the old directory removed.
func kubeSwap(t *testing.T, dir, name, content string) {
	t.Helper()
	old, err := os.Readlink(filepath.Join(dir, "..data"))
	require.NoError(t, err)
	ts := fmt.Sprintf("..2026_01_01_00_00_00.%d", kubeDirs.Add(1))
	write(t, filepath.Join(dir, ts, name), content)
	require.NoError(t, os.Symlink(ts, filepath.Join(dir, "..data_tmp")))
	require.NoError(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	require.NoError(t, os.RemoveAll(filepath.Join(dir, old)))
}

var kubeLayout = layout{
	name: "kubernetes configmap",
	setup: func(t *testing.T, dir, content string) string {
		kubeSetup(t, dir, "redis.yaml", content)
		return filepath.Join(dir, "redis.yaml")
	},
	update: func(t *testing.T, dir, content string) { kubeSwap(t, dir, "redis.yaml", content) },
}

var kubeDirLayout = layout{
	name: "kubernetes configmap, directory configured",
	setup: func(t *testing.T, dir, content string) string {
		kubeSetup(t, dir, "redis.yaml", content)
		return dir
	},
	update: kubeLayout.update,
}

// TestWatchSaves covers the ways a file is saved: each is exactly one
// callback with the final content (the next callback after it is the
// sentinel's), and a save that changes nothing is none.
func TestWatchSaves(t *testing.T) {
	type save struct {
		name   string
		layout layout
		// do saves cfg("v2") (or, for a no-op, leaves the content as is).
		do func(t *testing.T, dir string)
		// noop: wait for this log line instead of a callback.
		noop string
	}
	chunked := func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
		require.NoError(t, err)
		_, err = f.WriteString("profiles:\n  a:\n")
		require.NoError(t, err)
		time.Sleep(20 * time.Millisecond) // part of the scenario: a slow writer
		_, err = f.WriteString("    username: v2\n")
		require.NoError(t, err)
		require.NoError(t, f.Close())
	}
	cases := []save{
		{name: "plain write", layout: plainLayout, do: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "redis.yaml"), cfg("v2"))
		}},
		{name: "truncate and write in chunks", layout: plainLayout, do: func(t *testing.T, dir string) {
			chunked(t, filepath.Join(dir, "redis.yaml"))
		}},
		{name: "vim: backup by rename, write, remove backup", layout: plainLayout, do: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "redis.yaml")
			write(t, filepath.Join(dir, ".redis.yaml.swp"), "swap")
			write(t, filepath.Join(dir, "4913"), "")
			require.NoError(t, os.Remove(filepath.Join(dir, "4913")))
			require.NoError(t, os.Rename(p, p+"~"))
			chunked(t, p)
			require.NoError(t, os.Remove(p+"~"))
			require.NoError(t, os.Remove(filepath.Join(dir, ".redis.yaml.swp")))
		}},
		{name: "atomic write: temp file renamed over", layout: plainLayout, do: func(t *testing.T, dir string) {
			tmp := filepath.Join(dir, ".redis.yaml.tmp-4711")
			write(t, tmp, cfg("v2"))
			require.NoError(t, os.Rename(tmp, filepath.Join(dir, "redis.yaml")))
		}},
		{name: "delete then re-create", layout: plainLayout, do: func(t *testing.T, dir string) {
			require.NoError(t, os.Remove(filepath.Join(dir, "redis.yaml")))
			write(t, filepath.Join(dir, "redis.yaml"), cfg("v2"))
		}},
		{name: "kubernetes ..data swap", layout: kubeLayout, do: func(t *testing.T, dir string) {
			kubeSwap(t, dir, "redis.yaml", cfg("v2"))
		}},
		{name: "kubernetes ..data swap, directory configured", layout: kubeDirLayout, do: func(t *testing.T, dir string) {
			kubeSwap(t, dir, "redis.yaml", cfg("v2"))
		}},
		{name: "no-op: same content written again", layout: plainLayout, noop: "unchanged", do: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "redis.yaml"), cfg("v1"))
		}},
		{name: "no-op: touch", layout: plainLayout, noop: "unchanged", do: func(t *testing.T, dir string) {
			now := time.Now().Add(time.Minute)
			require.NoError(t, os.Chtimes(filepath.Join(dir, "redis.yaml"), now, now))
		}},
		{name: "no-op: vim save without changes", layout: plainLayout, noop: "unchanged", do: func(t *testing.T, dir string) {
			p := filepath.Join(dir, "redis.yaml")
			require.NoError(t, os.Rename(p, p+"~"))
			write(t, p, cfg("v1"))
			require.NoError(t, os.Remove(p+"~"))
		}},
		{name: "no-op: kubernetes swap with the same content", layout: kubeLayout, noop: "unchanged", do: func(t *testing.T, dir string) {
			kubeSwap(t, dir, "redis.yaml", cfg("v1"))
		}},
		{name: "no-op: another file in the directory", layout: plainLayout, noop: "event ignored", do: func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "notes.txt"), "hello")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.layout.setup(t, dir, cfg("v1"))
			h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})
			tc.do(t, dir)
			if tc.noop != "" {
				h.waitLog(tc.noop, "", "")
				h.noCallback()
			} else {
				c := h.nextUser("v2")
				assert.True(t, strings.HasPrefix(c.Trigger, "file ") || strings.HasPrefix(c.Trigger, "directory "), c.Trigger)
			}
			// The sentinel: the next callback is this change, so nothing
			// was reported in between.
			tc.layout.update(t, dir, cfg("sentinel"))
			h.nextUser("sentinel")
		})
	}
}

// TestWatchStorm writes 100 times in about a second: the final content is
// applied, in very few callbacks.
func TestWatchStorm(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v0"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})
	for i := 1; i <= 100; i++ {
		write(t, path, cfg(fmt.Sprintf("v%d", i)))
		time.Sleep(10 * time.Millisecond) // part of the scenario: the storm's pace
	}
	n := 0
	for {
		c := h.next()
		n++
		if c.Err == nil && c.Result.Config.Profiles["a"].Username == "v100" {
			break
		}
	}
	t.Logf("%d callbacks for 100 writes", n)
	assert.LessOrEqual(t, n, 5)
	plainLayout.update(t, dir, cfg("sentinel"))
	h.nextUser("sentinel")
}

// TestWatchInvalid: an invalid file is reported and the watcher carries on;
// the same failure is not reported twice; the first valid load after a
// failure is reported even when it equals the configuration in use.
func TestWatchInvalid(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})

	write(t, path, "profiles:\n  a:\n    username: [unclosed\n")
	is := h.nextErr()
	assert.Equal(t, "yaml", is[0].Rule)

	now := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(path, now, now))
	h.waitLog("still invalid", "", "")
	h.noCallback()

	write(t, path, cfg("v1")+"    db: 99\n")
	is = h.nextErr()
	require.Len(t, is, 1)
	assert.Equal(t, "profiles.a.db", is[0].Path)

	write(t, path, "")
	is = h.nextErr()
	assert.Equal(t, "empty", is[0].Rule)

	write(t, path, cfg("v1")) // the configuration in use again: reported
	h.nextUser("v1")
	write(t, path, cfg("v2"))
	h.nextUser("v2")
}

// TestWatchMissingFile: a deleted file is reported (the configuration in
// use stays) and its re-creation, however late, is picked up.
func TestWatchMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})

	require.NoError(t, os.Remove(path))
	is := h.nextErr()
	assert.Equal(t, "read", is[0].Rule)
	write(t, path, cfg("v2"))
	h.nextUser("v2")
}

// TestWatchDirectoryRecreated: the directory of the file goes away and
// comes back; the watcher follows it through the parent and then watches
// it again.
func TestWatchDirectoryRecreated(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, "conf")
	path := filepath.Join(sub, "redis.yaml")
	write(t, path, cfg("v1"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})

	require.NoError(t, os.RemoveAll(sub))
	h.nextErr()
	write(t, path, cfg("v2")) // creates the directory, then the file
	h.nextUser("v2")
	write(t, path, cfg("v3")) // watched directly again
	h.nextUser("v3")
}

// TestWatchConfiguredDirectory: a configured directory's *.yaml files
// count, other files do not.
func TestWatchConfiguredDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), cfg("v1"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{dir}}})

	write(t, filepath.Join(dir, "b.yml"), "profiles:\n  b: {}\n")
	r := h.nextOK()
	assert.Contains(t, r.Config.Profiles, "b")

	write(t, filepath.Join(dir, "README.txt"), "not config")
	h.waitLog("event ignored", "name", "README.txt")
	h.noCallback()

	require.NoError(t, os.Remove(filepath.Join(dir, "b.yml")))
	r = h.nextOK()
	assert.NotContains(t, r.Config.Profiles, "b")
}

// TestWatchReferencedFiles: a rotated password file (a Kubernetes Secret
// elsewhere) is a change; when the configuration points to another file,
// the watch follows it and the old one no longer matters.
func TestWatchReferencedFiles(t *testing.T) {
	root := t.TempDir()
	confDir, secretA, secretB := filepath.Join(root, "conf"), filepath.Join(root, "secret-a"), filepath.Join(root, "secret-b")
	require.NoError(t, os.MkdirAll(secretA, 0o755))
	kubeSetup(t, secretA, "password", "one\n")
	write(t, filepath.Join(secretB, "password"), "bee\n")
	conf := func(secretDir string) string {
		return "profiles:\n  a:\n    password_file: " + filepath.Join(secretDir, "password") + "\n"
	}
	path := filepath.Join(confDir, "redis.yaml")
	write(t, path, conf(secretA))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})
	password := func(r *profiles.Result) string { return string(r.Config.Profiles["a"].Password) }

	kubeSwap(t, secretA, "password", "two\n")
	assert.Equal(t, "two", password(h.nextOK()))

	write(t, path, conf(secretB))
	assert.Equal(t, "bee", password(h.nextOK()))

	write(t, filepath.Join(secretB, "password"), "bee2\n")
	assert.Equal(t, "bee2", password(h.nextOK()))

	kubeSwap(t, secretA, "password", "three\n") // no longer used
	write(t, filepath.Join(secretB, "password"), "bee3\n")
	assert.Equal(t, "bee3", password(h.nextOK()))
}

// TestWatchMissingReferencedFile: a configuration whose password file does
// not exist yet (nor its directory) is reported at start; creating the
// file applies it.
func TestWatchMissingReferencedFile(t *testing.T) {
	root := t.TempDir()
	pw := filepath.Join(root, "secrets", "redis", "password")
	path := filepath.Join(root, "redis.yaml")
	write(t, path, "profiles:\n  a:\n    password_file: "+pw+"\n")
	_, err := profiles.Load(profiles.Options{Paths: []string{path}})
	require.Error(t, err)

	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})
	c := h.next()
	assert.Equal(t, "start", c.Trigger)
	require.Error(t, c.Err)

	write(t, pw, "s3cret\n")
	assert.Equal(t, "s3cret", string(h.nextOK().Config.Profiles["a"].Password))
}

// TestWatchChangedBeforeStart: a change between the caller's Load and
// Watch is reported, with Trigger "start".
func TestWatchChangedBeforeStart(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	opts := profiles.Options{Paths: []string{path}}
	cur, err := profiles.Load(opts)
	require.NoError(t, err)
	write(t, path, cfg("v2"))
	h := startWatch(t, profiles.WatchOptions{Load: opts, Current: cur})
	c := h.nextUser("v2")
	assert.Equal(t, "start", c.Trigger)
}

// envVar is an environment the test changes.
type envVar struct {
	mu  sync.Mutex
	env []string
}

func (e *envVar) set(kv ...string) { e.mu.Lock(); e.env = kv; e.mu.Unlock() }
func (e *envVar) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.env...)
}

// TestWatchReload: Reload in code re-reads the environment; an unchanged
// configuration is not reported; a failed one always is.
func TestWatchReload(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	env := &envVar{}
	env.set("APP__PROFILES__A__DB=1")
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}, EnvPrefix: "APP", Environ: env.get}})
	ctx := context.Background()

	c, err := h.w.Reload(ctx)
	require.NoError(t, err)
	assert.True(t, c.Unchanged)
	assert.Equal(t, "reload requested", c.Trigger)
	h.noCallback()

	env.set("APP__PROFILES__A__DB=2")
	c, err = h.w.Reload(ctx)
	require.NoError(t, err)
	assert.False(t, c.Unchanged)
	assert.Equal(t, 2, c.Result.Config.Profiles["a"].DB)
	assert.Equal(t, 2, h.nextOK().Config.Profiles["a"].DB)

	env.set("APP__PROFILES__A__DB=99")
	for range 2 { // an explicit reload reports the same failure again
		c, err = h.w.Reload(ctx)
		var is schema.Issues
		require.ErrorAs(t, err, &is)
		assert.Equal(t, c.Err, err)
		h.nextErr()
	}

	env.set("APP__PROFILES__A__DB=2") // the one in use: reported, as a recovery
	_, err = h.w.Reload(ctx)
	require.NoError(t, err)
	h.nextOK()
	c, err = h.w.Reload(ctx)
	require.NoError(t, err)
	assert.True(t, c.Unchanged)
	h.noCallback()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.w.Reload(cctx)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestWatchRejectedChangeIsRetried: when onChange cannot apply a change,
// the next trigger reports it again.
func TestWatchRejectedChangeIsRetried(t *testing.T) {
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	h := startWatch(t, profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}})
	h.reject.Store(1)

	write(t, path, cfg("v2"))
	h.nextUser("v2") // rejected
	c, err := h.w.Reload(context.Background())
	require.NoError(t, err)
	assert.False(t, c.Unchanged)
	h.nextUser("v2") // applied
	c, err = h.w.Reload(context.Background())
	require.NoError(t, err)
	assert.True(t, c.Unchanged)
	h.noCallback()

	h.reject.Store(1)
	write(t, path, cfg("v3"))
	h.nextUser("v3")
	_, err = h.w.Reload(context.Background())
	require.NoError(t, err)
	h.nextUser("v3")
}

// TestWatchClose: Close stops everything and is idempotent; Reload after
// it fails; the end of Watch's context stops the watcher too.
func TestWatchClose(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	path := plainLayout.setup(t, dir, cfg("v1"))
	opts := profiles.WatchOptions{Load: profiles.Options{Paths: []string{path}}, Debounce: testDebounce}
	w, err := profiles.Watch(context.Background(), opts, func(profiles.Change) error { return nil })
	require.NoError(t, err)
	stop := w.NotifyOnSignal()
	require.NoError(t, w.Close())
	require.NoError(t, w.Close())
	stop()
	_, err = w.Reload(context.Background())
	assert.ErrorIs(t, err, profiles.ErrWatcherClosed)

	ctx, cancel := context.WithCancel(context.Background())
	w, err = profiles.Watch(ctx, opts, func(profiles.Change) error { return nil })
	require.NoError(t, err)
	cancel()
	require.NoError(t, w.Close())
	_, err = w.Reload(context.Background())
	assert.ErrorIs(t, err, profiles.ErrWatcherClosed)

	_, err = profiles.Watch(context.Background(), opts, nil)
	assert.Error(t, err)
}

// ExampleWatch keeps a configuration current: the first Load is the
// caller's, the watcher reports every later change or failed load.
func ExampleWatch() {
	opts := profiles.Options{Paths: []string{"redis.yaml"}, EnvPrefix: "APP_REDIS"}
	cur, err := profiles.Load(opts)
	if err != nil {
		fmt.Println(err) // every problem, one per line
		return
	}
	w, err := profiles.Watch(context.Background(), profiles.WatchOptions{Load: opts, Current: cur},
		func(c profiles.Change) error {
			if c.Err != nil {
				fmt.Printf("%s: rejected, the running clients keep serving:\n%v\n", c.Trigger, c.Err)
				return nil
			}
			fmt.Printf("%s: %d profiles\n", c.Trigger, len(c.Result.Config.Profiles))
			return nil // or the error of applying it: the next trigger tries again
		})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	stop := w.NotifyOnSignal() // SIGHUP reloads (environment changes)
	defer stop()
	// … serve …
}
