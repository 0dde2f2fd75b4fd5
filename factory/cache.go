package factory

import (
	"context"
	"errors"
	"net"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

func init() { extensionMakers = append(extensionMakers, cacheExtension) }

// budgets holds the cache budget shared by the clients of a runtime
// (SetCacheBudget). The runtime does not know about caches, so the
// association lives here.
var budgets sync.Map // *runtime.Runtime -> *cache.Budget

// caches maps each client built with a cache to its cache.
var caches sync.Map // *Client -> *cache.Cache

// SetCacheBudget makes every client-side cache built on rt from now on
// share budget: together they hold at most budget.Max() bytes, on top of
// each profile's own max_entries and max_bytes. Pass nil to remove it. The
// association ends when rt closes.
func SetCacheBudget(rt *runtime.Runtime, budget *cache.Budget) {
	if budget == nil {
		budgets.Delete(rt)
		return
	}
	if _, loaded := budgets.Swap(rt, budget); !loaded {
		rt.OnClose("cache-budget", func(context.Context) error { budgets.Delete(rt); return nil })
	}
}

// CacheStats returns the client-side cache's counters; ok is false when
// the profile has no cache.
func (c *Client) CacheStats() (s cache.Stats, ok bool) {
	v, ok := caches.Load(c)
	if !ok {
		return cache.Stats{}, false
	}
	return v.(*cache.Cache).Stats(), true
}

// Cache returns the client's client-side cache, or nil.
func (c *Client) Cache() *cache.Cache {
	v, ok := caches.Load(c)
	if !ok {
		return nil
	}
	return v.(*cache.Cache)
}

// cacheExtension turns a profile's cache block into the cache extension.
func cacheExtension(name string, p *schema.Profile, rt *runtime.Runtime) (*extension, error) {
	if !p.Cache.Enabled {
		return nil, nil
	}
	tlsCfg, err := tlsConfig(p)
	if err != nil {
		return nil, err
	}
	network := p.Network
	if network == "" {
		network = "tcp"
	}
	d := dialer(p.Timeouts.Connect, tlsCfg, 0, 0, healthHooks{})
	cfg := cache.Config{
		MaxEntries: p.Cache.MaxEntries,
		MaxBytes:   int64(p.Cache.MaxBytes),
		TTL:        p.Cache.TTL,
		Prefixes:   p.Cache.Prefixes,
		Commands:   p.Cache.Commands,
		Dial: func(ctx context.Context, addr string) (net.Conn, error) {
			return d(ctx, network, addr)
		},
		Username:        p.Username,
		Password:        p.Password.Reveal(),
		ClientName:      p.ClientName,
		Timeout:         p.Timeouts.Connect,
		ResolveByRemote: p.Mode == schema.Sentinel,
		ExpectMaster:    p.Mode == schema.Sentinel && !p.Sentinel.ReplicaOnly,
		OnFlush: func(reason string) {
			rt.Events().Publish(runtime.Event{Kind: runtime.CacheFlushed, Profile: name, Message: reason})
		},
		OnChannel: func(addr string, up bool, err error) {
			kind := runtime.CacheChannelUp
			if !up {
				kind = runtime.CacheChannelDown
			}
			rt.Events().Publish(runtime.Event{Kind: kind, Profile: name, Message: addr, Err: err, Class: classIfErr(err)})
		},
	}
	if p.Cache.Mode == schema.CacheBroadcast {
		cfg.Mode = cache.Broadcast
	}
	if b, ok := budgets.Load(rt); ok {
		cfg.Budget = b.(*cache.Budget)
	}
	if p.Mode == schema.Cluster && len(p.Addrs) == 0 {
		return nil, errors.New("cache: a cluster profile needs addrs")
	}
	c := cache.New(cfg)
	var self *Client
	return &extension{
		// Only the client's own commands read from the cache, not those of
		// the Tx and Conn go-redis copies its hooks into (cache.HookFor).
		outerHook: func(owner redis.UniversalClient) redis.Hook { return c.HookFor(owner) },
		attach: func(cl *Client) error {
			self = cl
			caches.Store(cl, c)
			if cc, ok := cl.UniversalClient.(*redis.ClusterClient); ok {
				cc.OnNewNode(func(node *redis.Client) { node.AddHook(c.DialHook()) })
			}
			return nil
		},
		close: func() error {
			if self != nil {
				caches.Delete(self)
			}
			return c.Close()
		},
	}, nil
}

func classIfErr(err error) string {
	if err == nil {
		return ""
	}
	return string(classOf(err))
}
