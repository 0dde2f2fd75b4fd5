package runtime

import (
	"context"
	"time"
)

// Clock is the source of time for a [Runtime] and everything built on it.
//
// Production code uses [RealClock]; tests use a [ManualClock] so that time
// only moves when the test says so.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Since returns the time elapsed since t; it is Now().Sub(t).
	Since(t time.Time) time.Duration
	// NewTimer returns a Timer that fires once, after at least d.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a Ticker that fires every d. It panics if d <= 0.
	NewTicker(d time.Duration) Ticker
	// Sleep blocks for d or until ctx is done, whichever happens first.
	// It returns ctx.Err() if ctx ended first and nil otherwise.
	Sleep(ctx context.Context, d time.Duration) error
}

// Timer is a single-shot timer obtained from [Clock.NewTimer]. Its semantics
// follow [time.Timer] (Go 1.23 and later): after Stop or Reset returns, no
// stale value from before the call is received from C.
type Timer interface {
	// C returns the channel on which the time is delivered when the timer
	// fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing. It reports whether the call
	// stopped the timer, false if it had already fired or been stopped.
	Stop() bool
	// Reset changes the timer to fire after d. It reports whether the timer
	// had been active.
	Reset(d time.Duration) bool
}

// Ticker delivers ticks at regular intervals, like [time.Ticker]. When the
// receiver falls behind, ticks are dropped rather than queued.
type Ticker interface {
	// C returns the channel on which the ticks are delivered.
	C() <-chan time.Time
	// Stop turns the ticker off. No more ticks are sent after Stop returns.
	Stop()
}

// RealClock returns the Clock backed by package time. It is what [New] uses
// when [Options].Clock is nil.
func RealClock() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                  { return time.Now() }
func (realClock) Since(t time.Time) time.Duration { return time.Since(t) }
func (realClock) NewTimer(d time.Duration) Timer  { return realTimer{time.NewTimer(d)} }
func (realClock) NewTicker(d time.Duration) Ticker {
	return realTicker{time.NewTicker(d)}
}

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (r realTicker) C() <-chan time.Time { return r.t.C }
func (r realTicker) Stop()               { r.t.Stop() }
