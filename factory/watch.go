package factory

import (
	"context"

	"github.com/redisfactory/redisfactory/profiles"
)

// Watch keeps the factory's configuration current: it watches what
// opts.Load describes (files, the files they point to, the environment on
// every reload) and applies every change with Apply; an invalid
// configuration is recorded with Reject and changes nothing. Pass the
// Result the factory was built from as opts.Current.
//
// The watcher runs until it is closed or ctx ends. Close it before the
// factory.
func (f *Factory) Watch(ctx context.Context, opts profiles.WatchOptions) (*profiles.Watcher, error) {
	return profiles.Watch(ctx, opts, func(ch profiles.Change) error {
		if ch.Err != nil {
			f.reject(ch.Err, ch.Trigger)
			return nil
		}
		return f.apply(ctx, ch.Result.Config, ch.Trigger).Err
	})
}
