package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redisfactory/redisfactory/runtime"
)

func ExampleNew() {
	rt := runtime.New(runtime.Options{}) // discarding logger, real clock

	// Factories register themselves; they are closed in reverse order.
	rt.OnClose("factory(sessions)", func(ctx context.Context) error {
		fmt.Println("closing factory(sessions)")
		return nil
	})
	rt.OnClose("factory(cache)", func(ctx context.Context) error {
		fmt.Println("closing factory(cache)")
		return nil
	})
	rt.Go("watcher", func(ctx context.Context) {
		<-ctx.Done() // cancelled by Close
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		fmt.Println("close:", err)
	}
	fmt.Println("closed:", rt.Closed())
	// Output:
	// closing factory(cache)
	// closing factory(sessions)
	// closed: true
}

func ExampleBus_Subscribe() {
	clk := runtime.NewManualClock(time.Date(2025, 1, 1, 12, 0, 1, 234_000_000, time.UTC))
	rt := runtime.New(runtime.Options{Clock: clk})
	defer rt.Close(context.Background())
	bus := rt.Events()

	sub := bus.Subscribe(runtime.WithKinds(runtime.RetryAttempted, runtime.RetryExhausted))
	defer sub.Close()

	bus.Publish(runtime.Event{Kind: runtime.ClientBuilt, Profile: "sessions"})
	bus.Publish(runtime.Event{
		Kind:    runtime.RetryAttempted,
		Profile: "sessions",
		Attempt: 2,
		Delay:   20 * time.Millisecond,
		Class:   "connection",
		Command: "get",
		Err:     errors.New("read: i/o timeout"),
	})

	fmt.Println(<-sub.C())
	fmt.Println("client.built:", bus.Count(runtime.ClientBuilt), "dropped:", sub.Dropped())
	// Output:
	// 12:00:01.234 retry.attempted profile=sessions attempt=2 delay=20ms class=connection cmd=get err="read: i/o timeout"
	// client.built: 1 dropped: 0
}

func ExampleManualClock() {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := runtime.NewManualClock(start)
	rt := runtime.New(runtime.Options{Clock: clk})

	defer rt.Close(context.Background())

	// Background work runs when the test moves the clock.
	probed := make(chan struct{})
	stop := rt.Every("health-probe(sessions)", 10*time.Second, func(ctx context.Context) {
		fmt.Println("probe at", clk.Since(start))
		probed <- struct{}{}
	})
	clk.Advance(10 * time.Second)
	<-probed
	clk.Advance(10 * time.Second)
	<-probed
	stop()

	// Wait until a goroutine sleeps on the clock, then wake it up.
	woke := make(chan error)
	go func() { woke <- clk.Sleep(context.Background(), time.Minute) }()
	clk.BlockUntil(1)
	clk.Advance(time.Minute)
	fmt.Println("sleep:", <-woke, "now:", clk.Since(start))
	// Output:
	// probe at 10s
	// probe at 20s
	// sleep: <nil> now: 1m20s
}
