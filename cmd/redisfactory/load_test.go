package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/loadgen"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// loadReport is the part of load's JSON report the tests read.
type loadReport struct {
	Profile         string            `json:"profile"`
	Interrupted     bool              `json:"interrupted"`
	Ops             uint64            `json:"ops"`
	Reads           uint64            `json:"reads"`
	Writes          uint64            `json:"writes"`
	Failures        uint64            `json:"failures"`
	FailuresByClass map[string]uint64 `json:"failures_by_class"`
	Errors          map[string]string `json:"errors"`
	Retries         loadgen.Retries   `json:"retries"`
	Latency         loadgen.Latency   `json:"latency"`
}

func decodeLoad(t *testing.T, r result) loadReport {
	t.Helper()
	var rep loadReport
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r)
	return rep
}

func TestLoadLiveServer(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf("profiles:\n  app:\n    addr: %s\n", srv.Addr()))

	r := runCLI(t, nil, "load", "--profile", "app", "--duration", "1s", "--concurrency", "4", "--keys", "50", "--format", "json", cfg)
	require.Equal(t, exitOK, r.code, r)
	rep := decodeLoad(t, r)
	require.Equal(t, "app", rep.Profile)
	require.False(t, rep.Interrupted)
	require.Positive(t, rep.Ops)
	require.Equal(t, rep.Ops, rep.Reads+rep.Writes)
	require.Positive(t, rep.Reads)
	require.Positive(t, rep.Writes)
	require.Zero(t, rep.Failures, r)
	require.Empty(t, rep.FailuresByClass)
	l := rep.Latency
	require.Positive(t, l.P50)
	require.LessOrEqual(t, l.P50, l.P99)
	require.LessOrEqual(t, l.P99, l.Max)
	require.Contains(t, r.stderr, "load: profile app, 4 workers, reads:writes 80:20, 50 keys, for 1s")
	// Only the workload's key space was written.
	n, err := srv.Client(t).DBSize(context.Background()).Result()
	require.NoError(t, err)
	require.LessOrEqual(t, n, int64(50))

	// The text report.
	r = runCLI(t, nil, "load", cfg, "--profile=app", "--duration=200ms", "--ratio", "0:1")
	require.Equal(t, exitOK, r.code, r)
	require.Regexp(t, `(?m)^operations\s+\d+ \(\d+ ops/s\)$`, r.stdout)
	require.Regexp(t, `(?m)^reads\s+0 \(hits 0, misses 0\)$`, r.stdout)
	require.Regexp(t, `(?m)^failures\s+0$`, r.stdout)
	require.Regexp(t, `(?m)^retries\s+attempted 0, exhausted 0, throttled 0$`, r.stdout)
	require.Regexp(t, `(?m)^latency\s+p50 \S+, p90 \S+, p99 \S+, max \S+ \(mean \S+\)$`, r.stdout)
}

func TestLoadUsageErrors(t *testing.T) {
	cfg := write(t, t.TempDir(), "redis.yaml", validYAML)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{cfg}, "missing --profile"},
		{[]string{"--profile", "sessions"}, "missing PATH"},
		{[]string{"--profile", "sessions", "--ratio", "80/20", cfg}, "--ratio: want READS:WRITES"},
		{[]string{"--profile", "sessions", "--ratio", "0:0", cfg}, "must not both be 0"},
		{[]string{"--profile", "sessions", "--concurrency", "0", cfg}, "--concurrency must be at least 1"},
		{[]string{"--profile", "sessions", "--duration", "0s", cfg}, "--duration must be positive"},
		{[]string{"--profile", "sessions", "--keys", "0", cfg}, "--keys must be at least 1"},
		{[]string{"--profile", "sesions", cfg}, `no profile "sesions" (did you mean "sessions"?)`},
	} {
		r := runCLI(t, nil, append([]string{"load"}, tc.args...)...)
		require.Equal(t, exitUsage, r.code, "%v\n%s", tc.args, r)
		require.Contains(t, r.stderr, tc.want, tc.args)
	}
	bad := write(t, t.TempDir(), "bad.yaml", invalidYAML)
	r := runCLI(t, nil, "load", "--profile", "sessions", bad)
	require.Equal(t, exitFailed, r.code, r)
	require.Contains(t, r.stderr, "invalid configuration")
}

// loadAcrossRestart runs load with the profile body until the server has
// been killed and restarted under it and the workload has written to the
// restarted server, then interrupts it (as Ctrl-C would) and returns what
// load printed.
func loadAcrossRestart(t *testing.T, profile string) result {
	srv := redistest.Start(t, redistest.Options{})
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf("profiles:\n  app:\n    addr: %s\n%s", srv.Addr(), profile))

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	saved := loadSignals
	loadSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
		return context.WithCancel(ctx)
	}
	t.Cleanup(func() { loadSignals = saved })

	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := run([]string{"load", "--profile", "app", "--duration", "60s", "--concurrency", "4", "--ratio", "50:50", "--format", "json", cfg}, &out, &errb, nil)
		done <- result{code, out.String(), errb.String()}
	}()
	// writes polls until the workload has written to the server.
	writes := func(what string) {
		t.Helper()
		admin := srv.Client(t)
		require.Eventually(t, func() bool {
			n, err := admin.DBSize(context.Background()).Result()
			return err == nil && n > 0
		}, 10*time.Second, 10*time.Millisecond, what)
	}
	writes("load did not write before the restart")
	srv.Kill()
	srv.Restart(t) // same port, empty data set (no persistence)
	writes("load did not write to the restarted server")
	interrupt()
	select {
	case r := <-done:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("load did not stop after the interruption")
		return result{}
	}
}

// The user story: in staging, see whether the profile's policy survives a
// server restart.
func TestLoadSurvivesRestartWithRetries(t *testing.T) {
	r := loadAcrossRestart(t, `    timeouts: {connect: 1s, socket: 1s}
    retry:
      retries: 50
      backoff: {strategy: constant, base: 100ms, cap: 100ms}
`)
	require.Equal(t, exitOK, r.code, r)
	rep := decodeLoad(t, r)
	require.True(t, rep.Interrupted)
	require.Positive(t, rep.Ops)
	require.Zero(t, rep.Failures, r)
	require.Positive(t, rep.Retries.Attempted, r)
	require.Zero(t, rep.Retries.Exhausted, r)
	require.LessOrEqual(t, rep.Latency.P50, rep.Latency.P99)
	require.LessOrEqual(t, rep.Latency.P99, rep.Latency.Max)
	require.GreaterOrEqual(t, rep.Latency.Max, 10*time.Millisecond, "some operation waited out the restart")
}

func TestLoadFailsAcrossRestartWithoutRetries(t *testing.T) {
	r := loadAcrossRestart(t, `    timeouts: {connect: 1s, socket: 1s}
    retry: {retries: 0}
`)
	require.Equal(t, exitFailed, r.code, r)
	rep := decodeLoad(t, r)
	require.Positive(t, rep.Failures, r)
	require.Equal(t, map[string]uint64{"connection": rep.Failures}, rep.FailuresByClass, r)
	require.NotEmpty(t, rep.Errors["connection"])
	require.Zero(t, rep.Retries.Attempted)
	require.Contains(t, r.stderr, "load failed: ")
}

// TestLoadWatchAppliesReloadsDuringTheRun: with --watch, an edit that moves
// the profile to another server is applied mid-run through the handle (the
// new server receives the writes), an invalid edit is rejected, no
// operation fails, and the report counts both reloads.
func TestLoadWatchAppliesReloadsDuringTheRun(t *testing.T) {
	a := redistest.Start(t, redistest.Options{})
	b := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	doc := func(addr, extra string) string {
		return fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    retry: {retries: 5}\n%s", addr, extra)
	}
	cfg := write(t, dir, "redis.yaml", doc(a.Addr(), ""))
	save := func(content string) {
		tmp := filepath.Join(dir, ".tmp")
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
		require.NoError(t, os.Rename(tmp, cfg))
	}

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	saved := loadSignals
	loadSignals = func(context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) }
	t.Cleanup(func() { loadSignals = saved })
	done := make(chan result, 1)
	var errb redistest.SyncBuffer
	go func() {
		var out bytes.Buffer
		code := run([]string{"load", "--watch", "--profile", "app", "--duration", "60s", "--concurrency", "4", "--ratio", "50:50", "--format", "json", cfg}, &out, &errb, nil)
		done <- result{code, out.String(), errb.String()}
	}()
	hasKeys := func(s *redistest.Server) func() bool {
		admin := s.Client(t)
		return func() bool { n, err := admin.DBSize(context.Background()).Result(); return err == nil && n > 0 }
	}
	require.Eventually(t, hasKeys(a), 10*time.Second, 10*time.Millisecond, "load writes to the first server")
	save(doc(b.Addr(), ""))
	require.Eventually(t, hasKeys(b), 10*time.Second, 10*time.Millisecond, "after the reload, load writes to the second server")
	save(doc(b.Addr(), "    timeouts: {socket: 5}\n"))
	require.Eventually(t, func() bool { return strings.Contains(errb.String(), "reload.rejected") }, 10*time.Second, 10*time.Millisecond,
		"load prints each reload on stderr")
	interrupt()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("load did not stop")
	}
	require.Equal(t, exitOK, r.code, r)
	var rep loadJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	require.NotNil(t, rep.Reloads)
	assert.Equal(t, uint64(1), rep.Reloads.Applied)
	assert.Equal(t, uint64(1), rep.Reloads.Rejected)
	assert.Zero(t, rep.Failures)
}

// TestLoadVerifyWithClientSideCache: every read of a cached profile is
// checked against the worker's own last write; none is stale, and the
// report shows the cache at work.
func TestLoadVerifyWithClientSideCache(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf("profiles:\n  app:\n    addr: %s\n    cache:\n      enabled: true\n", srv.Addr()))
	r := runCLI(t, nil, "load", "--verify", "--profile", "app", "--duration", "1s", "--concurrency", "4", "--keys", "40", "--ratio", "80:20", "--format", "json", cfg)
	require.Equal(t, exitOK, r.code, r)
	var rep loadJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
	assert.Zero(t, rep.Failures, "no stale read")
	assert.Positive(t, rep.Reads)
	require.NotNil(t, rep.Cache, "a profile with the cache on reports its stats")
	assert.Positive(t, rep.Cache.Hits)

	r = runCLI(t, nil, "load", "--verify", "--profile", "app", "--duration", "200ms", cfg)
	require.Equal(t, exitOK, r.code, r)
	assert.Regexp(t, `(?m)^cache\s+hits \d+, misses \d+ \(hit ratio`, r.stdout)
}

// TestLoadReportsThePipeliningEngine: a profile with pipeline.auto runs the
// workload through the factory's engine, and the report shows it (one
// socket by default, batches of concurrent workers' commands); a profile
// without it reports no pipeline.
func TestLoadReportsThePipeliningEngine(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := write(t, t.TempDir(), "redis.yaml", fmt.Sprintf("profiles:\n  auto:\n    addr: %[1]s\n    pipeline: {auto: true}\n  app:\n    addr: %[1]s\n", srv.Addr()))
	for _, watch := range []bool{false, true} {
		args := []string{"load", "--profile", "auto", "--duration", "500ms", "--concurrency", "16", "--keys", "50", "--format", "json", cfg}
		if watch {
			args = append(args, "--watch")
		}
		r := runCLI(t, nil, args...)
		require.Equal(t, exitOK, r.code, r)
		var rep loadJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &rep), r.stdout)
		require.NotNil(t, rep.Pipeline, "--watch %v: a pipeline.auto profile reports its engine\n%s", watch, r.stdout)
		p := rep.Pipeline
		assert.Equal(t, 1, p.Sockets, "--watch %v: one socket by default", watch)
		assert.Positive(t, p.Writes, "--watch %v", watch)
		assert.GreaterOrEqual(t, p.Commands, rep.Ops, "--watch %v: every operation of the workload went through the engine", watch)
		assert.InDelta(t, float64(p.Commands)/float64(p.Writes), p.MeanBatch, 1e-9)
		assert.GreaterOrEqual(t, p.MeanBatch, 1.0)
		assert.LessOrEqual(t, p.Direct, p.Commands, "--watch %v", watch)
	}

	r := runCLI(t, nil, "load", "--profile", "auto", "--duration", "200ms", "--concurrency", "4", cfg)
	require.Equal(t, exitOK, r.code, r)
	assert.Regexp(t, `(?m)^pipeline\s+sockets 1, writes [1-9]\d*, commands [1-9]\d* \(mean batch \d+\.\d\d\), direct [1-9]\d*$`, r.stdout)

	r = runCLI(t, nil, "load", "--profile", "app", "--duration", "200ms", "--format", "json", cfg)
	require.Equal(t, exitOK, r.code, r)
	assert.NotContains(t, r.stdout, `"pipeline"`, "a profile without pipeline.auto reports no pipeline")
	r = runCLI(t, nil, "load", "--profile", "app", "--duration", "200ms", cfg)
	require.Equal(t, exitOK, r.code, r)
	assert.NotRegexp(t, `(?m)^pipeline`, r.stdout)
}
