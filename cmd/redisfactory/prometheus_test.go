package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/promtest"
	"github.com/redisfactory/redisfactory/internal/redistest"
)

// TestPrometheusScrapesWatchAndLoad: a real Prometheus server scrapes
// `redisfactory watch --metrics-addr` and two `redisfactory load
// --metrics-addr` runs (a cached profile, a pipeline.auto one); the metrics
// are read back with PromQL over its HTTP API, as an operator's dashboard
// or alert would.
func TestPrometheusScrapesWatchAndLoad(t *testing.T) {
	promtest.Require(t)
	srv := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	doc := "profiles:\n  app:\n    addr: %[1]s\n    client_name: %[2]s\n  cached:\n    addr: %[1]s\n    cache: {enabled: true, max_entries: 1000}\n" +
		"  auto:\n    addr: %[1]s\n    pipeline: {auto: true}\n"
	path := write(t, dir, "redis.yaml", fmt.Sprintf(doc, srv.Addr(), "v1"))
	save := func(content string) {
		tmp := filepath.Join(dir, ".redis.yaml.tmp")
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	watchAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	loadAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	autoAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	prom := promtest.Start(t, promtest.Options{Targets: []string{watchAddr, loadAddr, autoAddr}, ScrapeInterval: 200 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	saved := watchSignals
	watchSignals = func(context.Context) (context.Context, context.CancelFunc) { return ctx, cancel }
	t.Cleanup(func() { watchSignals = saved })
	var out, errb redistest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run([]string{"watch", "--debounce", "30ms", "--stats", "0", "--metrics-addr", watchAddr, path}, &out, &errb, nil)
	}()
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "watching ") }, 10*time.Second, 5*time.Millisecond, "stderr: %s", errb.String())
	assert.Contains(t, out.String(), "metrics at http://"+watchAddr+"/metrics")

	const wait = 30 * time.Second
	w := fmt.Sprintf(`{instance=%q}`, watchAddr)
	sel := func(name, labels string) string {
		return fmt.Sprintf(`%s{instance=%q%s}`, name, watchAddr, labels)
	}
	equals := func(want float64) func(float64) bool { return func(v float64) bool { return v == want } }
	prom.Eventually(t, "redisfactory_reload_last_successful"+w, wait, equals(1))

	save(fmt.Sprintf(doc, srv.Addr(), "v2")) // applied
	require.Eventually(t, func() bool { return strings.Count(out.String(), "reload.applied") == 1 }, 10*time.Second, 5*time.Millisecond)
	save(fmt.Sprintf(doc, srv.Addr(), "v3") + "    timeouts: {socket: 5}\n") // rejected: no unit
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "reload.rejected") }, 10*time.Second, 5*time.Millisecond)

	prom.Eventually(t, sel("redisfactory_reloads_total", `,result="applied"`), wait, equals(1))
	prom.Eventually(t, sel("redisfactory_reloads_total", `,result="rejected"`), wait, equals(1))
	prom.Eventually(t, "redisfactory_reload_last_successful"+w, wait, equals(0))

	save(fmt.Sprintf(doc, srv.Addr(), "v3")) // the fix
	prom.Eventually(t, "redisfactory_reload_last_successful"+w, wait, equals(1))
	prom.Eventually(t, sel("redisfactory_reloads_total", `,result="applied"`), wait, equals(2))
	v, ok := prom.Query(t, sel("redisfactory_reloads_total", `,result="rejected"`))
	assert.True(t, ok)
	assert.Equal(t, 1.0, v)
	lastOK, _ := prom.Query(t, "redisfactory_reload_last_success_time_seconds"+w)
	assert.InDelta(t, float64(time.Now().Unix()), lastOK, 60)

	// A workload on the cached profile, scraped while it runs: its cache
	// hit ratio, as a dashboard computes it. Beside it, one on the
	// pipeline.auto profile: its engine's sockets and mean batch.
	var lout, lerr, aout, aerr redistest.SyncBuffer
	loadDone, autoDone := make(chan int, 1), make(chan int, 1)
	go func() {
		loadDone <- run([]string{"load", "--profile", "cached", "--duration", "6s", "--keys", "20", "--ratio", "95:5",
			"--concurrency", "4", "--metrics-addr", loadAddr, path}, &lout, &lerr, nil)
	}()
	go func() {
		autoDone <- run([]string{"load", "--profile", "auto", "--duration", "6s", "--keys", "20",
			"--concurrency", "16", "--metrics-addr", autoAddr, path}, &aout, &aerr, nil)
	}()
	l := fmt.Sprintf(`{instance=%q,profile="cached"}`, loadAddr)
	ratio := prom.Eventually(t, "redisfactory_cache_hits_total"+l+" / (redisfactory_cache_hits_total"+l+" + redisfactory_cache_misses_total"+l+")",
		wait, func(v float64) bool { return v > 0.5 })
	assert.LessOrEqual(t, ratio, 1.0)
	t.Logf("cache hit ratio under load, from Prometheus: %.3f", ratio)
	a := fmt.Sprintf(`{instance=%q,profile="auto"}`, autoAddr)
	prom.Eventually(t, "redisfactory_pipeline_sockets"+a, wait, equals(1))
	batch := prom.Eventually(t, "redisfactory_pipeline_commands_total"+a+" / redisfactory_pipeline_writes_total"+a,
		wait, func(v float64) bool { return v >= 1 })
	t.Logf("pipeline.auto mean batch under load, from Prometheus: %.2f", batch)
	prom.Eventually(t, "redisfactory_pipeline_direct_total"+a, wait, func(v float64) bool { return v > 0 })
	assert.Zero(t, prom.Check(t, fmt.Sprintf(`{__name__=~"redisfactory_pipeline_.+",instance=%q}`, loadAddr)),
		"a profile without pipeline.auto has no pipeline series")
	for _, l := range []struct {
		done     chan int
		out, err *redistest.SyncBuffer
		addr     string
	}{{loadDone, &lout, &lerr, loadAddr}, {autoDone, &aout, &aerr, autoAddr}} {
		select {
		case code := <-l.done:
			assert.Equal(t, 0, code, "load stdout:\n%s\nstderr:\n%s", l.out.String(), l.err.String())
		case <-time.After(60 * time.Second):
			t.Fatal("load did not stop")
		}
		assert.Contains(t, l.err.String(), "load: metrics at http://"+l.addr+"/metrics")
	}

	// Prometheus accepts every query of the example Grafana dashboard.
	for _, expr := range dashboardExprs(t) {
		prom.Check(t, expr)
	}

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("watch did not stop")
	}
}
