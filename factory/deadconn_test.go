package factory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
)

// combo is one combination of the features that wrap a connection.
type combo struct{ cache, health, sch bool }

func (c combo) name() string {
	var parts []string
	for _, f := range []struct {
		on   bool
		name string
	}{{c.cache, "cache"}, {c.health, "health"}, {c.sch, "sch"}} {
		if f.on {
			parts = append(parts, f.name)
		}
	}
	if len(parts) == 0 {
		return "plain"
	}
	return strings.Join(parts, "+")
}

// yaml is the profile of the combination, under the defaults (indent 4).
func (c combo) yaml() string {
	var b strings.Builder
	if c.cache {
		b.WriteString("    cache:\n      enabled: true\n")
	}
	if c.health {
		// Every connection taken from the pool is PINGed first (it has
		// always been idle for longer than 1ms), so the health check is
		// what meets each dead connection.
		b.WriteString("    health_check_interval: 1ms\n")
	}
	if c.sch {
		b.WriteString("    sch:\n      mode: auto\n")
	} else {
		b.WriteString("    sch:\n      mode: disabled\n")
	}
	return b.String()
}

var combos = func() []combo {
	var out []combo
	for i := range 8 {
		out = append(out, combo{cache: i&1 != 0, health: i&2 != 0, sch: i&4 != 0})
	}
	return out
}()

// warm opens n connections in c's pool: n concurrent BLPOPs each hold one.
func warm(t *testing.T, c redis.UniversalClient, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.BLPop(ctx, 300*time.Millisecond, "deadconn:nothing").Err()
			assert.ErrorIs(t, err, redis.Nil)
		}()
	}
	wg.Wait()
	assert.Equal(t, uint32(n), c.PoolStats().TotalConns, "%d connections open", n)
}

// TestDeadPooledConnectionsFailNothing: every idle pooled connection dies
// (CLIENT KILL of every normal client, or a server restart); the next ten
// GETs must fail exactly as many commands and spend as many retries as bare
// go-redis on the same server, for every combination of the features that
// wrap a connection (cache, health check, SCH auto) under the default retry
// policy. go-redis's own pre-use check finds those connections dead before
// a command is written to them, so bare go-redis — run with its retries
// off, so that every command meeting a dead connection would show as a
// failure — fails none: 0 failures and 0 retries is the bar.
func TestDeadPooledConnectionsFailNothing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	admin := srv.Client(t)
	var doc strings.Builder
	fmt.Fprintf(&doc, "defaults:\n  addr: %s\n  timeouts:\n    connect: 2s\n    socket: 2s\n  pool:\n    size: 8\nprofiles:\n", srv.Addr())
	for _, c := range combos {
		fmt.Fprintf(&doc, "  %s:\n%s", strings.ReplaceAll(c.name(), "+", "_"), c.yaml())
	}
	cfg := load(t, "%s", doc.String())
	f := newFactory(t, cfg, factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.RetryAttempted)
	defer cancel()

	for _, event := range []struct {
		name string
		do   func(t *testing.T)
	}{
		{"CLIENT KILL TYPE normal SKIPME yes", func(t *testing.T) {
			n, err := admin.ClientKillByFilter(context.Background(), "TYPE", "normal", "SKIPME", "yes").Result()
			require.NoError(t, err)
			require.GreaterOrEqual(t, n, int64(9*8), "every pooled connection was killed")
		}},
		{"restart", func(t *testing.T) { srv.Restart(t) }},
	} {
		t.Run(event.name, func(t *testing.T) {
			ctx := context.Background()
			bare := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 8, MaxRetries: -1})
			defer bare.Close()
			clients := map[string]redis.UniversalClient{"bare go-redis": bare}
			for _, c := range combos {
				clients[c.name()] = client(t, f, strings.ReplaceAll(c.name(), "+", "_"))
			}
			var wg sync.WaitGroup
			for _, c := range clients {
				wg.Add(1)
				go func() { defer wg.Done(); warm(t, c, 8) }()
			}
			wg.Wait()
			bus := f.Runtime().Events()
			retriesBefore := bus.Count(runtime.RetryAttempted)
			seen := len(ev.list())

			event.do(t)

			failures := map[string][]error{}
			for name, c := range clients {
				for i := range 10 {
					err := c.Get(ctx, fmt.Sprintf("deadconn:%s:%d", name, i)).Err()
					if err != nil && !errors.Is(err, redis.Nil) {
						failures[name] = append(failures[name], err)
					}
				}
			}
			assert.Empty(t, failures["bare go-redis"], "bare go-redis's pre-use check drops dead connections")
			// Bus.Count is exact at once; the subscription (delivered in the
			// background) only names the profiles when it is not zero.
			if n := bus.Count(runtime.RetryAttempted) - retriesBefore; n != 0 {
				redistest.Eventually(t, 5*time.Second, "retry events delivered", func() bool { return uint64(len(ev.list())-seen) >= n })
				t.Errorf("%d retries spent: %v", n, ev.list()[seen:])
			}
			for _, c := range combos {
				p := strings.ReplaceAll(c.name(), "+", "_")
				assert.Equal(t, len(failures["bare go-redis"]), len(failures[c.name()]), "%s: failures %v", c.name(), failures[c.name()])
				if c.health {
					fc, err := f.Lookup(p)
					require.NoError(t, err)
					_, failed := fc.HealthChecks()
					assert.NotZero(t, failed, "%s: the health check met the dead connections", c.name())
				}
			}
		})
	}
}
