package runtime

import (
	"context"
	"sync"
	"time"
)

// ManualClock is a [Clock] whose time only moves when [ManualClock.Advance]
// is called. It lets tests drive timers, tickers, sleeps and everything
// scheduled by [Runtime.Every] deterministically, without real sleeps.
//
// A goroutine that is blocked on the clock is a waiter: an active timer
// (including the one behind a pending [ManualClock.Sleep]) or an active
// ticker counts as one waiter. [ManualClock.BlockUntil] and
// [ManualClock.WaitForWaiters] let a test wait until the code under test has
// reached the point where it waits on the clock before advancing it.
//
// A ManualClock is safe for concurrent use. The zero value is not usable;
// create one with [NewManualClock].
type ManualClock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	waiters map[*manualWaiter]struct{}
	changed chan struct{} // closed and replaced whenever waiters changes
}

// NewManualClock returns a ManualClock whose current time is start.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{
		now:     start,
		waiters: make(map[*manualWaiter]struct{}),
		changed: make(chan struct{}),
	}
}

// Now returns the clock's current time.
func (m *ManualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// Since returns the clock time elapsed since t.
func (m *ManualClock) Since(t time.Time) time.Duration { return m.Now().Sub(t) }

// Advance moves the clock forward by d. Timers and tickers that fall due on
// the way fire in order of their due time (ties in order of creation), each
// one seeing the clock at its due time; afterwards the clock reads the old
// time plus d. Like a [time.Ticker], a ticker whose tick has not been
// received yet drops further ticks. Advance panics if d is negative.
func (m *ManualClock) Advance(d time.Duration) {
	if d < 0 {
		panic("runtime: ManualClock.Advance with negative duration")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	target := m.now.Add(d)
	for {
		w := m.nextDueLocked(target)
		if w == nil {
			break
		}
		if w.when.After(m.now) {
			m.now = w.when
		}
		w.send(m.now)
		if w.period > 0 {
			w.when = w.when.Add(w.period)
		} else {
			m.removeLocked(w)
		}
	}
	m.now = target
}

// Waiters returns the number of active timers, tickers and pending sleeps.
func (m *ManualClock) Waiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters)
}

// BlockUntil blocks until at least n waiters (see [ManualClock]) are waiting
// on the clock. Prefer [ManualClock.WaitForWaiters], which can be bounded by
// a context.
func (m *ManualClock) BlockUntil(n int) {
	_ = m.WaitForWaiters(context.Background(), n)
}

// WaitForWaiters blocks until at least n waiters (see [ManualClock]) are
// waiting on the clock, or until ctx is done, in which case it returns
// ctx.Err().
func (m *ManualClock) WaitForWaiters(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		count, changed := len(m.waiters), m.changed
		m.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// NewTimer returns a Timer that fires once the clock has been advanced by d.
// A timer with d <= 0 fires immediately.
func (m *ManualClock) NewTimer(d time.Duration) Timer {
	w := &manualWaiter{clock: m, ch: make(chan time.Time, 1)}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.armLocked(w, d)
	return w
}

// NewTicker returns a Ticker that ticks every time the clock has been
// advanced by d. It panics if d <= 0, like [time.NewTicker].
func (m *ManualClock) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("runtime: non-positive interval for ManualClock.NewTicker")
	}
	w := &manualWaiter{clock: m, ch: make(chan time.Time, 1), period: d}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.armLocked(w, d)
	return manualTicker{w}
}

// Sleep blocks until the clock has been advanced by d or ctx is done. It
// returns ctx.Err() if ctx ended first and nil otherwise. A pending Sleep
// counts as one waiter.
func (m *ManualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := m.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

// armLocked schedules w to fire after d; d <= 0 fires it at once.
func (m *ManualClock) armLocked(w *manualWaiter, d time.Duration) {
	m.seq++
	w.seq = m.seq
	w.when = m.now.Add(d)
	if d <= 0 {
		w.send(m.now)
		return
	}
	m.waiters[w] = struct{}{}
	m.notifyLocked()
}

func (m *ManualClock) removeLocked(w *manualWaiter) bool {
	if _, ok := m.waiters[w]; !ok {
		return false
	}
	delete(m.waiters, w)
	m.notifyLocked()
	return true
}

func (m *ManualClock) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// nextDueLocked returns the waiter due first at or before target, or nil.
func (m *ManualClock) nextDueLocked(target time.Time) *manualWaiter {
	var next *manualWaiter
	for w := range m.waiters {
		if w.when.After(target) {
			continue
		}
		if next == nil || w.when.Before(next.when) || (w.when.Equal(next.when) && w.seq < next.seq) {
			next = w
		}
	}
	return next
}

// manualWaiter is a timer, or a ticker when period > 0.
type manualWaiter struct {
	clock  *ManualClock
	ch     chan time.Time // capacity 1
	period time.Duration

	// Guarded by clock.mu.
	seq  uint64
	when time.Time
}

func (w *manualWaiter) send(t time.Time) {
	select {
	case w.ch <- t:
	default: // receiver behind: drop, like time.Ticker
	}
}

func (w *manualWaiter) drain() {
	select {
	case <-w.ch:
	default:
	}
}

func (w *manualWaiter) C() <-chan time.Time { return w.ch }

func (w *manualWaiter) Stop() bool {
	w.clock.mu.Lock()
	defer w.clock.mu.Unlock()
	w.drain()
	return w.clock.removeLocked(w)
}

func (w *manualWaiter) Reset(d time.Duration) bool {
	w.clock.mu.Lock()
	defer w.clock.mu.Unlock()
	w.drain()
	active := w.clock.removeLocked(w)
	w.clock.armLocked(w, d)
	return active
}

type manualTicker struct{ w *manualWaiter }

func (t manualTicker) C() <-chan time.Time { return t.w.ch }
func (t manualTicker) Stop()               { t.w.Stop() }
