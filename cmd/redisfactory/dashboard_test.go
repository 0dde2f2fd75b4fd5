package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
)

const dashboardPath = "../../examples/grafana/redisfactory.json"

// dashboardExprs returns the PromQL of every panel of the example Grafana
// dashboard, with its variables replaced so that Prometheus can run it.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	require.NoError(t, err)
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(b, &d))
	vars := strings.NewReplacer("$job", ".*", "$instance", ".*", "$profile", ".*", "$__rate_interval", "1m")
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, vars.Replace(tg.Expr))
		}
	}
	require.Greater(t, len(out), 15)
	return out
}

// Every metric the dashboard queries is one the exporter serves: a
// renamed instrument fails here, not on an operator's empty panel.
func TestGrafanaDashboardQueriesExistingMetrics(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	res, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml",
		[]byte(fmt.Sprintf("profiles:\n  cached:\n    addr: %s\n    cache: {enabled: true}\n", srv.Addr())))}})
	require.NoError(t, err)
	rt := runtime.New(runtime.Options{DiscardLogs: true})
	f, err := factory.New(res.Config, factory.Options{Runtime: rt})
	require.NoError(t, err)
	ms, err := serveMetrics("127.0.0.1:0", rt, f)
	require.NoError(t, err)
	defer func() {
		require.NoError(t, ms.close())
		require.NoError(t, f.Close(context.Background()))
		require.NoError(t, rt.Close(context.Background()))
	}()
	// The event-fed series appear with their first event.
	for _, k := range []runtime.Kind{runtime.ReloadApplied, runtime.RetryAttempted, runtime.RetryExhausted, runtime.RetryThrottled,
		runtime.HandoffStarted, runtime.HandoffFailed} {
		rt.Events().Publish(runtime.Event{Kind: k, Profile: "cached", Class: "timeout"})
	}
	rt.Events().Publish(runtime.Event{Kind: runtime.HandoffCompleted, Profile: "cached", Attrs: []slog.Attr{slog.Duration("took", time.Millisecond)}})

	metricName := regexp.MustCompile(`redisfactory_[a-z_]+`)
	want := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		for _, n := range metricName.FindAllString(e, -1) {
			want[n] = true
		}
	}
	var missing []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + ms.addr + "/metrics")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		require.NoError(t, err)
		served := map[string]bool{}
		for _, line := range strings.Split(string(body), "\n") {
			if n := metricName.FindString(line); n != "" && !strings.HasPrefix(line, "#") {
				served[n] = true
			}
		}
		missing = missing[:0]
		for n := range want {
			if !served[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "the dashboard queries metrics the exporter does not serve")
}
