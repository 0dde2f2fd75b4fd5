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

// Smart client handoffs: the profile's sch block becomes go-redis's
// maintenance notification configuration (maintConfig), and every client
// with sch active gets an sch.Observer that turns notifications and
// handoffs into runtime events with the profile's name.
func init() {
	extensionMakers = append(extensionMakers, schExtension)
}

// maintConfig maps the profile's sch block onto go-redis's maintenance
// notifications (see sch.MaintConfig: a relaxed timeout never shortens a
// timeout the profile set longer).
func maintConfig(p *schema.Profile) *maintnotifications.Config { return sch.MaintConfig(p) }

// schExtension observes maintenance notifications and handoffs.
func schExtension(name string, p *schema.Profile, rt *runtime.Runtime) (*extension, error) {
	if !sch.Active(p) {
		return nil, nil
	}
	obs := sch.NewObserver(name, rt.Events())
	var owner *Client
	return &extension{
		onConnect: func(ctx context.Context, cn *redis.Conn) error { return obs.OnConnect(ctx, cn) },
		attach: func(c *Client) error {
			owner = c
			observers.Store(c, obs)
			switch rc := c.UniversalClient.(type) {
			case *redis.Client:
				obs.Attach(rc)
			case *redis.ClusterClient:
				rc.OnNewNode(func(node *redis.Client) { obs.Attach(node) })
			}
			return nil
		},
		close: func() error {
			if owner != nil {
				observers.Delete(owner)
			}
			return nil
		},
	}, nil
}

// observers holds the sch.Observer of every open client with sch active.
var observers sync.Map // *Client → *sch.Observer

// Handoffs returns what the client's smart client handoffs have seen:
// notifications received by type, and handoffs started, completed and
// failed. It is zero for profiles without sch (disabled, sentinel, RESP2).
func (c *Client) Handoffs() sch.Stats {
	if o, ok := observers.Load(c); ok {
		return o.(*sch.Observer).Stats()
	}
	return sch.Stats{Notifications: map[string]uint64{}}
}
