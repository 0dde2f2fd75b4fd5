package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// watchSignals returns the context watch stops on: SIGINT or SIGTERM.
// Tests replace it.
var watchSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

// runWatch builds every profile, keeps the clients live, applies reloads
// and prints one line per event until interrupted.
func runWatch(c *cli, args []string) int {
	fs := c.flagSet("watch")
	var lf loadFlags
	lf.register(fs)
	debounce := fs.Duration("debounce", profiles.DefaultDebounce, "quiet period after a file change before reloading")
	probe := fs.Duration("probe", 5*time.Second, "health-probe interval of every client (0: no probes)")
	stats := fs.Duration("stats", 10*time.Second, "print cache statistics of profiles with a cache this often (0: never)")
	sighup := fs.Bool("sighup", true, "reload on SIGHUP (picks up environment changes)")
	exitAfter := fs.Duration("exit-after", 0, "stop after this long (0: run until interrupted)")
	paths, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	if len(paths) == 0 {
		return c.usageError(fs, "missing PATH: name at least one configuration file or directory")
	}
	lo := lf.options(c, paths)
	res, is := c.load(paths, lf)
	if is != nil {
		printIssues(c.stdout, c.stderr, is)
		return exitFailed
	}

	ctx, stop := watchSignals(context.Background())
	defer stop()
	if *exitAfter > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *exitAfter)
		defer cancel()
	}

	rt := runtime.New(runtime.Options{})
	out := &lineWriter{w: c.stdout}
	cancelSub := rt.Events().SubscribeFunc(func(e runtime.Event) { out.event(e) }, runtime.WithBuffer(4096))
	f, err := factory.New(res.Config, factory.Options{Runtime: rt, ProbeInterval: *probe})
	if err != nil {
		fmt.Fprintf(c.stderr, "watch: %s\n", schema.EscapeText(schema.RedactText(err.Error())))
		return exitFailed
	}
	w, err := f.Watch(ctx, profiles.WatchOptions{Load: lo, Current: res, Debounce: *debounce})
	if err != nil {
		fmt.Fprintf(c.stderr, "watch: %s\n", schema.EscapeText(schema.RedactText(err.Error())))
		return exitFailed
	}
	if *sighup {
		stopHUP := w.NotifyOnSignal(syscall.SIGHUP)
		defer stopHUP()
	}
	out.printf("watching %s: %s; Ctrl-C to stop", schema.EscapeText(strings.Join(res.Files(), ", ")), strings.Join(f.Profiles(), ", "))

	var statsC <-chan time.Time
	if *stats > 0 {
		t := time.NewTicker(*stats)
		defer t.Stop()
		statsC = t.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-statsC:
			for _, n := range f.Profiles() {
				if cl, err := f.Lookup(n); err == nil {
					if s, ok := cl.CacheStats(); ok {
						out.printf("cache profile=%s hits=%d misses=%d hit_ratio=%.2f evictions=%d invalidations=%d flushes=%d entries=%d bytes=%d",
							n, s.Hits, s.Misses, s.HitRatio(), s.Evictions, s.Invalidations, s.Flushes, s.Entries, s.Bytes)
					}
				}
			}
		}
	}
	_ = w.Close()
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(f.Close(closeCtx), rt.Close(closeCtx))
	cancelSub()
	st := f.ReloadStats()
	fmt.Fprintf(c.stdout, "stopped: %d reloads applied, %d rejected, %d failed\n", st.Applied, st.Rejected, st.Failed)
	if err != nil {
		fmt.Fprintf(c.stderr, "watch: close: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// lineWriter prints whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "%s %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// event prints one event as one line; a rejected reload also lists its
// issues, one per indented line. Events carry no secrets (issue values are
// redacted by the loader).
func (l *lineWriter) event(e runtime.Event) {
	switch e.Kind {
	case runtime.RetryAttempted, runtime.ClientBuilt:
		return // per-command noise; the load command counts retries
	}
	line := e.String()
	var is schema.Issues
	if e.Kind == runtime.ReloadRejected && errors.As(e.Err, &is) {
		lines := make([]string, 0, len(is))
		for _, i := range is {
			lines = append(lines, "    "+i.Error())
		}
		sort.Strings(lines)
		line = strings.TrimSpace(strings.SplitN(line, " err=", 2)[0]) + "\n" + strings.Join(lines, "\n")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, line)
}
