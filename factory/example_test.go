package factory_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
)

// ExampleNew loads profiles from YAML held in memory, builds a client for
// each and hands one out. Nothing connects yet: clients dial on their first
// command, so this runs without a server.
func ExampleNew() {
	const doc = `
defaults:
  addr: 127.0.0.1:6379
  timeouts:
    connect: 2s
    socket: 500ms
  health_check_interval: 3s

profiles:
  sessions:
    db: 1
    pool:
      size: 32
    retry:
      retries: 3
      also_on: [busy_loading, read_only]
  cache:
    db: 2
    protocol: 2
`
	res, err := profiles.Load(profiles.Options{
		Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte(doc))},
	})
	if err != nil {
		log.Fatal(err) // every problem of the document, with file:line
	}

	f, err := factory.New(res.Config, factory.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close(context.Background())

	fmt.Println(f.Profiles())
	rdb, err := f.Client("sessions")
	if err != nil {
		log.Fatal(err)
	}
	// rdb is the profile's handle: a redis.UniversalClient that survives
	// reloads. Behind it, a standalone profile is a plain *redis.Client.
	o := rdb.(*factory.Handle).Current().(*redis.Client).Options()
	fmt.Println(o.Addr, "db", o.DB, "pool", o.PoolSize, "RESP", o.Protocol, "read timeout", o.ReadTimeout)

	_, err = f.Client("sesions")
	fmt.Println(err)
	// Output:
	// [cache sessions]
	// 127.0.0.1:6379 db 1 pool 32 RESP 3 read timeout 500ms
	// redisfactory: unknown profile "sesions" (did you mean "sessions"?)
}
