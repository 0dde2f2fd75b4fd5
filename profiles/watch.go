package profiles

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/redisfactory/redisfactory/internal/safefile"
	"github.com/redisfactory/redisfactory/schema"
)

// Defaults of WatchOptions.
const (
	DefaultDebounce     = 300 * time.Millisecond
	DefaultPollInterval = 2 * time.Second
)

// ErrWatcherClosed is returned by Reload once the watcher has stopped.
var ErrWatcherClosed = errors.New("profiles: the config watcher is closed")

// WatchOptions configures Watch.
type WatchOptions struct {
	// Load is what every reload loads, exactly as profiles.Load does it
	// (the environment is read again on every load).
	Load Options
	// Current is the configuration in use: the Result of the caller's own
	// Load(Load) made just before Watch. Its digest is what later loads are
	// compared with, and the files it was read from (password_file and TLS
	// files included) are watched. Nil means none is in use yet: the first
	// load the watcher makes is reported, whatever it is.
	Current *Result
	// Debounce is the quiet period after the last relevant file event
	// before the configuration is loaded: a burst of events becomes one
	// load of the final content. 0 means DefaultDebounce. A burst that
	// never goes quiet is loaded at least every 20 × Debounce.
	Debounce time.Duration
	// PollInterval is the period of the safety-net poll, which hashes the
	// configuration's files (and the environment) and reloads when the
	// hash changes; it also re-adds directory watches that could not be
	// added. It catches what file events miss (an overflowed event queue,
	// NFS, FUSE, a watch that broke) and is the only trigger when fsnotify
	// cannot be used at all. 0 means DefaultPollInterval; negative turns
	// the poll off.
	PollInterval time.Duration
	// Logger receives the watcher's log lines (events at Debug, reloads at
	// Info, invalid configurations and watch errors at Warn). Nil discards.
	Logger *slog.Logger
}

// Change is the outcome of a reload that onChange is told about.
type Change struct {
	// Result is the new, valid configuration; nil when Err is set.
	Result *Result
	// Err says why the configuration could not be loaded: a schema.Issues
	// listing every problem (use errors.As), from invalid YAML to a
	// validation rule to a missing file. The configuration in use stays
	// in use.
	Err error
	// Trigger says what caused the reload: "file /etc/app/redis.yaml"
	// (with " (+N more)" when a burst touched several paths), "directory
	// /etc/app", "poll", "watch error: …", "reload requested", "signal
	// SIGHUP", or "start" (the configuration changed between the caller's
	// Load and Watch).
	Trigger string
	// Unchanged is set only in what Reload returns, when the configuration
	// loaded is the one in use; onChange is never called with it.
	Unchanged bool
}

// Watcher keeps a configuration current: it reloads it when its files
// change, when asked to in code, or on a signal, and reports every change
// (or failed load) to the onChange function given to Watch.
//
// # Reload triggers
//
//   - File events. The watcher watches directories, never files: the
//     directory of every configured file, every configured directory, and
//     the directory of every file the configuration was read from
//     (password_file, TLS certificates and keys), so that editors that
//     rename over a file and Kubernetes ConfigMap and Secret volumes (whose
//     files are symbolic links through a "..data" link that is swapped
//     atomically) are seen. Symbolic links are resolved link by link, and
//     the directory holding each link is watched for that name, so
//     swapping any link on the way to a file (..data, a "current" release
//     link) is a change. Only events on those names count (in a configured
//     directory: its *.yaml and *.yml files and ..data); chmod events count
//     too, as they are harmless (see below). A directory that does not
//     exist yet is watched through its closest existing ancestor, so its
//     creation is seen, and a directory that is deleted and created again
//     is watched again.
//   - The poll (WatchOptions.PollInterval): a hash of the files and of the
//     environment variables under the prefix, which also re-adds watches
//     that failed.
//   - Errors from fsnotify, including a queue overflow (events were lost):
//     a reload check is made.
//   - Reload, and NotifyOnSignal (SIGHUP by default), for changes files
//     cannot show, such as environment variables.
//
// # What is reported
//
// File events and poll changes are debounced: the load happens once no
// relevant event came for WatchOptions.Debounce (and at least every 20
// debounce periods during a storm that never stops), so an editor's
// save, a chunked write, a delete-and-recreate or a ConfigMap swap is one
// load of the final content. If the files or environment changed while a
// load ran, the load is not reported and another debounce period is
// waited (three times at most in a row).
//
// Each load is profiles.Load(Options) from scratch. A valid configuration
// whose Result.Digest and environment variables under the prefix equal
// those of the one in use is not reported: a save without changes, a touch,
// or a chmod does nothing. A different one is passed to onChange. A load
// that fails is passed to onChange with Change.Err (the caller keeps the
// configuration in use); the same failure again (an invalid file touched,
// a poll) is not reported twice, but a different one is, and so is the
// first valid load after a failure even if it equals the configuration in
// use, so that the caller can record the recovery. A save whose writes
// are more than Debounce apart can be seen half done: the load then
// reports what it read (usually an error), and the final content follows
// as its own change.
//
// If onChange returns an error for a valid configuration (the caller
// could not apply it, for example a new server was unreachable), the
// configuration in use stays the previous one, so the next trigger that
// loads the same files reports it again; Reload is the way to retry now.
// The error returned for a failed load is ignored.
//
// Nothing stops watching except Close or the end of the context given to
// Watch: a missing file, an invalid configuration or a watch error is
// reported and the watcher carries on, keeping the configuration in use.
// After each load the set of watched directories is recomputed from the
// files the new configuration points to (a new password_file directory is
// watched from then on, one no longer used is dropped); after a failed
// load, the files the issues name as missing are watched too.
//
// onChange is called from one goroutine at a time, never concurrently,
// and must not call Reload or Close (they wait for that goroutine).
type Watcher struct {
	opts     WatchOptions
	onChange func(Change) error
	log      *slog.Logger
	debounce time.Duration
	maxWait  time.Duration
	poll     time.Duration
	maxRead  int64 // the most the poll reads of one file

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	reqs   chan reloadReq
	sigs   chan string

	closeOnce sync.Once
	closeErr  error
	sigMu     sync.Mutex
	sigStops  []func()

	// Owned by the watcher's goroutine (and by Watch before it starts).
	fs       *fsnotify.Watcher
	set      watchSet
	watched  map[string]bool
	failed   map[string]string // directories whose Add failed -> error
	files    []string          // absolute paths of the files the config in use was read from
	missing  []string          // files the last failed load could not read
	cur      [32]byte
	haveCur  bool
	lastErr  string
	pollFP   [32]byte
	timer    *time.Timer
	pending  []string // triggers of the armed debounce, distinct, in order
	since    time.Time
	unstable int
}

type reloadReq struct {
	trigger string
	reply   chan reloadReply
}

type reloadReply struct {
	change Change
	err    error
}

// Watch starts watching the configuration opts.Load describes and calls
// onChange for every change (see Watcher for the triggers and what is
// reported). It returns once the watches are in place; it makes one load
// itself, to catch a change made between the caller's Load and Watch
// (reported with Trigger "start" after the debounce), or, when
// opts.Current is nil, to report the first configuration.
//
// onChange's error means "not applied" (see Watcher). Watch fails only if
// onChange is nil, or if fsnotify cannot be started and the poll is off;
// if fsnotify cannot be started (for example inotify's instance limit is
// reached) with the poll on, the watcher logs it and polls.
//
// The watcher runs until Close is called or ctx ends; call Close in
// either case, to wait for it to stop.
func Watch(ctx context.Context, opts WatchOptions, onChange func(Change) error) (*Watcher, error) {
	return watch(ctx, opts, onChange, true)
}

func watch(ctx context.Context, opts WatchOptions, onChange func(Change) error, useNotify bool) (*Watcher, error) {
	if onChange == nil {
		return nil, errors.New("profiles: Watch needs an onChange function")
	}
	w := &Watcher{
		opts:     opts,
		onChange: onChange,
		log:      opts.Logger,
		debounce: opts.Debounce,
		poll:     opts.PollInterval,
		done:     make(chan struct{}),
		reqs:     make(chan reloadReq),
		sigs:     make(chan string, 1),
		watched:  map[string]bool{},
		failed:   map[string]string{},
	}
	lim := opts.Load.Limits.effective()
	w.maxRead = max(lim.MaxFileSize, lim.MaxReferencedFileSize)
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	w.maxWait = 20 * w.debounce
	if w.poll == 0 {
		w.poll = DefaultPollInterval
	}
	if useNotify {
		fs, err := fsnotify.NewWatcher()
		switch {
		case err != nil && w.poll < 0:
			return nil, fmt.Errorf("profiles: cannot watch the configuration (and the poll is off): %w", err)
		case err != nil:
			w.log.Warn("config watch: file events unavailable; polling only", "err", err, "interval", w.poll)
		default:
			w.fs = fs
		}
	}
	if c := opts.Current; c != nil {
		w.files = absPaths(c.Files())
		w.cur, w.haveCur = w.key(c), true
	}
	w.timer = time.NewTimer(time.Hour)
	w.timer.Stop()

	// Watch first, then load: a change after this load is seen as an
	// event, one before it by comparing the load with Current.
	w.syncWatches()
	w.pollFP = w.fingerprint()
	res, err := Load(opts.Load)
	switch {
	case err != nil:
		w.arm("start")
	case !w.haveCur || w.key(res) != w.cur:
		w.arm("start")
	}

	w.ctx, w.cancel = context.WithCancel(ctx)
	go w.run()
	return w, nil
}

// Reload loads the configuration now, as a file change would, and
// reports it to onChange unless it is unchanged (Change.Unchanged). A
// failed load is always reported, even the same failure again. The error
// is ctx's or ErrWatcherClosed if the reload did not run; otherwise it is
// Change.Err when the load failed, or onChange's error; nil means the
// configuration loaded is the one in use.
//
// Reload must not be called from onChange.
func (w *Watcher) Reload(ctx context.Context) (Change, error) {
	return w.request(ctx, "reload requested")
}

func (w *Watcher) request(ctx context.Context, trigger string) (Change, error) {
	req := reloadReq{trigger: trigger, reply: make(chan reloadReply, 1)}
	select {
	case w.reqs <- req:
	case <-w.done:
		return Change{}, ErrWatcherClosed
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
	select {
	case r := <-req.reply:
		return r.change, r.err
	case <-ctx.Done():
		return Change{}, ctx.Err()
	}
}

// Close stops the watcher and waits for its goroutine (and any signal
// forwarding) to end; onChange is not called after Close returns. It is
// safe to call more than once, and must not be called from onChange.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		w.cancel()
		<-w.done
		w.sigMu.Lock()
		stops := w.sigStops
		w.sigStops = nil
		w.sigMu.Unlock()
		for _, stop := range stops {
			stop()
		}
	})
	return w.closeErr
}

func (w *Watcher) run() {
	defer close(w.done)
	defer w.timer.Stop()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w.fs != nil {
		events, errs = w.fs.Events, w.fs.Errors
		defer func() { w.closeErr = w.fs.Close() }()
	}
	var pollC <-chan time.Time
	if w.poll > 0 {
		t := time.NewTicker(w.poll)
		defer t.Stop()
		pollC = t.C
	}
	for {
		select {
		case <-w.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				w.log.Warn("config watch: file events stopped; polling only")
				continue
			}
			w.onEvent(ev)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.onError(err)
		case <-w.timer.C:
			w.fire()
		case <-pollC:
			w.onPoll()
		case sig := <-w.sigs:
			w.check("signal "+sig, true)
		case req := <-w.reqs:
			ch, err := w.check(req.trigger, true)
			req.reply <- reloadReply{ch, err}
		}
	}
}

func (w *Watcher) onEvent(ev fsnotify.Event) {
	name := cleanAbs(ev.Name)
	if _, isDir := w.set[name]; isDir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// A watched directory went away (or moved): its watch is gone or
		// now points elsewhere. The next check watches it (or its closest
		// ancestor) again.
		if w.watched[name] {
			_ = w.fs.Remove(name)
			delete(w.watched, name)
		}
		w.log.Debug("config watch: watched directory gone", "dir", name, "op", ev.Op.String())
		w.arm("directory " + name)
		return
	}
	if !w.set.relevant(name) {
		w.log.Debug("config watch: event ignored", "name", ev.Name, "op", ev.Op.String())
		return
	}
	w.log.Debug("config watch: event", "name", ev.Name, "op", ev.Op.String())
	w.arm("file " + name)
}

func (w *Watcher) onError(err error) {
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.log.Warn("config watch: file events were lost; checking the configuration", "err", err)
	} else {
		w.log.Warn("config watch: watch error; checking the configuration", "err", err)
	}
	// Watches may be stale: drop what we believe and let the check add
	// them again (adding a watched directory again is harmless).
	clear(w.watched)
	w.arm("watch error: " + err.Error())
}

func (w *Watcher) onPoll() {
	w.syncWatches()
	fp := w.fingerprint()
	if fp == w.pollFP {
		return
	}
	w.pollFP = fp
	w.log.Debug("config watch: poll saw a change")
	w.arm("poll")
}

// arm schedules a load after the debounce period, extending a pending one
// (but never past maxWait after the first event of the burst).
func (w *Watcher) arm(trigger string) {
	now := time.Now()
	if len(w.pending) == 0 {
		w.since = now
	}
	if !slices.Contains(w.pending, trigger) {
		w.pending = append(w.pending, trigger)
	}
	d := w.debounce
	if left := w.since.Add(w.maxWait).Sub(now); left < d {
		d = max(left, 0)
	}
	w.timer.Reset(d)
}

func (w *Watcher) fire() {
	if len(w.pending) == 0 {
		return
	}
	trigger := w.pending[0]
	if n := len(w.pending) - 1; n > 0 {
		trigger = fmt.Sprintf("%s (+%d more)", trigger, n)
	}
	w.pending = w.pending[:0]
	w.check(trigger, false)
}

var errUnstable = errors.New("the configuration changed while it was loaded")

// check loads the configuration and reports it. explicit (Reload, a
// signal) reports every failure and retries an unstable load at once; a
// debounced check waits another debounce period instead.
func (w *Watcher) check(trigger string, explicit bool) (Change, error) {
	for {
		w.syncWatches()
		before := w.fingerprint()
		res, err := Load(w.opts.Load)
		after := w.fingerprint()
		w.pollFP = after
		if before != after && w.unstable < 3 {
			w.unstable++
			w.log.Debug("config watch: the files changed during the load; loading again", "trigger", trigger)
			if explicit {
				continue
			}
			w.arm(trigger)
			return Change{Trigger: trigger}, errUnstable
		}
		w.unstable = 0
		return w.report(trigger, res, err, explicit)
	}
}

func (w *Watcher) report(trigger string, res *Result, err error, explicit bool) (Change, error) {
	if err != nil {
		w.missing = missingFiles(err)
		w.syncWatches()
		ch := Change{Err: err, Trigger: trigger}
		msg := err.Error()
		if msg == w.lastErr && !explicit {
			w.log.Debug("config watch: still invalid", "trigger", trigger)
			return ch, err
		}
		w.lastErr = msg
		w.log.Warn("config watch: the configuration cannot be loaded; keeping the one in use", "trigger", trigger, "err", err)
		if cbErr := w.onChange(ch); cbErr != nil {
			w.log.Debug("config watch: onChange returned an error for a failed load", "err", cbErr)
		}
		return ch, err
	}
	w.files, w.missing = absPaths(res.Files()), nil
	w.syncWatches()
	key := w.key(res)
	if w.haveCur && key == w.cur && w.lastErr == "" {
		w.log.Debug("config watch: unchanged", "trigger", trigger)
		return Change{Result: res, Trigger: trigger, Unchanged: true}, nil
	}
	w.log.Info("config watch: the configuration changed", "trigger", trigger)
	ch := Change{Result: res, Trigger: trigger}
	w.lastErr = ""
	if cbErr := w.onChange(ch); cbErr != nil {
		w.log.Warn("config watch: the change was not applied; it is reported again on the next trigger", "trigger", trigger, "err", cbErr)
		return ch, cbErr
	}
	w.cur, w.haveCur = key, true
	return ch, nil
}

// key identifies a configuration: its digest and the environment
// variables under the prefix (so that a changed value counts even where
// the digest does not hash values).
func (w *Watcher) key(r *Result) [32]byte {
	h := sha256.New()
	d := r.Digest()
	h.Write(d[:])
	for _, kv := range w.environ() {
		h.Write([]byte(kv))
		h.Write([]byte{0})
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// environ returns the variables under the prefix, sorted.
func (w *Watcher) environ() []string {
	if w.opts.Load.EnvPrefix == "" {
		return nil
	}
	environ := w.opts.Load.Environ
	if environ == nil {
		environ = os.Environ
	}
	prefix := w.opts.Load.EnvPrefix + envSeparator
	var out []string
	for _, kv := range environ() {
		if strings.HasPrefix(kv, prefix) {
			out = append(out, kv)
		}
	}
	slices.Sort(out)
	return out
}

// fingerprint hashes what a load reads: the files the configured paths
// expand to, the files the configuration points to, and the environment.
func (w *Watcher) fingerprint() [32]byte {
	h := sha256.New()
	files, err := expandPaths(w.opts.Load.Paths, w.opts.Load.Limits.effective().MaxFiles)
	if err != nil {
		fmt.Fprintf(h, "expand: %v\n", err)
	}
	files = absPaths(files)
	files = append(files, w.files...)
	files = append(files, w.missing...)
	seen := map[string]bool{}
	for _, f := range files {
		if seen[f] {
			continue
		}
		seen[f] = true
		// Read as a load reads (regular files only, never blocking, never
		// more than the limit), so that a FIFO or /dev/zero dropped into
		// the directory cannot stop the watcher.
		data, err := safefile.Read(f, w.maxRead)
		if err != nil {
			fmt.Fprintf(h, "%s\x00error %v\n", f, err)
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	for _, kv := range w.environ() {
		fmt.Fprintf(h, "env %s\x00", kv)
	}
	var fp [32]byte
	h.Sum(fp[:0])
	return fp
}

// syncWatches recomputes the directories to watch and adds and removes
// fsnotify watches to match.
func (w *Watcher) syncWatches() {
	targets := slices.Concat(w.files, w.missing)
	w.set = buildWatchSet(absPaths(w.opts.Load.Paths), targets)
	if w.fs == nil {
		return
	}
	// A watch can vanish behind our back (its directory was deleted);
	// fsnotify's list is the truth.
	actual := map[string]bool{}
	for _, d := range w.fs.WatchList() {
		actual[d] = true
	}
	for d := range w.watched {
		if !actual[d] {
			delete(w.watched, d)
		}
	}
	for d := range w.watched {
		if _, ok := w.set[d]; !ok {
			_ = w.fs.Remove(d)
			delete(w.watched, d)
		}
	}
	for d := range w.set {
		if w.watched[d] {
			continue
		}
		if err := w.fs.Add(d); err != nil {
			if w.failed[d] != err.Error() {
				w.failed[d] = err.Error()
				w.log.Warn("config watch: cannot watch a directory; the poll covers it", "dir", d, "err", err)
			}
			continue
		}
		delete(w.failed, d)
		w.watched[d] = true
	}
	for d := range w.failed {
		if _, ok := w.set[d]; !ok {
			delete(w.failed, d)
		}
	}
}

// missingFiles returns the files a failed load could not read that the
// configuration points to (password_file, TLS files), so that their
// creation is watched for.
func missingFiles(err error) []string {
	var is schema.Issues
	if !errors.As(err, &is) {
		return nil
	}
	var out []string
	for _, i := range is {
		if i.Rule == "file" && i.HasValue && i.Value != "" {
			out = append(out, cleanAbs(i.Value))
		}
	}
	return out
}
