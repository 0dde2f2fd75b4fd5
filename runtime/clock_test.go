package runtime_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/runtime"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// received returns the value waiting on ch, if any, without blocking.
func received(ch <-chan time.Time) (time.Time, bool) {
	select {
	case v := <-ch:
		return v, true
	default:
		return time.Time{}, false
	}
}

func TestManualClockNowSinceAdvance(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	assert.Equal(t, t0, clk.Now())
	clk.Advance(1500 * time.Millisecond)
	assert.Equal(t, t0.Add(1500*time.Millisecond), clk.Now())
	assert.Equal(t, 1500*time.Millisecond, clk.Since(t0))
	assert.Panics(t, func() { clk.Advance(-time.Second) })
}

func TestManualClockTimer(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	tm := clk.NewTimer(time.Second)
	assert.Equal(t, 1, clk.Waiters())

	clk.Advance(999 * time.Millisecond)
	_, ok := received(tm.C())
	assert.False(t, ok, "timer fired early")

	clk.Advance(time.Millisecond)
	v, ok := received(tm.C())
	require.True(t, ok, "timer did not fire")
	assert.Equal(t, t0.Add(time.Second), v)
	assert.Equal(t, 0, clk.Waiters())
	assert.False(t, tm.Stop(), "Stop after firing")

	assert.False(t, tm.Reset(time.Second), "Reset of a fired timer")
	assert.True(t, tm.Reset(2*time.Second), "Reset of an active timer")
	clk.Advance(time.Second)
	_, ok = received(tm.C())
	assert.False(t, ok, "timer fired at the deadline it had before Reset")
	clk.Advance(time.Second)
	v, ok = received(tm.C())
	require.True(t, ok)
	assert.Equal(t, t0.Add(3*time.Second), v)
}

func TestManualClockTimerStop(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	tm := clk.NewTimer(time.Second)
	assert.True(t, tm.Stop())
	assert.False(t, tm.Stop())
	assert.Equal(t, 0, clk.Waiters())
	clk.Advance(time.Hour)
	_, ok := received(tm.C())
	assert.False(t, ok, "stopped timer fired")
}

func TestManualClockStopDiscardsStaleValue(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	tm := clk.NewTimer(time.Second)
	clk.Advance(time.Second) // fires; value left unreceived
	assert.False(t, tm.Reset(time.Second))
	_, ok := received(tm.C())
	assert.False(t, ok, "stale value received after Reset")
}

func TestManualClockNonPositiveTimerFiresAtOnce(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	for _, d := range []time.Duration{0, -time.Second} {
		v, ok := received(clk.NewTimer(d).C())
		require.True(t, ok, "d=%v", d)
		assert.Equal(t, t0, v)
	}
	assert.Equal(t, 0, clk.Waiters())
}

func TestManualClockFiresInOrder(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	// Timers fire in due order, each seeing the clock at its own due time.
	delays := []time.Duration{3 * time.Second, time.Second, 2 * time.Second}
	timers := make([]runtime.Timer, len(delays))
	for i, d := range delays {
		timers[i] = clk.NewTimer(d)
	}
	clk.Advance(5 * time.Second)
	for i, d := range delays {
		v, ok := received(timers[i].C())
		require.True(t, ok, "timer %d", i)
		assert.Equal(t, t0.Add(d), v, "timer %d", i)
	}
	assert.Equal(t, t0.Add(5*time.Second), clk.Now())
}

func TestManualClockTicker(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	tk := clk.NewTicker(time.Second)
	defer tk.Stop()

	clk.Advance(time.Second)
	v, ok := received(tk.C())
	require.True(t, ok)
	assert.Equal(t, t0.Add(time.Second), v)

	// A receiver that falls behind gets one tick, not a backlog.
	clk.Advance(3 * time.Second)
	v, ok = received(tk.C())
	require.True(t, ok)
	assert.Equal(t, t0.Add(2*time.Second), v)
	_, ok = received(tk.C())
	assert.False(t, ok, "ticks were queued")

	clk.Advance(time.Second)
	v, ok = received(tk.C())
	require.True(t, ok)
	assert.Equal(t, t0.Add(5*time.Second), v)

	tk.Stop()
	assert.Equal(t, 0, clk.Waiters())
	clk.Advance(time.Hour)
	_, ok = received(tk.C())
	assert.False(t, ok, "stopped ticker ticked")

	assert.Panics(t, func() { clk.NewTicker(0) })
}

func TestManualClockSleep(t *testing.T) {
	tests := []struct {
		name    string
		cancel  bool // cancel the context instead of advancing the clock
		wantErr error
	}{
		{name: "clock advanced", wantErr: nil},
		{name: "context cancelled", cancel: true, wantErr: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := runtime.NewManualClock(t0)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			result := make(chan error, 1)
			go func() { result <- clk.Sleep(ctx, 5*time.Second) }()

			clk.BlockUntil(1)
			clk.Advance(4 * time.Second)
			select {
			case err := <-result:
				t.Fatalf("Sleep returned early: %v", err)
			default:
			}
			if tt.cancel {
				cancel()
			} else {
				clk.Advance(time.Second)
			}
			require.ErrorIs(t, <-result, tt.wantErr)
			assert.Equal(t, 0, clk.Waiters(), "Sleep left its timer behind")
		})
	}
}

func TestManualClockSleepImmediate(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	assert.NoError(t, clk.Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, clk.Sleep(ctx, time.Second), context.Canceled)
	assert.Equal(t, 0, clk.Waiters())
}

func TestManualClockWaitForWaiters(t *testing.T) {
	clk := runtime.NewManualClock(t0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, clk.WaitForWaiters(ctx, 1), context.Canceled)
	assert.NoError(t, clk.WaitForWaiters(ctx, 0))

	const sleepers = 3
	done := make(chan struct{}, sleepers)
	for range sleepers {
		go func() {
			_ = clk.Sleep(context.Background(), time.Minute)
			done <- struct{}{}
		}()
	}
	require.NoError(t, clk.WaitForWaiters(context.Background(), sleepers))
	clk.Advance(time.Minute)
	for range sleepers {
		<-done
	}
}

func TestRealClock(t *testing.T) {
	clk := runtime.RealClock()
	before := time.Now()
	assert.False(t, clk.Now().Before(before))
	assert.GreaterOrEqual(t, clk.Since(before), time.Duration(0))

	require.NoError(t, clk.Sleep(context.Background(), time.Millisecond))
	require.NoError(t, clk.Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, clk.Sleep(ctx, time.Hour), context.Canceled)

	tm := clk.NewTimer(time.Millisecond)
	<-tm.C()
	assert.False(t, tm.Stop())
	assert.False(t, tm.Reset(time.Hour))
	assert.True(t, tm.Stop())

	tk := clk.NewTicker(time.Millisecond)
	<-tk.C()
	tk.Stop()
}
