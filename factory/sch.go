package factory

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/sch"
	"github.com/redisfactory/redisfactory/schema"
)

// Smart client handoffs are the factory's own (sch.Engine): go-redis's
// maintenance-notification machinery is off for every profile, and a
// profile with sch active gets the engine's dialer, connection handshake,
// push handlers and hook, on its client and on its auto-pipeliner's.
func init() {
	extensionMakers = append(extensionMakers, schExtension)
}

// maintConfig turns go-redis's maintenance notifications off: its handoff
// worker re-initialises a pooled connection while the pool can hand it to
// a command (crossed replies under load in v9.23.0), and its relaxed
// timeout replaces a longer configured one. sch.Engine does both instead.
func maintConfig(*schema.Profile) *maintnotifications.Config {
	return &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
}

// schExtension installs a profile's sch.Engine.
func schExtension(name string, p *schema.Profile, rt *runtime.Runtime) (*extension, error) {
	eng := sch.NewEngine(name, p, rt.Events())
	if eng == nil {
		return nil, nil
	}
	var owner *Client
	return &extension{
		dialer:    eng.Dialer,
		onConnect: eng.OnConnect,
		attach: func(c *Client) error {
			owner = c
			engines.Store(c, eng)
			// The auto-pipeliner's client (pipeline.auto) dials with the
			// engine's dialer and handshake too, so its connections
			// negotiate notifications: without the engine's handlers there,
			// go-redis would drop the notifications they read (no MOVING
			// handoff, no relaxed timeouts) and a cut after a MOVING would
			// fail the batches in flight.
			if c.batch != nil {
				if err := eng.Attach(c.batch); err != nil {
					return err
				}
			}
			switch rc := c.UniversalClient.(type) {
			case *redis.Client: // standalone, or Sentinel's failover client
				return eng.Attach(rc)
			case *redis.ClusterClient:
				eng.OnSlotsMoved(func() { rc.ReloadState(context.Background()) })
				// Every node client has its own push processor, new and
				// empty: registering the handlers cannot fail there.
				rc.OnNewNode(func(node *redis.Client) { _ = eng.Attach(node) })
			}
			return nil
		},
		close: func() error {
			eng.Close()
			if owner != nil {
				engines.Delete(owner)
			}
			return nil
		},
	}, nil
}

// engines holds the sch.Engine of every open client with sch active.
var engines sync.Map // *Client → *sch.Engine

// Handoffs returns what the client's smart client handoffs have seen and
// done: notifications received by type, connections that negotiated them
// and that a MOVING retired, and handoffs started, completed and failed.
// It is zero for profiles without sch (disabled, RESP2, unix sockets).
func (c *Client) Handoffs() sch.Stats {
	if e, ok := engines.Load(c); ok {
		return e.(*sch.Engine).Stats()
	}
	return sch.Stats{Notifications: map[string]uint64{}}
}
