package factory

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// extension is a capability the factory adds to a client beyond go-redis's
// options: client-side caching (cache.go) and smart client handoffs
// (sch.go). Each capability lives in its own file and is built by an
// extensionMaker; Build composes them, so that adding one is a line in
// extensionMakers.
type extension struct {
	// onConnect runs on every new connection, after go-redis's own
	// handshake (AUTH, SELECT, CLIENT SETNAME, …).
	onConnect func(ctx context.Context, cn *redis.Conn) error
	// outerHook, when set, returns the hook installed on the client
	// (owner) before the retry hook, so it runs first and can answer a
	// command without the retry policy (a cache hit).
	outerHook func(owner redis.UniversalClient) redis.Hook
	// attach runs once the client is built (hooks installed), before the
	// user's OnBuild callback.
	attach func(c *Client) error
	// close runs after the go-redis client is closed.
	close func() error
}

// extensionMaker returns the extension of a profile, or nil when the
// profile does not use the capability.
type extensionMaker func(name string, p *schema.Profile, rt *runtime.Runtime) (*extension, error)

// extensionMakers are the capabilities, in the order their hooks run.
var extensionMakers []extensionMaker

// extensions builds every extension a profile uses.
func extensions(name string, p *schema.Profile, rt *runtime.Runtime) ([]*extension, error) {
	var out []*extension
	for _, mk := range extensionMakers {
		e, err := mk(name, p, rt)
		if err != nil {
			closeExtensions(out)
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// onConnect chains the extensions' connection callbacks.
func chainOnConnect(exts []*extension) func(ctx context.Context, cn *redis.Conn) error {
	var fns []func(context.Context, *redis.Conn) error
	for _, e := range exts {
		if e.onConnect != nil {
			fns = append(fns, e.onConnect)
		}
	}
	if len(fns) == 0 {
		return nil
	}
	return func(ctx context.Context, cn *redis.Conn) error {
		for _, fn := range fns {
			if err := fn(ctx, cn); err != nil {
				return err
			}
		}
		return nil
	}
}

func closeExtensions(exts []*extension) error {
	var errs []error
	for i := len(exts) - 1; i >= 0; i-- {
		if exts[i].close != nil {
			errs = append(errs, exts[i].close())
		}
	}
	return errors.Join(errs...)
}
