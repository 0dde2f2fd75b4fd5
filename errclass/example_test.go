package errclass_test

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
)

// Decide what to do with an error from a factory client by its class.
func ExampleOf() {
	err := fmt.Errorf("load session: %w", context.DeadlineExceeded)
	switch errclass.Of(err) {
	case errclass.Timeout, errclass.Connection:
		fmt.Println("transient: serve from the fallback")
	case errclass.Auth, errclass.Permission:
		fmt.Println("misconfigured: alert")
	default:
		fmt.Println("other:", errclass.Of(err))
	}
	fmt.Println(errclass.Of(redis.Nil), errclass.IsTimeout(err))
	// Output:
	// transient: serve from the fallback
	// nil true
}

func ExampleParse() {
	_, err := errclass.Parse("conection")
	fmt.Println(err)
	// Output: unknown error class "conection" (did you mean "connection"?)
}
