package rehearsal_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// subject is a client under rehearsal: it opens its connections to addr,
// runs a load that checks every reply, probes with a command longer than
// its timeout outside a maintenance, and stops.
type subject interface {
	// start connects and starts the load; it returns how many connections
	// are expected to negotiate notifications.
	start(t *testing.T, addr string) int
	// probe runs PING, so that the probe connection has read the
	// notifications sent before, then a command that takes 600 ms (BLPOP
	// of an empty list for 0.6 s: unlike DEBUG SLEEP it holds up no other
	// client) under a 300 ms timeout, relaxed to 3 s during a maintenance,
	// and returns its error.
	probe(t *testing.T) error
	// stop stops the load and returns its counts.
	stop(t *testing.T) (ok, failed int64, errs []string)
	// touch uses the probe connection (idle otherwise).
	touch(t *testing.T)
}

// rehearse runs the script with s and checks what a user would: no command
// of the load failed, timeouts were relaxed and restored, every connection
// told to move left before the deadline and arrived at the new endpoint.
func rehearse(t *testing.T, s subject) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	pa := sch.NewProxyWithOptions("127.0.0.1:0", a.Addr(), sch.ProxyOptions{NoAutoCut: true})
	require.NoError(t, pa.Start())
	t.Cleanup(func() { _ = pa.Close() })
	pb := sch.NewProxyWithOptions("127.0.0.1:0", b.Addr(), sch.ProxyOptions{NoAutoCut: true})
	require.NoError(t, pb.Start())
	t.Cleanup(func() { _ = pb.Close() })
	pa.AddPeer(pb)

	want := s.start(t, pa.Addr())
	stopped := false
	defer func() {
		if !stopped {
			s.stop(t)
		}
	}()
	eventually(t, 20*time.Second, func() bool { return negotiated(pa) >= want }, fmt.Sprintf("%d connections negotiated", want))

	require.Positive(t, pa.Migrating())
	require.NoError(t, s.probe(t), "a 600 ms command under a 300 ms timeout succeeds during MIGRATING (relaxed)")
	require.Positive(t, pa.Migrated())
	require.Error(t, s.probe(t), "the same command times out again after MIGRATED (restored)")

	told := pa.Moving(pb.Addr(), 5)
	require.Positive(t, told)
	// An idle pooled connection reads the MOVING when it is next used.
	s.touch(t)
	var r sch.MovingReport
	deadline := time.Now().Add(5 * time.Second)
	// Arrived, not Closed: a client may close more connections than it
	// keeps (go-redis replaces idle ones dialed to the old address during
	// the handoff), and only arrivals say it is on the new endpoint.
	for r, _ = pa.MovingReport(); !(r.Open == 0 && r.Arrived >= want); r, _ = pa.MovingReport() {
		if time.Now().After(deadline) {
			for _, ci := range pa.Clients() {
				if ci.Open {
					t.Logf("still open: %+v", ci)
				}
			}
			t.Fatalf("not every connection told to move left and arrived at the new endpoint within the announced 5s: %+v", r)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("MOVING: %+v", r)
	// The load keeps running on the new endpoint.
	eventually(t, 10*time.Second, func() bool { n, _ := b.Client(t).DBSize(context.Background()).Result(); return n > 0 }, "the load reached the new server")
	// A server cuts what is left when the announced time ends, not before:
	// a connection that negotiates meanwhile is told too (go-redis dials
	// the old address while its handoffs run), and has until then.
	time.Sleep(time.Until(r.Deadline))
	cut := pa.Cut()
	ok, failed, errs := s.stop(t)
	stopped = true
	r, _ = pa.MovingReport()
	t.Logf("%d commands ok, %d failed; MOVING told %d connection(s): %d closed before the deadline, %d arrived at the new endpoint (%d negotiated), %d cut, %d cut later",
		ok, failed, r.Told, r.Closed, r.Arrived, r.ArrivedNegotiated, r.Cut, cut)
	if failed > 0 {
		if d, ok := s.(knownDefect); ok {
			if why := d.excuse(r.Sent); why != "" {
				t.Logf("%d commands failed after MOVING, excused: %s; failed commands: %q", failed, why, errs)
				failed = 0
			}
		}
	}
	require.Zero(t, failed, "failed commands: %q", errs)
	require.Positive(t, ok)
	require.Zero(t, r.Cut, "no connection had to be cut")
	require.GreaterOrEqual(t, r.ArrivedNegotiated, want, "every connection arrived and negotiated notifications there")
}

// knownDefect is a subject whose client has a defect of its own that can
// fail commands of the load during a handoff, and that the client itself
// reports when it happens.
type knownDefect interface {
	// excuse says why all of the load's failures are the client's own
	// defect, or returns "" when they may not be (see goRedis.excuse);
	// moving is when the MOVING was sent.
	excuse(moving time.Time) string
}

func negotiated(p *sch.Proxy) int {
	n := 0
	for _, c := range p.Clients() {
		if c.Open && c.Negotiated {
			n++
		}
	}
	return n
}

func eventually(t *testing.T, d time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goLoad is a verified SET/GET/INCR/ECHO load on a go-redis client.
type goLoad struct {
	c        redis.UniversalClient
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	ok       atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	errs     []string
	failures []failure // the first maxFailures
}

// failure is a failed command of a load.
type failure struct {
	start  time.Time // when the command was sent
	shared bool      // its error is one a connection used by two goroutines at once gives (see sharedConnError)
}

const maxFailures = 100

// errCrossed marks a reply that is not the one its command asked for.
var errCrossed = errors.New("crossed reply")

// sharedConnError reports whether err is what a client connection that two
// goroutines use at once gives, and nothing between the client and the
// server can: a reply meant for another command (a value the load did not
// write, or a reply of another type, which go-redis cannot parse as its
// own), or a short write (io.ErrShortWrite: a net.Conn's Write never
// returns short without an error, so it comes from a bufio.Writer written
// concurrently). Never a network error, a timeout or a server error,
// which a broken proxy would give.
func sharedConnError(err error) bool {
	var ne *strconv.NumError
	return errors.Is(err, errCrossed) || errors.As(err, &ne) || strings.Contains(err.Error(), "redis: can't parse") ||
		errors.Is(err, io.ErrShortWrite)
}

func startGoLoad(c redis.UniversalClient, workers int) *goLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &goLoad{c: c, cancel: cancel}
	check := func(start time.Time, err error) {
		if err == nil {
			l.ok.Add(1)
			return
		}
		if ctx.Err() != nil {
			return // stopped mid-command
		}
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.failures) < maxFailures {
			l.failures = append(l.failures, failure{start: start, shared: sharedConnError(err)})
		}
		if len(l.errs) < 20 {
			l.errs = append(l.errs, err.Error())
		}
		l.mu.Unlock()
	}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// The two servers share no data (a real migration copies it), so
			// a GET may find nothing and a counter restarts at 1 once, on the
			// new server; every reply must still be the one its command asked
			// for: ECHO's unique value, SET's OK, GET's value or nil, INCR's
			// next number or 1.
			var counter int64
			for i := 0; ctx.Err() == nil; i++ {
				key := "go:" + strconv.Itoa(w) + ":" + strconv.Itoa(i%16)
				val := "v" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
				start := time.Now()
				check(start, expect(c.Echo(ctx, val).Result()).is(val))
				start = time.Now()
				check(start, expect(c.Set(ctx, key, val, 0).Result()).is("OK"))
				start = time.Now()
				got, err := c.Get(ctx, key).Result()
				if errors.Is(err, redis.Nil) {
					err = nil
				} else if err == nil && got != val {
					err = fmt.Errorf("%w: GET %s answered %q, want %q", errCrossed, key, got, val)
				}
				check(start, err)
				start = time.Now()
				n, err := c.Incr(ctx, "go:"+strconv.Itoa(w)+":counter").Result()
				if err == nil && n != counter+1 && n != 1 {
					err = fmt.Errorf("%w: INCR answered %d, want %d (or 1 on the new server)", errCrossed, n, counter+1)
				}
				if err == nil {
					counter = n
				}
				check(start, err)
			}
		}()
	}
	return l
}

type reply struct {
	v   string
	err error
}

func expect(v string, err error) reply { return reply{v, err} }

func (r reply) is(want string) error {
	if r.err != nil {
		return r.err
	}
	if r.v != want {
		return fmt.Errorf("%w: reply %q, want %q", errCrossed, r.v, want)
	}
	return nil
}

// failed returns the load's failures (the first maxFailures) and how
// many there were.
func (l *goLoad) failedCommands() ([]failure, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]failure(nil), l.failures...), l.failed.Load()
}

func (l *goLoad) stop() (int64, int64, []string) {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed.Load(), l.errs
}

// goRedis is go-redis v9's own maintnotifications client: no factory code.
type goRedis struct {
	c, probeC *redis.Client
	load      *goLoad
	log       *poolLog
}

func (g *goRedis) start(t *testing.T, addr string) int {
	g.log = &poolLog{out: log.New(os.Stderr, "redis: ", log.LstdFlags)}
	redis.SetLogger(g.log)
	t.Cleanup(func() { g.log.stopRecording() })
	opts := func(pool int) *redis.Options {
		return &redis.Options{
			Addr: addr, Protocol: 3, PoolSize: pool, MinIdleConns: pool,
			ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond,
			MaintNotificationsConfig: &maintnotifications.Config{
				Mode: maintnotifications.ModeEnabled, RelaxedTimeout: 3 * time.Second, HandoffTimeout: 3 * time.Second,
			},
		}
	}
	g.c = redis.NewClient(opts(8))
	g.probeC = redis.NewClient(opts(1))
	g.load = startGoLoad(g.c, 8)
	require.NoError(t, g.probeC.Ping(context.Background()).Err())
	return 9
}

func (g *goRedis) probe(t *testing.T) error {
	require.NoError(t, g.probeC.Ping(context.Background()).Err())
	return probeErr(g.probeC.Do(context.Background(), "BLPOP", "rehearsal:probe", "0.6").Err())
}

func (g *goRedis) touch(t *testing.T) { require.NoError(t, g.probeC.Ping(context.Background()).Err()) }

func (g *goRedis) stop(t *testing.T) (int64, int64, []string) {
	ok, failed, errs := g.load.stop()
	_ = g.c.Close()
	_ = g.probeC.Close()
	return ok, failed, errs
}

// excuse: go-redis v9.23.0's handoff worker re-initialises a pooled
// connection (HELLO, CLIENT MAINT_NOTIFICATIONS) while its pool can give
// the connection to a command, so the two read each other's replies (a
// SET answered "server", a key of HELLO's reply). Its pool notices when
// the connection comes back in a state it did not set ("state changed by
// hook"). The load's failures are go-redis's own only when every one
// failed as only a shared connection fails (sharedConnError: another
// command's reply, a short write) and was sent after the MOVING (the
// worker runs only then), and go-redis's pool logged a shared connection
// after the MOVING, at most maxPerSharing failures for each time it did.
func (g *goRedis) excuse(moving time.Time) string {
	failures, n := g.load.failedCommands()
	if n > int64(len(failures)) {
		return ""
	}
	for _, f := range failures {
		if !f.shared || f.start.Before(moving) {
			return ""
		}
	}
	shared := g.log.sharedSince(moving)
	if len(shared) == 0 || n > int64(maxPerSharing*len(shared)) {
		return ""
	}
	return fmt.Sprintf("go-redis v9.23.0's handoff worker shared a connection with a command, as its pool logged: %q", shared)
}

// maxPerSharing bounds the failures excused for each connection go-redis
// logs as shared: a command that reads the handshake's reply leaves its
// own for the next (seen: 2 crossed replies with 2 such lines; 1 short
// write with 1 line).
const maxPerSharing = 2

// poolLog is go-redis's logger during the rehearsal: it prints every line
// as go-redis's default logger does, and records when go-redis's pool
// reports a connection whose state changed while a command held it.
type poolLog struct {
	out *log.Logger

	mu      sync.Mutex
	stopped bool
	shared  []loggedLine
}

type loggedLine struct {
	at   time.Time
	text string
}

// sharedConnLine begins go-redis v9.23.0's pool message (internal/pool/
// pool.go, putConn) for a connection whose state changed while a command
// held it.
const sharedConnLine = "Unexpected conn[%d] state changed by hook"

func (p *poolLog) Printf(_ context.Context, format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	p.out.Print(line)
	if !strings.HasPrefix(format, sharedConnLine) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped {
		p.shared = append(p.shared, loggedLine{at: time.Now(), text: line})
	}
}

// sharedSince returns the lines that reported a shared connection at or
// after t.
func (p *poolLog) sharedSince(t time.Time) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range p.shared {
		if !l.at.Before(t) {
			out = append(out, l.text)
		}
	}
	return out
}

// stopRecording leaves the logger printing only: go-redis keeps it (it has
// no way to restore its default), and later tests' clients log to it.
func (p *poolLog) stopRecording() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
}

// probeErr: the BLPOP's nil reply (nothing to pop) is its success.
func probeErr(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}

// TestRehearsalGoRedis runs go-redis's own handoff worker, which races
// with the pool in v9.23.0: under -race, 1 of 60 runs (-count=20 at -cpu
// 1, 2 and 4) reported a DATA RACE between
// maintnotifications.(*handoffWorkerManager).performHandoffInternal
// re-initialising a connection (initConn → CLIENT MAINT_NOTIFICATIONS)
// and a command of the load reading its reply on the same connection
// (bufio.Reader.Peek in push.(*Processor).processPendingNotifications),
// and 1 more failed 3 commands with i/o timeouts. Without -race the same
// sharing crosses a reply or two in about 1 run of 40 (2 CI runs of 5 on
// 2026-12-07), which go-redis's pool logs; goRedis.excuse accepts those
// failures, and only those. That code is not ours (it is
// why the factory has its own engine), so the race detector is not run on
// it: .ci/run runs this test in a step of its own without -race, and every
// other test here (the factory's client and node-redis's) under -race,
// where no failure is excused.
func TestRehearsalGoRedis(t *testing.T) {
	if raceDetector {
		t.Skip("go-redis v9.23.0's handoff worker races with its pool under -race; .ci/run runs this test without -race")
	}
	rehearse(t, &goRedis{})
}

// factoryClient is the factory's client of a profile with sch enabled.
type factoryClient struct {
	rt        *runtime.Runtime
	c, probeC *factory.Client
	load      *goLoad
}

func (f *factoryClient) build(t *testing.T, addr string, pool int) *factory.Client {
	doc := fmt.Sprintf(`profiles:
  p:
    addr: %s
    protocol: 3
    pool: {size: %d, min_idle: %d}
    timeouts: {socket: 300ms}
    retry: {retries: 0}
    sch: {mode: enabled, relaxed_timeout: 3s, handoff_timeout: 3s}
`, addr, pool, pool)
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("rehearsal.yaml", []byte(doc))}})
	require.NoError(t, err, doc)
	c, err := factory.Build("p", r.Config.Profiles["p"], f.rt, factory.BuildOptions{})
	require.NoError(t, err)
	return c
}

func (f *factoryClient) start(t *testing.T, addr string) int {
	f.rt = runtime.New(runtime.Options{})
	f.c = f.build(t, addr, 8)
	f.probeC = f.build(t, addr, 1)
	f.load = startGoLoad(f.c, 8)
	require.NoError(t, f.probeC.Ping(context.Background()).Err())
	return 9
}

func (f *factoryClient) probe(t *testing.T) error {
	require.NoError(t, f.probeC.Ping(context.Background()).Err())
	return probeErr(f.probeC.Do(context.Background(), "BLPOP", "rehearsal:probe", "0.6").Err())
}

func (f *factoryClient) touch(t *testing.T) {
	require.NoError(t, f.probeC.Ping(context.Background()).Err())
}

func (f *factoryClient) stop(t *testing.T) (int64, int64, []string) {
	ok, failed, errs := f.load.stop()
	_ = f.c.Close()
	_ = f.probeC.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.rt.Close(ctx))
	return ok, failed, errs
}

func TestRehearsalFactory(t *testing.T) { rehearse(t, &factoryClient{}) }

// nodeRedis is node-redis (npm "redis" 6.x) running node/client.js.
type nodeRedis struct {
	n      int
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	events chan map[string]any
	stderr strings.Builder
}

// nodeDir returns the node-redis package directory, installed by .ci/run
// (npm ci); without it the test fails in CI and is skipped elsewhere.
func nodeDir(t *testing.T) string {
	dir, err := filepath.Abs("node")
	require.NoError(t, err)
	_, nodeErr := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "redis", "package.json"))
	if nodeErr != nil || modErr != nil {
		msg := "node or node-redis missing: apt-get install nodejs npm; (cd internal/rehearsal/node && npm ci)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

func (nr *nodeRedis) start(t *testing.T, addr string) int {
	dir := nodeDir(t)
	host, port, _ := strings.Cut(addr, ":")
	nr.cmd = exec.Command("node", "client.js", host, port, strconv.Itoa(nr.n))
	nr.cmd.Dir = dir
	nr.cmd.Stderr = &nr.stderr
	nr.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var err error
	nr.stdin, err = nr.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := nr.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, nr.cmd.Start())
	nr.events = make(chan map[string]any, 16)
	go func() {
		defer close(nr.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				nr.events <- ev
			}
		}
	}()
	ready := nr.next(t, "ready")
	t.Logf("node-redis: %v handshakes with maintNotifications 'enabled', %v refused %v", ready["handshakes"], ready["refused"], ready["refusals"])
	require.EqualValues(t, nr.n, ready["handshakes"], "every node-redis handshake accepted")
	return nr.n
}

func (nr *nodeRedis) next(t *testing.T, event string) map[string]any {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case ev, ok := <-nr.events:
			if !ok {
				t.Fatalf("node client exited before %q: %s", event, nr.stderr.String())
			}
			if ev["event"] == "fatal" {
				t.Fatalf("node client failed: %v", ev["err"])
			}
			if ev["event"] == event {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %q from the node client within 60s: %s", event, nr.stderr.String())
		}
	}
}

func (nr *nodeRedis) probe(t *testing.T) error {
	_, err := io.WriteString(nr.stdin, "probe\n")
	require.NoError(t, err)
	ev := nr.next(t, "probe")
	if ev["ok"] == true {
		return nil
	}
	return errors.New(fmt.Sprint(ev["err"]))
}

// touch: node-redis reads pushes as they arrive, idle or not.
func (nr *nodeRedis) touch(*testing.T) {}

func (nr *nodeRedis) stop(t *testing.T) (int64, int64, []string) {
	_, _ = io.WriteString(nr.stdin, "stop\n")
	ev := nr.next(t, "done")
	_ = nr.stdin.Close()
	require.NoError(t, nr.cmd.Wait(), nr.stderr.String())
	var errs []string
	if list, ok := ev["errors"].([]any); ok {
		for _, e := range list {
			errs = append(errs, fmt.Sprint(e))
		}
	}
	ok, _ := ev["ok"].(float64)
	failed, _ := ev["failed"].(float64)
	return int64(ok), int64(failed), errs
}

// 50 node-redis clients, each one connection, as in issue #12.
func TestRehearsalNodeRedis(t *testing.T) { rehearse(t, &nodeRedis{n: 50}) }

// TestGoRedisExcuse: go-redis's failures are excused only when every one
// got another command's reply, was sent after the MOVING, and go-redis's
// pool logged a shared connection after it, at most maxPerSharing for
// each such line.
func TestGoRedisExcuse(t *testing.T) {
	moving := time.Now()
	after, before := moving.Add(time.Millisecond), moving.Add(-time.Millisecond)
	stateChanged := "Unexpected conn[%d] state changed by hook to %v, pooling as-is"
	crossedReply := fmt.Errorf("%w: reply %q, want %q", errCrossed, "server", "OK")
	parse := fmt.Errorf("redis: can't parse int reply: %q", "$3")
	timeout := &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}
	type logged struct {
		at     time.Time
		format string
	}
	type failed struct {
		start time.Time
		err   error
	}
	for _, tc := range []struct {
		name     string
		failures []failed
		logs     []logged
		excused  bool
	}{
		{"crossed replies after MOVING, a shared connection logged",
			[]failed{{after, crossedReply}, {after, parse}}, []logged{{after, stateChanged}}, true},
		{"a short write",
			[]failed{{after, io.ErrShortWrite}}, []logged{{after, stateChanged}}, true},
		{"a connection reset",
			[]failed{{after, syscall.ECONNRESET}}, []logged{{after, stateChanged}}, false},
		{"nothing logged",
			[]failed{{after, crossedReply}}, nil, false},
		{"only unread data logged",
			[]failed{{after, crossedReply}}, []logged{{after, "Conn has unread data (not push notification), removing it"}}, false},
		{"logged before MOVING only",
			[]failed{{after, crossedReply}}, []logged{{before, stateChanged}}, false},
		{"a command sent before MOVING",
			[]failed{{before, crossedReply}}, []logged{{after, stateChanged}}, false},
		{"a timeout among them",
			[]failed{{after, crossedReply}, {after, timeout}}, []logged{{after, stateChanged}}, false},
		{"more than maxPerSharing per logged line",
			[]failed{{after, crossedReply}, {after, crossedReply}, {after, crossedReply}}, []logged{{after, stateChanged}}, false},
		{"two lines, four crossed replies",
			[]failed{{after, crossedReply}, {after, crossedReply}, {after, crossedReply}, {after, crossedReply}}, []logged{{after, stateChanged}, {after, stateChanged}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &goRedis{load: &goLoad{}, log: &poolLog{out: log.New(io.Discard, "", 0)}}
			for _, f := range tc.failures {
				g.load.failed.Add(1)
				g.load.failures = append(g.load.failures, failure{start: f.start, shared: sharedConnError(f.err)})
			}
			for _, l := range tc.logs {
				g.log.Printf(context.Background(), l.format, 5, "IDLE")
				if n := len(g.log.shared); n > 0 { // as if logged at l.at
					g.log.shared[n-1].at = l.at
				}
			}
			why := g.excuse(moving)
			require.Equal(t, tc.excused, why != "", why)
		})
	}
}
