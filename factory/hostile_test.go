package factory_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// TestBuildNeverPanics gives Build profiles made in code, past validation,
// with the values that made go-redis panic or overflow: each is an error
// naming the profile and the key, never a panic.
func TestBuildNeverPanics(t *testing.T) {
	rt := runtime.New(runtime.Options{})
	t.Cleanup(func() { require.NoError(t, rt.Close(context.Background())) })
	base := load(t, "profiles:\n  p:\n    addr: 127.0.0.1:1\n").Profiles["p"]
	for _, tc := range []struct {
		name, key string
		set       func(p *schema.Profile)
	}{
		{"pool size beyond int32", "pool.size", func(p *schema.Profile) { p.Pool.Size = 3_000_000_000 }},
		{"max_idle beyond int32", "pool.max_idle", func(p *schema.Profile) { p.Pool.MaxIdle = math.MaxInt }},
		{"max_active beyond int32", "pool.max_active", func(p *schema.Profile) { p.Pool.MaxActive = 3_000_000_000 }},
		{"connect + read overflow", "timeouts.connect", func(p *schema.Profile) {
			p.Timeouts.Connect, p.Timeouts.Socket = 1_500_000*time.Hour, 1_500_000*time.Hour
		}},
		{"negative pool", "pool.size", func(p *schema.Profile) { p.Pool.Size = -1 }},
		{"sch enabled over RESP2", "sch.mode", func(p *schema.Profile) {
			p.Protocol, p.SCH.Mode = 2, schema.SCHEnabled
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := *base
			tc.set(&p)
			var c *factory.Client
			var err error
			require.NotPanics(t, func() { c, err = factory.Build("orders", &p, rt, factory.BuildOptions{}) })
			require.Error(t, err)
			assert.Nil(t, c)
			assert.Contains(t, err.Error(), "profile orders")
			assert.Contains(t, err.Error(), "profiles.orders."+tc.key)
		})
	}
}

// TestBuildTurnsAPanicIntoAnError: a panic during a build that validation
// did not foresee (here from an OnBuild callback) is an error naming the
// profile, and New fails cleanly.
func TestBuildTurnsAPanicIntoAnError(t *testing.T) {
	cfg := load(t, "profiles:\n  p:\n    addr: 127.0.0.1:1\n")
	var f *factory.Factory
	var err error
	require.NotPanics(t, func() {
		f, err = factory.New(cfg, factory.Options{OnBuild: func(string, redis.UniversalClient) error { panic("instrumentation bug") }})
	})
	require.Error(t, err)
	assert.Nil(t, f)
	assert.Contains(t, err.Error(), "profile p: building the client failed: instrumentation bug")
}

// TestValidationBoundsAreBuildable: the largest values validation accepts
// build a client (go-redis allocates by pool size; the factory adds
// durations together).
func TestValidationBoundsAreBuildable(t *testing.T) {
	cfg := load(t, `profiles:
  p:
    addr: 127.0.0.1:1
    pool: {size: 100000, max_idle: 100000, max_active: 100000}
    timeouts: {connect: 8760h, socket: 8760h, read: 8760h, write: 8760h}
    drain_timeout: 8760h
    health_check_interval: 8760h
    sch: {max_workers: 100000, handoff_queue_size: 1000000, relaxed_timeout: 8760h, handoff_timeout: 8760h}
`)
	f := newFactory(t, cfg, factory.Options{})
	require.Equal(t, []string{"p"}, f.Profiles())
}
