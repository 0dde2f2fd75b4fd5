package factory_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
)

// ExampleOptions_onBuild attaches OpenTelemetry tracing and metrics
// (redisotel) to every client the factory builds. OnBuild runs for each
// profile before its client is handed out, so no command escapes the
// instrumentation; an error from it fails factory.New.
//
// The providers here are no-ops so that the example runs without a
// collector; pass the application's otel.GetTracerProvider() and
// otel.GetMeterProvider() (or set them globally and drop the options).
// Building does not connect, so it runs without a server too.
//
// The factory's retry hook is installed before OnBuild runs, so it is the
// outer hook: each try of a retried command is a span of its own.
func ExampleOptions_onBuild() {
	const doc = `
defaults:
  addr: 127.0.0.1:6379
  health_check_interval: 3s
profiles:
  sessions:
    db: 1
  cache:
    db: 2
`
	res, err := profiles.Load(profiles.Options{
		Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte(doc))},
	})
	if err != nil {
		log.Fatal(err)
	}

	tp := tracenoop.NewTracerProvider()
	mp := metricnoop.NewMeterProvider()
	f, err := factory.New(res.Config, factory.Options{
		OnBuild: func(profile string, c redis.UniversalClient) error {
			// Label spans and pool metrics with the profile, not only the
			// address: two profiles may point at the same server.
			if err := redisotel.InstrumentTracing(c,
				redisotel.WithTracerProvider(tp),
				redisotel.WithAttributes(attribute.String("redisfactory.profile", profile)),
			); err != nil {
				return err
			}
			if err := redisotel.InstrumentMetrics(c,
				redisotel.WithMeterProvider(mp),
				redisotel.WithPoolName(profile),
			); err != nil {
				return err
			}
			fmt.Println("instrumented", profile)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close(context.Background())

	rdb, err := f.Client("sessions")
	if err != nil {
		log.Fatal(err)
	}
	_ = rdb // rdb.Get(ctx, "k") now emits a span and records its duration
	// Output:
	// instrumented cache
	// instrumented sessions
}
