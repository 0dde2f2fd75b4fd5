package retry_test

import (
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/schema"
)

func ExampleNewPolicy() {
	p := &schema.Profile{
		Mode: schema.Standalone,
		Addr: "localhost:6379",
		Retry: schema.Retry{
			Retries: 3,
			Backoff: schema.Backoff{Strategy: schema.BackoffExponentialJitter, Base: 10 * time.Millisecond, Cap: time.Second},
			AlsoOn:  []errclass.Class{errclass.BusyLoading},
			Budget:  schema.Budget{MaxTokens: 10, TokenRatio: 0.1},
		},
	}
	pol := retry.NewPolicy(p, retry.Options{
		Observer: func(e retry.Event) {
			fmt.Printf("%s %s try %d (%s)\n", e.Kind, e.Command, e.Attempt, e.Class)
		},
	})
	rdb := redis.NewClient(&redis.Options{
		Addr:       p.Addr,
		MaxRetries: -1, // the policy does the retrying
	})
	defer rdb.Close()
	rdb.AddHook(pol.Hook())

	fmt.Println(pol.Retries(), pol.Classes())
	// Output: 3 [connection timeout busy_loading]
}

func ExampleStrategy_Delay() {
	s := retry.NewStrategy(schema.Backoff{Strategy: schema.BackoffDecorrelatedJitter, Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond})
	var prev time.Duration // per command, 0 at its start
	for failure := 1; failure <= 4; failure++ {
		prev = s.Delay(failure, prev, 0.5) // a fixed draw, for the example
		fmt.Println(prev)
	}
	// Output:
	// 10ms
	// 20ms
	// 35ms
	// 57.5ms
}

func ExampleIsIdempotent() {
	fmt.Println(retry.IsIdempotent([]any{"set", "k", "v", "ex", 60}))
	fmt.Println(retry.IsIdempotent([]any{"set", "lock", "token", "nx", "px", 30000}))
	fmt.Println(retry.IsIdempotent([]any{"incr", "counter"}))
	// Output:
	// true
	// false
	// false
}

func ExampleBudget() {
	b := retry.NewBudget(schema.Budget{MaxTokens: 4, TokenRatio: 0.5})
	fmt.Println(b.Failure(), b.Tokens()) // 3 > 2: retry
	fmt.Println(b.Failure(), b.Tokens()) // 2 is not > 2: no retry
	b.Success()
	b.Success()
	fmt.Println(b.Allowed(), b.Tokens())
	// Output:
	// true 3
	// false 2
	// true 3
}
