package profiles_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/schema"
)

// FuzzLoad feeds arbitrary YAML to the loader. Properties: it never panics;
// it either succeeds with at least one profile or fails with schema.Issues;
// and whatever it accepts, the factory builds (factory.New succeeds without
// panicking, so a valid configuration can never crash a service or a
// watch). Seed corpus: testdata/fuzz/FuzzLoad.
//
// CI fuzzes it for a minute: go test -run '^$' -fuzz '^FuzzLoad$' -fuzztime 60s ./profiles/
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"profiles:\n  a: {}\n",
		"defaults:\n  timeouts:\n    socket: 5s\nprofiles:\n  a:\n    extends: b\n  b:\n    db: 1\n",
		"profiles:\n  a:\n    mode: cluster\n    addrs: [\"[::1]:7000\"]\n    retry:\n      on: [connection, cluster_down]\n",
		"profiles:\n  a:\n    url: redis://u:p@h:1/2?dial_timeout=3\n",
		"x-a: &a {db: 1}\nprofiles:\n  p: *a\n",
		"profiles: [1, 2]\n",
		"profiles:\n  a:\n    cache: {enabled: true, max_bytes: 1KiB, commands: [get]}\n",
		"profiles:\n  a:\n    pool: {size: 100000, min_idle: 1000, max_idle: 100000, max_active: 100000}\n",
		"profiles:\n  a:\n    timeouts: {connect: 8760h, socket: 8760h, read: 8760h, write: 8760h}\n    drain_timeout: 8760h\n",
		"profiles:\n  a:\n    sch: {mode: enabled, max_workers: 100000, handoff_queue_size: 1000000}\n",
		"profiles:\n  a:\n    mode: sentinel\n    sentinel: {master_name: m, addrs: [\"h:1\"]}\n    sch: {mode: auto}\n",
		"profiles:\n  a:\n    retry:\n      budget: {max_tokens: 1000000, token_ratio: 1000000}\n",
		"profiles:\n  a:\n    url: rediss://h:1/0?skip_verify=true\n",
		"x: &x {a: &y [1, *x]}\n",
		"profiles:\n  a:\n    <<: [*a, *b]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := profiles.Load(profiles.Options{
			Sources:   []profiles.Source{profiles.Bytes("fuzz.yaml", data)},
			EnvPrefix: "FUZZ",
			Environ:   func() []string { return nil },
		})
		if err != nil {
			var is schema.Issues
			if !errors.As(err, &is) || len(is) == 0 {
				t.Fatalf("error is not a non-empty schema.Issues: %T %v", err, err)
			}
			return
		}
		if len(r.Config.Profiles) == 0 {
			t.Fatal("a valid configuration without profiles")
		}
		for name := range r.Config.Profiles {
			if _, err := r.Explain(name); err != nil {
				t.Fatal(err)
			}
		}
		// pool.min_idle makes go-redis dial that many connections in the
		// background as the client is built, to the addresses the fuzzer
		// invents ("h:1": a DNS lookup each). It cannot be kept here, not
		// even with the addresses moved to a closed loopback port: when a
		// dial fails at once (refused, unknown host), go-redis v9.23's
		// checkMinIdleConns starts the next at once, in a loop that does
		// not end (goroutine IDs past 273 million in 120 s, min_idle 100,000
		// against 127.0.0.1:1, and the factory did not close). Only a
		// dial that waits (the connect timeout) lets it stop. So the
		// fuzzer builds without min_idle; TestMinIdleBuilds builds it
		// against a real server.
		for _, p := range r.Config.Profiles {
			p.Pool.MinIdle = 0
		}
		fac, err := factory.New(r.Config, factory.Options{})
		if err != nil {
			t.Fatalf("validate accepted a configuration the factory cannot build: %v\n%s", err, data)
		}
		if err := fac.Close(context.Background()); err != nil {
			t.Fatalf("close: %v", err)
		}
	})
}

// pool.min_idle, which FuzzLoad must set to 0, builds: the factory opens
// the idle connections against a real server (pool.size 50, min_idle at
// pool.size, the most validation allows for that size) and closes them.
// The validation bound itself (100,000) needs as many file descriptors
// in the test and the server, more than CI gives.
func TestMinIdleBuilds(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	doc := "profiles:\n  a:\n    addr: " + srv.Addr() + "\n    pool: {size: 50, min_idle: 50}\n"
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("min-idle.yaml", []byte(doc))}})
	if err != nil {
		t.Fatal(err)
	}
	fac, err := factory.New(r.Config, factory.Options{})
	if err != nil {
		t.Fatalf("factory.New: %v", err)
	}
	admin := srv.Client(t)
	clients := func() int {
		list, err := admin.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(list, "\n")
	}
	deadline := time.Now().Add(10 * time.Second)
	for clients() < 51 { // 50 idle, and admin
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want the 50 idle ones and admin's", clients())
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fac.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for clients() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still open after Close", clients()-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
