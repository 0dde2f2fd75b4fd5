package sch_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/redisfactory/redisfactory/sch"
)

// ExampleProxy rehearses a maintenance against an open-source Redis
// server: point a profile's addr at the proxy (with sch.mode auto or
// enabled and protocol 3), drive traffic, then announce a MOVING to a
// second proxy in front of the new endpoint and wait for the clients to
// move. It needs servers on the given addresses, so it is compiled, not
// run.
func ExampleProxy() {
	old := sch.NewProxy("127.0.0.1:6390", "127.0.0.1:6379")
	if err := old.Start(); err != nil {
		log.Fatal(err)
	}
	defer old.Close()
	next := sch.NewProxy("127.0.0.1:6391", "127.0.0.1:6380") // the new endpoint answers the handshake too
	if err := next.Start(); err != nil {
		log.Fatal(err)
	}
	defer next.Close()

	// … clients connect to old.Addr() and run commands …

	n := old.Moving(next.Addr(), 15) // connections still open after 15s are cut
	fmt.Printf("MOVING sent to %d connections\n", n)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	moved, err := old.WaitMoved(ctx)
	fmt.Println("every connection moved in time:", moved, err)
	for _, c := range old.Clients() {
		fmt.Printf("%+v\n", c)
	}
}
