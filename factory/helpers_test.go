package factory_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// load loads a configuration from YAML text (format with fmt.Sprintf args).
func load(t testing.TB, doc string, args ...any) *schema.Config {
	t.Helper()
	r, err := profiles.Load(profiles.Options{Sources: []profiles.Source{profiles.Bytes("test.yaml", []byte(fmt.Sprintf(doc, args...)))}})
	require.NoError(t, err)
	return r.Config
}

// newFactory builds a factory on a fresh runtime and closes both at the end
// of the test.
func newFactory(t testing.TB, cfg *schema.Config, opts factory.Options) *factory.Factory {
	t.Helper()
	if opts.Runtime == nil {
		rt := runtime.New(runtime.Options{})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, rt.Close(ctx))
		})
		opts.Runtime = rt
	}
	f, err := factory.New(cfg, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.Close(ctx))
	})
	return f
}

func client(t testing.TB, f *factory.Factory, name string) redis.UniversalClient {
	t.Helper()
	c, err := f.Client(name)
	require.NoError(t, err)
	return c
}

// events collects the runtime's events of some kinds.
type events struct {
	mu  sync.Mutex
	all []runtime.Event
}

func collect(rt *runtime.Runtime, kinds ...runtime.Kind) (*events, func()) {
	e := &events{}
	cancel := rt.Events().SubscribeFunc(func(ev runtime.Event) {
		e.mu.Lock()
		e.all = append(e.all, ev)
		e.mu.Unlock()
	}, runtime.WithKinds(kinds...), runtime.WithBuffer(100000))
	return e, cancel
}

func (e *events) list() []runtime.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]runtime.Event(nil), e.all...)
}

func (e *events) count(k runtime.Kind) int {
	n := 0
	for _, ev := range e.list() {
		if ev.Kind == k {
			n++
		}
	}
	return n
}

// fmtSscanf parses "calls=N,..." from an INFO commandstats line.
func fmtSscanf(line string, calls *int) (int, error) {
	return fmt.Sscanf(line, "calls=%d,", calls)
}
