package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/redisfactory/redisfactory/examples/configs"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// runDemo is the zero-setup tour: a server, the webapp example, commands
// through every profile, a reload applied, an invalid edit rejected.
func runDemo(c *cli, args []string) int {
	fs := c.flagSet("demo")
	embedded := fs.Bool("embedded", false, "use the in-process server even when redis-server is installed")
	_, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	d := &demo{out: c.stdout}
	if err := d.run(*embedded); err != nil {
		fmt.Fprintf(c.stderr, "demo: %v\n", err)
		return exitFailed
	}
	return exitOK
}

type demo struct {
	out  io.Writer
	step int
}

func (d *demo) section(title string) {
	d.step++
	fmt.Fprintf(d.out, "\n== %d. %s\n", d.step, title)
}

func (d *demo) say(format string, a ...any) { fmt.Fprintf(d.out, "   "+format+"\n", a...) }

func (d *demo) run(forceEmbedded bool) error {
	dir, err := os.MkdirTemp("", "redisfactory-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	d.section("A Redis server")
	addr, stopServer, embedded, err := startDemoServer(dir, forceEmbedded)
	if err != nil {
		return err
	}
	defer stopServer()
	switch {
	case embedded && forceEmbedded:
		d.say("using an embedded server at %s (--embedded)", addr)
	case embedded:
		d.say("redis-server is not installed: using an embedded server at %s", addr)
	default:
		d.say("started redis-server from PATH at %s", addr)
	}

	d.section("Load examples/configs/webapp/redis.yaml (a copy you could edit)")
	data, err := configs.FS.ReadFile("webapp/redis.yaml")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "redis.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	env := []string{"DEMO__DEFAULTS__ADDR=" + addr}
	if embedded {
		// The embedded server has no CLIENT TRACKING: no client-side cache.
		env = append(env, "DEMO__PROFILES__CACHE__CACHE__ENABLED=false")
	}
	lo := profiles.Options{Paths: []string{path}, EnvPrefix: "DEMO", Environ: func() []string { return env }}
	res, err := profiles.Load(lo)
	if err != nil {
		return err
	}
	d.say("profiles: %s", strings.Join(res.Profiles(), ", "))
	d.say("the file says addr: redis.internal:6379; the environment points it here:")
	for _, key := range []string{"addr", "timeouts.socket", "retry.backoff.strategy", "pool.size"} {
		o, _ := res.Origin("sessions", key)
		v := lookupValue(res, "sessions", key)
		d.say("  sessions.%-24s %-22s %s", key, v, strings.ReplaceAll(o.String(), dir+string(os.PathSeparator), ""))
	}

	rt := runtime.New(runtime.Options{DiscardLogs: true}) // the command prints what matters itself
	defer rt.Close(context.Background())                  //nolint:errcheck // demo teardown
	f, err := factory.New(res.Config, factory.Options{Runtime: rt})
	if err != nil {
		return err
	}
	defer f.Close(context.Background()) //nolint:errcheck // demo teardown

	d.section("Commands through each profile")
	ctx := context.Background()
	for _, name := range f.Profiles() {
		h, err := f.Handle(name)
		if err != nil {
			return err
		}
		start := time.Now()
		key := "demo:" + name
		if err := h.Set(ctx, key, "hello from "+name, time.Minute).Err(); err != nil {
			return fmt.Errorf("%s: SET: %w", name, err)
		}
		v, err := h.Get(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("%s: GET: %w", name, err)
		}
		d.say("%-14s SET+GET %q in %s", name, v, time.Since(start).Round(time.Microsecond))
	}
	if embedded {
		d.say("cache          client-side caching is off here: the embedded server has no CLIENT TRACKING")
		d.say("               (install redis-server and run the demo without --embedded to see it)")
	} else if cl, err := f.Lookup("cache"); err == nil {
		h, _ := f.Handle("cache")
		// The invalidation connection comes up in the background; until it
		// is, reads are not stored. Wait for it (briefly), then read once
		// so the value is cached.
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if st, _ := cl.CacheStats(); st.ChannelsUp > 0 {
				break
			}
		}
		_ = h.Get(ctx, "demo:cache").Err()
		before, _ := cl.CacheStats()
		for range 3 {
			_ = h.Get(ctx, "demo:cache").Err()
		}
		if after, ok := cl.CacheStats(); ok {
			d.say("cache          3 more GETs: %d from the client-side cache, %d from the server",
				after.Hits-before.Hits, after.Misses-before.Misses)
		}
	}

	events := rt.Events().Subscribe(runtime.WithKinds(runtime.ReloadApplied, runtime.ReloadRejected, runtime.ReloadFailed))
	defer events.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := f.Watch(wctx, profiles.WatchOptions{Load: lo, Current: res, Debounce: 100 * time.Millisecond, PollInterval: -1})
	if err != nil {
		return err
	}
	defer w.Close() //nolint:errcheck // demo teardown
	sessions, _ := f.Handle("sessions")

	d.section("Edit the file: sessions gets a bigger pool and a 1s socket timeout")
	edited := strings.Replace(string(data), "      size: 20\n", "      size: 30\n", 1)
	edited = strings.Replace(edited, "  sessions:\n    db: 0\n", "  sessions:\n    db: 0\n    timeouts:\n      socket: 1s\n", 1)
	if err := saveAtomically(path, edited); err != nil {
		return err
	}
	e, err := waitEvent(events, 10*time.Second)
	if err != nil {
		return err
	}
	d.say("%s", strings.ReplaceAll(e.String(), dir+string(os.PathSeparator), ""))
	cur, _ := f.Lookup("sessions")
	d.say("sessions now: pool.size=%d timeouts.socket=%s; the handle the code holds still works: %v",
		cur.Profile().Pool.Size, cur.Profile().Timeouts.Socket, sessions.Ping(ctx).Err() == nil)

	d.section("An invalid edit: a socket timeout without a unit")
	broken := strings.Replace(edited, "      socket: 1s\n", "      socket: 5\n", 1)
	if err := saveAtomically(path, broken); err != nil {
		return err
	}
	e, err = waitEvent(events, 10*time.Second)
	if err != nil {
		return err
	}
	d.say("%s", strings.ReplaceAll(strings.SplitN(e.String(), " err=", 2)[0], dir+string(os.PathSeparator), ""))
	var is schema.Issues
	if errors.As(e.Err, &is) {
		for _, i := range is {
			d.say("  %s", strings.Replace(i.Error(), dir+string(os.PathSeparator), "", 1))
		}
	}
	v, err := sessions.Get(ctx, "demo:sessions").Result()
	d.say("the clients keep serving the last valid configuration: GET demo:sessions = %q (err %v)", v, err)
	st := f.ReloadStats()
	d.say("reloads: %d applied, %d rejected; last reload successful: %v", st.Applied, st.Rejected, st.LastSuccessful)

	d.section("Next, from the repository's root")
	for _, hint := range demoHints {
		d.say("%s", hint)
	}
	d.say("(`go install ./cmd/redisfactory` puts redisfactory on your PATH, or run `go run ./cmd/redisfactory …`)")
	return nil
}

// demoHints are the commands the demo suggests; a test runs each from the
// repository's root and requires exit 0.
var demoHints = []string{
	"redisfactory validate examples/configs/webapp/     # what CI runs on a config change",
	"redisfactory explain examples/configs/webapp/ cache",
	"redisfactory print examples/configs/kubernetes/",
}

// lookupValue renders one effective key of a profile.
func lookupValue(res *profiles.Result, profile, key string) string {
	keys, err := res.Explain(profile)
	if err != nil {
		return ""
	}
	for _, k := range keys {
		if k.Path == key {
			return k.Value
		}
	}
	return ""
}

func waitEvent(s *runtime.Subscription, timeout time.Duration) (runtime.Event, error) {
	select {
	case e := <-s.C():
		return e, nil
	case <-time.After(timeout):
		return runtime.Event{}, errors.New("no reload event within " + timeout.String())
	}
}

// saveAtomically replaces path the way editors do: write a temporary file,
// rename it over the original.
func saveAtomically(path, content string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// startDemoServer starts redis-server from PATH on a free loopback port,
// or an embedded server when it is missing (or forced).
func startDemoServer(dir string, forceEmbedded bool) (addr string, stop func(), embedded bool, err error) {
	if bin, lerr := exec.LookPath("redis-server"); lerr == nil && !forceEmbedded {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, false, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
		if err := cmd.Start(); err != nil {
			return "", nil, false, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
		// Wait until it accepts connections (a plain dial: a client would
		// log every refused attempt).
		deadline := time.Now().Add(10 * time.Second)
		for !accepts(addr) {
			if time.Now().After(deadline) {
				stop()
				return "", nil, false, errors.New("redis-server did not start within 10s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		return addr, stop, false, nil
	}
	m, err := miniredis.Run()
	if err != nil {
		return "", nil, false, err
	}
	return m.Addr(), m.Close, true, nil
}
