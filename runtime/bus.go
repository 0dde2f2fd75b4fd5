package runtime

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// DefaultEventBuffer is the per-subscriber buffer used when
// [Options].EventBuffer is zero or negative.
const DefaultEventBuffer = 256

// Bus is the runtime's event bus. Obtain it with [Runtime.Events].
//
// [Bus.Publish] never blocks: every subscriber has a bounded buffer, and an
// event that does not fit is dropped for that subscriber and counted (see
// [Subscription.Dropped]). Subscribers therefore see the events they do get
// in publication order (for events published from one goroutine), but may
// miss some when they fall behind.
//
// A Bus is safe for concurrent use.
type Bus struct {
	clock   Clock
	logger  *slog.Logger
	buffer  int
	limiter logLimiter // for the kinds sampled in the log

	subs   atomic.Pointer[[]*Subscription]         // copy-on-write snapshot
	known  [len(knownKinds)]atomic.Uint64          // counters of knownKinds
	custom atomic.Pointer[map[Kind]*atomic.Uint64] // copy-on-write, other kinds

	mu         sync.Mutex // guards writes to subs and custom, and closed
	closed     bool
	deliveries tracker // SubscribeFunc goroutines
}

func newBus(clock Clock, logger *slog.Logger, buffer int) *Bus {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	b := &Bus{clock: clock, logger: logger, buffer: buffer}
	b.custom.Store(&map[Kind]*atomic.Uint64{})
	return b
}

// Publish delivers e to every subscriber interested in its kind, counts it
// and logs it through the runtime logger at [Kind.Level] (only when the
// logger is enabled for that level; retry.exhausted, retry.throttled and
// health.check_failed at most once per [LogInterval] per profile). If e.Time is zero it is set from the
// runtime's clock (the clock is not read when no subscriber and no log
// receives the event).
//
// Publish never blocks and is cheap enough to call on the Redis command
// path: it does not allocate unless the event is logged, and with no
// subscribers it costs an atomic counter increment and a few checks. It
// may be called after the runtime is closed, in which case the event is only
// counted and logged.
func (b *Bus) Publish(e Event) {
	b.counter(e.Kind).Add(1)
	level := e.Kind.Level()
	logging := b.logger.Enabled(context.Background(), level)
	subs := b.subs.Load()
	if !logging && subs == nil {
		return // nobody observes e, not even its Time: skip reading the clock
	}
	if e.Time.IsZero() {
		e.Time = b.clock.Now()
	}
	if logging {
		b.log(&e, level)
	}
	if subs != nil {
		for _, s := range *subs {
			s.deliver(&e)
		}
	}
}

// log writes e to the runtime's logger, one line per second at most per
// kind and profile for the sampled kinds (see [LogInterval]).
func (b *Bus) log(e *Event, level slog.Level) {
	attrs := e.logAttrs()
	if sampled(e.Kind) {
		ok, suppressed := b.limiter.allow(e.Kind, e.Profile, e.Time)
		if !ok {
			return
		}
		if suppressed > 0 {
			attrs = append(attrs, slog.Uint64("suppressed", suppressed))
		}
	}
	msg := e.Message
	if msg == "" {
		msg = string(e.Kind)
	}
	b.logger.LogAttrs(context.Background(), level, msg, attrs...)
}

// Count returns how many events of kind k have been published.
func (b *Bus) Count(k Kind) uint64 {
	if i := knownIndex(k); i >= 0 {
		return b.known[i].Load()
	}
	if c, ok := (*b.custom.Load())[k]; ok {
		return c.Load()
	}
	return 0
}

// Counts returns a snapshot of the number of events published per kind.
// Kinds that were never published are omitted.
func (b *Bus) Counts() map[Kind]uint64 {
	out := make(map[Kind]uint64)
	for i := range b.known {
		if n := b.known[i].Load(); n > 0 {
			out[knownKinds[i]] = n
		}
	}
	for k, c := range *b.custom.Load() {
		if n := c.Load(); n > 0 {
			out[k] = n
		}
	}
	return out
}

// counter returns the counter for k. Counters for the kinds declared by this
// package are fields of b; those of other kinds are created on first use and
// then found by a lock-free map lookup. (Kinds are expected to be a small,
// fixed set of constants: each new kind copies the map.)
func (b *Bus) counter(k Kind) *atomic.Uint64 {
	if i := knownIndex(k); i >= 0 {
		return &b.known[i]
	}
	if c, ok := (*b.custom.Load())[k]; ok {
		return c
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	custom := *b.custom.Load()
	if c, ok := custom[k]; ok {
		return c
	}
	next := maps.Clone(custom)
	c := new(atomic.Uint64)
	next[k] = c
	b.custom.Store(&next)
	return c
}

// SubscribeOption configures a subscription made with [Bus.Subscribe] or
// [Bus.SubscribeFunc].
type SubscribeOption func(*subscribeConfig)

type subscribeConfig struct {
	kinds  []Kind
	buffer int
	name   string
}

// WithKinds restricts a subscription to events of the given kinds. Without
// it a subscription receives every event.
func WithKinds(kinds ...Kind) SubscribeOption {
	return func(c *subscribeConfig) { c.kinds = append(c.kinds, kinds...) }
}

// WithBuffer sets the subscription's buffer size, overriding
// [Options].EventBuffer. Values below 1 are ignored.
func WithBuffer(n int) SubscribeOption {
	return func(c *subscribeConfig) {
		if n > 0 {
			c.buffer = n
		}
	}
}

// WithName names a subscription made with [Bus.SubscribeFunc]; the name is
// used in the error returned by [Runtime.Close] when its callback does not
// return in time.
func WithName(name string) SubscribeOption {
	return func(c *subscribeConfig) { c.name = name }
}

// Subscription is a stream of events from a [Bus], created by
// [Bus.Subscribe].
type Subscription struct {
	bus     *Bus
	ch      chan Event
	kinds   []Kind
	dropped atomic.Uint64

	mu     sync.RWMutex // write-locked to close ch; read-locked to send
	closed bool
}

// Subscribe returns a new subscription. Events are buffered up to the
// configured size (see [WithBuffer]); when the buffer is full, further events
// are dropped for this subscription and counted in [Subscription.Dropped].
//
// The subscription's channel is closed by [Subscription.Close] and when the
// runtime is closed (after its closers have run, so that events they publish
// are still delivered). Subscribing to a closed runtime returns a
// subscription whose channel is already closed.
func (b *Bus) Subscribe(opts ...SubscribeOption) *Subscription {
	cfg := b.config(opts)
	s := &Subscription{bus: b, ch: make(chan Event, cfg.buffer), kinds: cfg.kinds}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		s.closed = true
		close(s.ch)
		return s
	}
	var next []*Subscription
	if cur := b.subs.Load(); cur != nil {
		next = slices.Clone(*cur)
	}
	next = append(next, s)
	b.subs.Store(&next)
	return s
}

// SubscribeFunc calls fn with every event, in order, on a goroutine of its
// own, and returns a function that cancels the subscription. Events that
// arrive while fn is busy are buffered and, once the buffer is full, dropped
// as with [Bus.Subscribe].
//
// cancel is idempotent and may be called from fn. It does not wait: a call
// of fn that is in progress finishes, but fn is not called for events that
// are still buffered. When the runtime is closed, fn is called for the events
// still buffered and [Runtime.Close] waits for it to return.
func (b *Bus) SubscribeFunc(fn func(Event), opts ...SubscribeOption) (cancel func()) {
	cfg := b.config(opts)
	name := cfg.name
	if name == "" {
		name = "SubscribeFunc"
	}
	sub := b.Subscribe(opts...)
	_, done, ok := b.deliveries.start("events(" + name + ")")
	if !ok {
		sub.Close()
		return func() {}
	}
	var cancelled atomic.Bool
	go func() {
		defer done()
		for e := range sub.ch {
			if cancelled.Load() {
				return
			}
			fn(e)
		}
	}()
	return func() {
		cancelled.Store(true)
		sub.Close()
	}
}

func (b *Bus) config(opts []SubscribeOption) subscribeConfig {
	cfg := subscribeConfig{buffer: b.buffer}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

// close closes every subscription. Publish keeps working afterwards.
func (b *Bus) close() {
	b.mu.Lock()
	b.closed = true
	subs := b.subs.Swap(nil)
	b.mu.Unlock()
	if subs != nil {
		for _, s := range *subs {
			s.closeChan()
		}
	}
}

// C returns the channel on which events are delivered. It is closed when the
// subscription or the runtime is closed.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped returns how many events were dropped for this subscription because
// its buffer was full.
func (s *Subscription) Dropped() uint64 { return s.dropped.Load() }

// Close ends the subscription and closes its channel. Events still buffered
// can be received until the channel reports closed. Close is idempotent.
func (s *Subscription) Close() {
	b := s.bus
	b.mu.Lock()
	if cur := b.subs.Load(); cur != nil {
		if i := slices.Index(*cur, s); i >= 0 {
			if len(*cur) == 1 {
				b.subs.Store(nil)
			} else {
				next := slices.Delete(slices.Clone(*cur), i, i+1)
				b.subs.Store(&next)
			}
		}
	}
	b.mu.Unlock()
	s.closeChan()
}

func (s *Subscription) closeChan() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (s *Subscription) deliver(e *Event) {
	if len(s.kinds) > 0 && !slices.Contains(s.kinds, e.Kind) {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	select {
	case s.ch <- *e:
	default:
		s.dropped.Add(1)
	}
}
