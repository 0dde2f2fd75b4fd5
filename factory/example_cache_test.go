package factory_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
)

// ExampleClient_CacheStats turns on client-side caching for a profile:
// reads of the allowed commands are answered from memory, and the server's
// invalidation messages keep them correct. Code does not change; the
// statistics say what the cache did. It needs a Redis server on
// localhost:6379, so it is compiled, not run.
func ExampleClient_CacheStats() {
	const doc = `
profiles:
  catalog:
    addr: localhost:6379
    cache:
      enabled: true
      max_entries: 10000
      max_bytes: 64MiB
      ttl: 1m
`
	res, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("redis.yaml", []byte(doc))}})
	if err != nil {
		log.Fatal(err)
	}
	f, err := factory.New(res.Config, factory.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close(context.Background())

	ctx := context.Background()
	rdb, _ := f.Client("catalog")
	_ = rdb.Set(ctx, "product:1", "lamp", 0).Err()
	for range 3 {
		_ = rdb.Get(ctx, "product:1").Err() // a miss, then hits
	}
	_ = rdb.Get(cache.Bypass(ctx), "product:1").Err() // always from the server

	c, _ := f.Lookup("catalog")
	if s, ok := c.CacheStats(); ok {
		fmt.Printf("hits %d, misses %d, entries %d, hit ratio %.2f\n", s.Hits, s.Misses, s.Entries, s.HitRatio())
	}
}
