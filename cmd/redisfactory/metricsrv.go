package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redisfactory/redisfactory/metrics"
	"github.com/redisfactory/redisfactory/runtime"
)

// metricsServer serves a runtime's and a factory's metrics (package
// metrics) at /metrics in Prometheus's text format: the OpenTelemetry SDK
// with its Prometheus exporter, on a registry of its own. Only the CLI
// links the SDK; the library uses the metric API alone.
type metricsServer struct {
	addr string // the address actually bound (HOST:0 picks a port)
	srv  *http.Server
	m    *metrics.Metrics
	mp   *sdkmetric.MeterProvider
	done chan error
}

// serveMetrics starts serving on addr (HOST:PORT).
func serveMetrics(addr string, rt *runtime.Runtime, src metrics.Source) (*metricsServer, error) {
	reg := promclient.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	m, err := metrics.New(rt, metrics.Options{MeterProvider: mp})
	if err != nil {
		_ = mp.Shutdown(context.Background())
		return nil, err
	}
	m.Observe(src)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = m.Close()
		_ = mp.Shutdown(context.Background())
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s := &metricsServer{
		addr: ln.Addr().String(),
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		m:    m, mp: mp, done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// close stops the server and the instruments.
func (s *metricsServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return errors.Join(err, s.m.Close(), s.mp.Shutdown(ctx))
}
