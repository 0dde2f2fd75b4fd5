// Package promtest runs a real Prometheus server for tests: it scrapes the
// targets it is given and answers PromQL queries over its HTTP API.
//
//	p := promtest.Start(t, promtest.Options{Targets: []string{"127.0.0.1:9464"}})
//	v, ok := p.Query(t, `redisfactory_reloads_total{result="applied"}`)
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

const binary = "prometheus"

// Require skips the test when prometheus is not on PATH, or fails it when
// the environment variable CI is non-empty: CI must never skip it.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(binary); err == nil {
		return
	}
	msg := "promtest: prometheus not found on PATH; install it (apt-get install prometheus) to run this test"
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (CI is set, refusing to skip)")
	}
	t.Skip(msg)
}

// Options configure Start.
type Options struct {
	// Targets are the HOST:PORT addresses scraped at /metrics, as one job.
	Targets []string
	// ScrapeInterval defaults to 200ms.
	ScrapeInterval time.Duration
}

// Server is a running Prometheus. It is stopped when the test ends.
type Server struct {
	URL string // http://127.0.0.1:PORT
}

// Start starts prometheus on a free loopback port with a fresh database and
// waits until it is ready.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = 200 * time.Millisecond
	}
	dir := t.TempDir()
	quoted := make([]string, len(opts.Targets))
	for i, tg := range opts.Targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: redisfactory\n    static_configs:\n      - targets: [%s]\n",
		opts.ScrapeInterval, opts.ScrapeInterval, strings.Join(quoted, ", "))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("promtest: starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("promtest: prometheus log:\n%s", tail(b, 4000))
		}
	})
	s := &Server{URL: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("promtest: prometheus exited:\n%s", tail(b, 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: prometheus not ready on %s after 60s", addr)
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Query evaluates an instant PromQL query and returns the value of its
// single sample; ok is false when the result is empty. More than one
// sample, or an error, fails the test.
func (s *Server) Query(t testing.TB, expr string) (v float64, ok bool) {
	t.Helper()
	v, ok, err := s.query(expr)
	if err != nil {
		t.Fatalf("promtest: %s: %v", expr, err)
	}
	return v, ok
}

// Check evaluates expr and fails the test if Prometheus refuses it (a
// syntax error, an unknown function); it returns the number of samples.
func (s *Server) Check(t testing.TB, expr string) int {
	t.Helper()
	vs, err := s.samples(expr)
	if err != nil {
		t.Fatalf("promtest: %s: %v", expr, err)
	}
	return len(vs)
}

// query returns the value of the single sample of expr.
func (s *Server) query(expr string) (float64, bool, error) {
	vs, err := s.samples(expr)
	switch {
	case err != nil:
		return 0, false, err
	case len(vs) == 0:
		return 0, false, nil
	case len(vs) > 1:
		return 0, false, fmt.Errorf("%d samples, want one", len(vs))
	}
	return vs[0], true, nil
}

// samples evaluates an instant query and returns its sample values.
func (s *Server) samples(expr string) ([]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", body, err)
	}
	if r.Status != "success" {
		return nil, errors.New(r.Error)
	}
	out := make([]float64, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		str, _ := res.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("sample value %q: %w", str, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Eventually polls expr until cond accepts its value, and returns that
// value; it fails the test after timeout with the last value seen.
func (s *Server) Eventually(t testing.TB, expr string, timeout time.Duration, cond func(v float64) bool) float64 {
	t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for {
		v, ok, err := s.query(expr)
		switch {
		case err != nil:
			last = "error: " + err.Error()
		case !ok:
			last = "no sample"
		default:
			if cond(v) {
				return v
			}
			last = strconv.FormatFloat(v, 'g', -1, 64)
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest: %s: condition not met within %s; last: %s", expr, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
