package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
)

// readmeMetrics returns the metrics of the README's table (section
// "### Metrics") with the label names of each. A cell's "…_misses_total"
// continues the first name of the cell: its first two words
// ("redisfactory_cache") and the rest.
func readmeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	s := string(b)
	i := strings.Index(s, "\n### Metrics\n")
	require.GreaterOrEqual(t, i, 0, "README.md has a section '### Metrics'")
	s = s[i:]
	s = s[strings.Index(s, "\n| Metric |"):]
	out := map[string][]string{}
	name := regexp.MustCompile("`([a-z_…]+)`")
	for _, line := range strings.Split(s, "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			if len(out) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cells), 4, "README.md metrics row %q", line)
		if strings.HasPrefix(cells[1], "---") {
			continue
		}
		var labels []string
		for _, m := range name.FindAllStringSubmatch(cells[2], -1) {
			labels = append(labels, m[1])
		}
		sort.Strings(labels)
		stem := ""
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			n := m[1]
			if rest, ok := strings.CutPrefix(n, "…"); ok {
				require.NotEmpty(t, stem, "README.md metrics row %q: %s continues no name", line, n)
				n = stem + rest
			} else {
				parts := strings.SplitN(n, "_", 3)
				stem = parts[0] + "_" + parts[1]
			}
			out[n] = labels
		}
	}
	require.Greater(t, len(out), 20, "the README's metrics table")
	return out
}

// served returns the metric families /metrics shows (a histogram's
// _bucket, _sum and _count as its base name), the label names of each
// (le left out) and the value of each unlabelled sample.
func served(t *testing.T, addr string) (labels map[string][]string, values map[string]float64) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	labels, values = map[string][]string{}, map[string]float64{}
	hist := map[string]bool{}
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && f[3] == "histogram" {
			hist[f[2]] = true
		}
		m := sample.FindStringSubmatch(line)
		if m == nil || strings.HasPrefix(line, "#") {
			continue
		}
		n := m[1]
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && hist[base] {
				n = base
			}
		}
		var ls []string
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" {
				ls = append(ls, l[1])
			}
		}
		sort.Strings(ls)
		labels[n] = ls
		if m[2] == "" {
			v, err := strconv.ParseFloat(m[3], 64)
			require.NoError(t, err, line)
			values[n] = v
		}
	}
	return labels, values
}

// The README's metrics table is what the exporter serves: after every code
// path that feeds a metric has run, each metric of the table is served
// with the labels the table gives it, and every metric served is in the
// table.
func TestREADMEMetricsTableIsWhatIsServed(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	down := redistest.FreePort(t) // nothing listens there
	doc := `profiles:
  app:
    addr: %[1]s
    client_name: %[3]s
    health_check_interval: 1ms
  cached:
    addr: %[1]s
    cache: {enabled: true}
  auto:
    addr: %[1]s
    pipeline: {auto: true}
  down:
    addr: 127.0.0.1:%[2]d
    timeouts: {connect: 200ms}
    retry:
      retries: 1
      backoff: {strategy: none}
`
	load := func(v string) *profiles.Result {
		res, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte(fmt.Sprintf(doc, srv.Addr(), down, v)))}})
		require.NoError(t, err)
		return res
	}
	ctx := context.Background()
	rt := runtime.New(runtime.Options{DiscardLogs: true})
	f, err := factory.New(load("v1").Config, factory.Options{Runtime: rt})
	require.NoError(t, err)
	ms, err := serveMetrics("127.0.0.1:0", rt, f)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, ms.close())
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.Close(cctx))
		require.NoError(t, rt.Close(cctx))
	})

	// Reloads: one applied, then one rejected.
	require.NoError(t, f.Apply(ctx, load("v2").Config).Err)
	_, err = profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte("profiles:\n  app:\n    timeouts: {socket: 5}\n"))}})
	require.Error(t, err)
	f.Reject(err)
	// Retries attempted and exhausted: a command on a profile whose server
	// is down. Throttled retries and handoffs need a budget run dry and a
	// MOVING notification (tested in package factory): their events are
	// published here.
	c, err := f.Client("down")
	require.NoError(t, err)
	require.Error(t, c.Get(ctx, "k").Err())
	bus := rt.Events()
	bus.Publish(runtime.Event{Kind: runtime.RetryThrottled, Profile: "down", Class: "connection"})
	bus.Publish(runtime.Event{Kind: runtime.HandoffStarted, Profile: "app"})
	bus.Publish(runtime.Event{Kind: runtime.HandoffCompleted, Profile: "app", Attrs: []slog.Attr{slog.Duration("took", 5*time.Millisecond)}})
	bus.Publish(runtime.Event{Kind: runtime.HandoffFailed, Profile: "app", Err: errors.New("dial: refused")})
	// Health checks and the pool: a command, an idle pause, another one.
	app, err := f.Client("app")
	require.NoError(t, err)
	require.NoError(t, app.Set(ctx, "k", "v", 0).Err())
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, app.Get(ctx, "k").Err())
	// The pipelining engine: a command through the handle of a profile
	// with pipeline.auto.
	auto, err := f.Client("auto")
	require.NoError(t, err)
	require.NoError(t, auto.Get(ctx, "k").Err())
	// The cache: reads until one hits.
	cached, err := f.Client("cached")
	require.NoError(t, err)
	redistest.Eventually(t, 10*time.Second, "a cache hit", func() bool {
		require.NoError(t, cached.Get(ctx, "k").Err())
		cl, err := f.Lookup("cached")
		require.NoError(t, err)
		s, _ := cl.CacheStats()
		return s.Hits > 0
	})

	want := readmeMetrics(t)
	var labels map[string][]string
	var values map[string]float64
	redistest.Eventually(t, 10*time.Second, "every event counted", func() bool {
		labels, values = served(t, ms.addr)
		_, throttled := labels["redisfactory_retries_throttled_total"]
		_, failed := labels["redisfactory_handoffs_failed_total"]
		_, rejected := values["redisfactory_reload_last_successful"]
		return throttled && failed && rejected && values["redisfactory_reload_last_successful"] == 0
	})
	for n, ls := range want {
		got, ok := labels[n]
		if assert.True(t, ok, "the README lists %s, which is not served", n) {
			assert.Equal(t, ls, got, "the labels of %s", n)
		}
	}
	for n := range labels {
		if strings.HasPrefix(n, "redisfactory_") {
			_, ok := want[n]
			assert.True(t, ok, "%s is served but not in the README's table", n)
		}
	}

	// The reload gauges: the rejected reload came last.
	now := float64(time.Now().Unix())
	assert.Equal(t, 0.0, values["redisfactory_reload_last_successful"])
	assert.InDelta(t, now, values["redisfactory_reload_last_time_seconds"], 60, "the time of the last reload")
	assert.InDelta(t, now, values["redisfactory_reload_last_success_time_seconds"], 60, "the time of the last applied one")
	assert.GreaterOrEqual(t, values["redisfactory_reload_last_time_seconds"], values["redisfactory_reload_last_success_time_seconds"],
		"the last reload (rejected) is not older than the last successful one")
}
