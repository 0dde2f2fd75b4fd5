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
// `redisfactory watch --metrics-addr` and `redisfactory load
// --metrics-addr`; the metrics are read back with PromQL over its HTTP
// API, as an operator's dashboard or alert would.
func TestPrometheusScrapesWatchAndLoad(t *testing.T) {
	promtest.Require(t)
	srv := redistest.Start(t, redistest.Options{})
	dir := t.TempDir()
	doc := "profiles:\n  app:\n    addr: %[1]s\n    client_name: %[2]s\n  cached:\n    addr: %[1]s\n    cache: {enabled: true, max_entries: 1000}\n"
	path := write(t, dir, "redis.yaml", fmt.Sprintf(doc, srv.Addr(), "v1"))
	save := func(content string) {
		tmp := filepath.Join(dir, ".redis.yaml.tmp")
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
		require.NoError(t, os.Rename(tmp, path))
	}
	watchAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	loadAddr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	prom := promtest.Start(t, promtest.Options{Targets: []string{watchAddr, loadAddr}, ScrapeInterval: 200 * time.Millisecond})

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
	// hit ratio, as a dashboard computes it.
	var lout, lerr redistest.SyncBuffer
	loadDone := make(chan int, 1)
	go func() {
		loadDone <- run([]string{"load", "--profile", "cached", "--duration", "6s", "--keys", "20", "--ratio", "95:5",
			"--concurrency", "4", "--metrics-addr", loadAddr, path}, &lout, &lerr, nil)
	}()
	l := fmt.Sprintf(`{instance=%q,profile="cached"}`, loadAddr)
	ratio := prom.Eventually(t, "redisfactory_cache_hits_total"+l+" / (redisfactory_cache_hits_total"+l+" + redisfactory_cache_misses_total"+l+")",
		wait, func(v float64) bool { return v > 0.5 })
	assert.LessOrEqual(t, ratio, 1.0)
	t.Logf("cache hit ratio under load, from Prometheus: %.3f", ratio)
	select {
	case code := <-loadDone:
		assert.Equal(t, 0, code, "load stdout:\n%s\nstderr:\n%s", lout.String(), lerr.String())
	case <-time.After(60 * time.Second):
		t.Fatal("load did not stop")
	}
	assert.Contains(t, lerr.String(), "load: metrics at http://"+loadAddr+"/metrics")

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
