package factory_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/redistest"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

func TestApplyDiffsProfiles(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	cfg := load(t, "profiles:\n  keep:\n    addr: %[1]s\n  change:\n    addr: %[1]s\n  drop:\n    addr: %[1]s\n", srv.Addr())
	var built []string
	var mu sync.Mutex
	f := newFactory(t, cfg, factory.Options{OnBuild: func(name string, _ redis.UniversalClient) error {
		mu.Lock()
		built = append(built, name)
		mu.Unlock()
		return nil
	}})
	ev, cancel := collect(f.Runtime(), runtime.ReloadApplied)
	defer cancel()
	keep, _ := f.Lookup("keep")
	keepHandle, _ := f.Handle("keep")
	changeHandle, _ := f.Handle("change")
	dropHandle, _ := f.Handle("drop")
	oldChange := changeHandle.Current()

	next := load(t, "profiles:\n  keep:\n    addr: %[1]s\n  change:\n    addr: %[1]s\n    db: 2\n  add:\n    addr: %[1]s\n", srv.Addr())
	r := f.Apply(context.Background(), next)
	require.NoError(t, r.Err)
	assert.Equal(t, []string{"add"}, r.Added)
	assert.Equal(t, []string{"change"}, r.Changed)
	assert.Equal(t, []string{"drop"}, r.Removed)
	assert.Equal(t, []string{"keep"}, r.Unchanged)
	mu.Lock()
	assert.Equal(t, []string{"add", "change"}, built[3:], "only added and changed profiles are built, through the same callback")
	mu.Unlock()

	keepNow, _ := f.Lookup("keep")
	assert.Same(t, keep, keepNow, "an unchanged profile keeps its client")
	assert.NotSame(t, oldChange, changeHandle.Current())
	ctx := context.Background()
	require.NoError(t, changeHandle.Set(ctx, "k", "v", 0).Err())
	db2 := redis.NewClient(&redis.Options{Addr: srv.Addr(), DB: 2})
	defer db2.Close()
	assert.Equal(t, int64(1), db2.Exists(ctx, "k").Val(), "the changed profile writes to db 2")
	require.NoError(t, keepHandle.Ping(ctx).Err())

	err := dropHandle.Get(ctx, "k").Err()
	require.ErrorIs(t, err, factory.ErrProfileRemoved)
	assert.Contains(t, err.Error(), `"drop"`)
	_, err = f.Client("drop")
	require.ErrorIs(t, err, factory.ErrUnknownProfile)

	require.Eventually(t, func() bool { return ev.count(runtime.ReloadApplied) == 1 }, 2*time.Second, 5*time.Millisecond)
	st := f.ReloadStats()
	assert.Equal(t, uint64(1), st.Applied)
	assert.True(t, st.LastSuccessful)

	// The old client of the changed profile is closed once drained.
	require.Eventually(t, func() bool { return errors.Is(oldChange.Ping(ctx).Err(), redis.ErrClosed) }, 5*time.Second, 5*time.Millisecond)
}

func TestApplyRejectsInvalidConfigAndKeepsServing(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n", srv.Addr()), factory.Options{})
	h, _ := f.Handle("a")
	before := h.Current()
	bad := &schema.Config{Profiles: map[string]*schema.Profile{"a": {Mode: "clustr"}}}
	r := f.Apply(context.Background(), bad)
	var is schema.Issues
	require.ErrorAs(t, r.Err, &is)
	assert.Same(t, before, h.Current())
	require.NoError(t, h.Ping(context.Background()).Err())
	st := f.ReloadStats()
	assert.Equal(t, uint64(1), st.Rejected)
	assert.False(t, st.LastSuccessful)
}

func TestApplyThatCannotReachTheNewServerKeepsTheOld(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n", srv.Addr()), factory.Options{})
	ev, cancel := collect(f.Runtime(), runtime.ReloadFailed)
	defer cancel()
	h, _ := f.Handle("a")
	before := h.Current()
	dead := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	r := f.Apply(context.Background(), load(t, "profiles:\n  a:\n    addr: %s\n    timeouts:\n      connect: 200ms\n    retry:\n      retries: 0\n", dead))
	require.ErrorIs(t, r.Err, factory.ErrReloadFailed)
	assert.Same(t, before, h.Current(), "the old client keeps serving")
	require.NoError(t, h.Ping(context.Background()).Err())
	require.Eventually(t, func() bool { return ev.count(runtime.ReloadFailed) == 1 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, uint64(1), f.ReloadStats().Failed)
}

// TestReloadDrainsInFlightCommands: a command running on the old client
// when the profile changes completes; the old client is closed only then.
func TestReloadDrainsInFlightCommands(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n    drain_timeout: 5s\n", srv.Addr()), factory.Options{})
	h, _ := f.Handle("a")
	old := h.Current()
	ctx := context.Background()
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		// A slow command: the server blocks for 300ms.
		done <- h.Do(ctx, "DEBUG", "SLEEP", "0.3").Err()
	}()
	<-started
	require.Eventually(t, func() bool {
		n, _ := srv.Client(t).ClientList(ctx).Result()
		return strings.Contains(n, "cmd=debug")
	}, 2*time.Second, time.Millisecond, "the slow command is running")
	r := f.Apply(ctx, load(t, "profiles:\n  a:\n    addr: %s\n    db: 1\n    drain_timeout: 5s\n", srv.Addr()))
	require.NoError(t, r.Err)
	assert.NotSame(t, old, h.Current())
	require.NoError(t, <-done, "the in-flight command finished on its client")
	require.Eventually(t, func() bool { return errors.Is(old.Ping(ctx).Err(), redis.ErrClosed) }, 5*time.Second, 5*time.Millisecond)
}

// TestHandleHooksSurviveReloads: a hook added through the handle is on
// every later client.
func TestHandleHooksSurviveReloads(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	f := newFactory(t, load(t, "profiles:\n  a:\n    addr: %s\n", srv.Addr()), factory.Options{})
	h, _ := f.Handle("a")
	var n atomic.Int64
	h.AddHook(countHook{&n})
	ctx := context.Background()
	require.NoError(t, h.Ping(ctx).Err())
	require.NoError(t, f.Apply(ctx, load(t, "profiles:\n  a:\n    addr: %s\n    db: 1\n", srv.Addr())).Err)
	before := n.Load()
	require.NoError(t, h.Ping(ctx).Err())
	assert.Greater(t, n.Load(), before)
}

type countHook struct{ n *atomic.Int64 }

func (c countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
