package mux

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotReady is Do's error when no socket is ready for it. Nothing was
// sent: the caller takes its ordinary path.
var ErrNotReady = errors.New("mux: no socket ready")

// Do sends req, one complete command, on a ready socket and hands its
// reply frame (with any attribute before it) to parse, whose error it
// returns. The frame is only valid during parse.
//
// Do is the short path for simple commands: the command skips the
// virtual connection and its client's per-connection work, and waits for
// its own reply. It needs sockets prepared by Config.Prepare; without one
// it returns ErrNotReady at once.
//
// deadline bounds the wait for the reply (zero: none). When it passes,
// Do fails with a timeout and retires the socket, as a virtual
// connection's read deadline does. A command that never reached the
// socket fails with an error whose NotSent method reports true.
func (d *Dialer) Do(req []byte, deadline time.Time, parse func(frame []byte) error) error {
	return d.DoIf(req, deadline, nil, parse)
}

// DoIf is Do on a socket whose preparation (what Config.Prepare returned
// for it) accept accepts, checked as the command is queued; otherwise it
// returns ErrNotReady and sends nothing. accept runs under the socket's
// lock: it must be quick and must not call the Dialer. A nil accept
// accepts every socket.
func (d *Dialer) DoIf(req []byte, deadline time.Time, accept func(prepared io.Closer) bool, parse func(frame []byte) error) error {
	s := d.readySocket()
	if s == nil {
		return ErrNotReady
	}
	c := callPool.Get().(*call)
	if err := s.enqueueCall(c, req, accept); err != nil {
		callPool.Put(c)
		return err
	}
	d.direct.Add(1)
	if !c.wait(deadline) && s.abandon(c) {
		// The call stays in the socket's queue, which drops its reply; it
		// is not reused.
		s.retire()
		return timeoutError{}
	}
	err := c.err
	if err == nil {
		err = parse(c.reply)
		var r *retireError
		if errors.As(err, &r) {
			s.retire()
			err = r.err
		}
	}
	c.reset()
	callPool.Put(c)
	return err
}

// RetireAfter wraps the error a parse function of Do returns when the
// reply says the socket should serve no more commands (READONLY: the
// server was demoted, and a new dial may reach the new master): Do
// retires the socket, as a read deadline does, and returns err.
func RetireAfter(err error) error { return &retireError{err} }

type retireError struct{ err error }

func (e *retireError) Error() string { return e.err.Error() }
func (e *retireError) Unwrap() error { return e.err }

// readySocket returns a socket Do may use, or nil.
func (d *Dialer) readySocket() *socket {
	list := d.ready.Load()
	if list == nil || len(*list) == 0 {
		return nil
	}
	ss := *list
	s := ss[0]
	if len(ss) > 1 {
		s = ss[int(d.rr.Add(1))%len(ss)]
	}
	if f := d.cfg.FreshFor; f > 0 && time.Now().UnixNano()-s.lastRead.Load() > int64(f) {
		return nil
	}
	return s
}

// enqueueCall queues c's command on s, unless s is no longer ready for Do
// (broken included) or its preparation is not accepted (ErrNotReady).
func (s *socket) enqueueCall(c *call, req []byte, accept func(io.Closer) bool) error {
	s.mu.Lock()
	// A broken socket is no longer ready either (fail unreadies it just
	// after): nothing is queued, and the caller's ordinary path dials.
	if s.err != nil || !s.ready || (accept != nil && !accept(s.anchor)) {
		s.mu.Unlock()
		return ErrNotReady
	}
	s.waiting.push(c)
	s.calls++
	c.counted = true
	s.queueLocked(req, 1)
	return nil
}

// call is one of Do's commands waiting for its reply.
type call struct {
	done  chan struct{} // signalled once, by deliver or fail
	state atomic.Int32  // callWaiting, then callAnswered or callAbandoned
	reply []byte
	err   error
	timer *time.Timer
	// counted: the call is in its socket's calls (under the socket's
	// mu). Whichever of pop, abandon and fail comes first uncounts it.
	counted bool
}

const (
	callWaiting int32 = iota
	callAnswered
	callAbandoned
)

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// deliver copies the reply (the reader reuses its buffer) and wakes the
// caller, unless it gave up waiting.
func (c *call) deliver(frame []byte) {
	if c.state.Load() != callWaiting {
		return
	}
	c.reply = append(c.reply[:0], frame...)
	if c.state.CompareAndSwap(callWaiting, callAnswered) {
		c.done <- struct{}{}
	}
}

func (c *call) fail(err error) {
	c.err = err
	if c.state.CompareAndSwap(callWaiting, callAnswered) {
		c.done <- struct{}{}
	}
}

// wait waits for the reply until deadline; false means it passed first.
func (c *call) wait(deadline time.Time) bool {
	if deadline.IsZero() {
		<-c.done
		return true
	}
	d := time.Until(deadline)
	if d <= 0 {
		return false
	}
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
	select {
	case <-c.done:
		c.timer.Stop()
		return true
	case <-c.timer.C:
		return false
	}
}

// abandon gives up on c's reply and reports whether it did: false when
// the reply (or the socket's error) has just arrived, and c has it. An
// abandoned call no longer keeps s open (see detach): s closes at once if
// nothing else uses it. (Under s.mu, as pop and fail, so that c is
// uncounted once: pop may have taken c and not yet delivered to it.)
func (s *socket) abandon(c *call) bool {
	s.mu.Lock()
	if !c.state.CompareAndSwap(callWaiting, callAbandoned) {
		s.mu.Unlock()
		<-c.done
		return false
	}
	unused := false
	if c.counted { // not yet uncounted by pop or fail
		c.counted = false
		s.calls--
		unused = s.calls == 0 && len(s.vconns) == 0
	}
	s.mu.Unlock()
	if unused {
		s.fail(errUnused)
	}
	return true
}

// reset readies an answered call for reuse.
func (c *call) reset() {
	c.state.Store(callWaiting)
	c.err = nil
	if cap(c.reply) > 64<<10 {
		c.reply = nil // do not keep a large reply's buffer
	} else {
		c.reply = c.reply[:0]
	}
}

// prepare runs Config.Prepare on a new socket and, when it succeeds, makes
// the socket ready for Do. A preparation that fails (a server still
// LOADING, a handshake refused for a while) is tried again, backing off
// from prepareRetryMin to prepareRetryMax, for as long as the socket
// serves: otherwise its commands would never take the direct path.
func (s *socket) prepare() {
	defer s.d.wg.Done()
	for wait := prepareRetryMin; !s.prepareOnce(); wait = min(2*wait, prepareRetryMax) {
		t := time.NewTimer(wait)
		select {
		case <-s.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// The backoff of a failed preparation (see prepare).
const (
	prepareRetryMin = 50 * time.Millisecond
	prepareRetryMax = 5 * time.Second
)

// prepareOnce runs Config.Prepare once. It returns false when it failed
// and may be tried again, true when it is done: the socket is ready for
// Do, or will never be (broken, retired, pushed to).
func (s *socket) prepareOnce() bool {
	s.mu.Lock()
	spent := s.spent
	s.mu.Unlock()
	if spent {
		return true
	}
	v := s.attach()
	if v == nil {
		return true
	}
	ctx, cancel := context.WithCancel(context.Background())
	if t := s.d.cfg.PrepareTimeout; t > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), t)
	}
	defer cancel()
	go func() { // a socket that breaks ends its preparation
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	closer, err := s.d.cfg.Prepare(ctx, v)
	if err != nil {
		_ = v.Close()
		s.mu.Lock()
		done := s.err != nil || s.retired || s.spent
		s.mu.Unlock()
		return done
	}
	s.mu.Lock()
	ok := s.err == nil && !s.retired && !s.spent
	if ok {
		s.ready, s.anchor = true, closer
	}
	s.mu.Unlock()
	if !ok {
		_ = closer.Close()
		return true
	}
	if s.d.cfg.FreshFor > 0 {
		s.lastRead.Store(time.Now().UnixNano())
	}
	s.d.setReady(s, true)
	// An unready between the lock above and setReady found s off the list
	// and left it there: take it off again.
	s.mu.Lock()
	still := s.ready
	s.mu.Unlock()
	if !still {
		s.d.setReady(s, false)
	}
	return true
}

// unready takes s off Do's sockets for good (it was retired, broke, or
// received a push) and lets its prepared connection go.
func (s *socket) unready() {
	s.mu.Lock()
	s.spent = true // a socket is prepared once, at its start
	was, anchor := s.ready, s.anchor
	s.ready, s.anchor = false, nil
	if anchor != nil {
		// Counted under s.mu, while the socket's own goroutines are still
		// counted in d.wg: fail calls unready, which waits for s.mu, before
		// it lets them end. Counted later, a retire (MaxLifetime's timer
		// is on no goroutine of d's) could add to d.wg after Close's Wait
		// found it at zero.
		s.d.wg.Add(1)
	}
	s.mu.Unlock()
	if !was {
		return
	}
	s.d.setReady(s, false)
	if anchor != nil {
		// Closing it closes a virtual connection of s, which takes s.mu
		// (and may close s): not from under a lock of a caller.
		go func() {
			defer s.d.wg.Done()
			_ = anchor.Close()
		}()
	}
}

// setReady adds s to, or removes it from, the sockets Do may use.
func (d *Dialer) setReady(s *socket, ready bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var list []*socket
	if p := d.ready.Load(); p != nil {
		list = *p
	}
	next := make([]*socket, 0, len(list)+1)
	for _, x := range list {
		if x != s {
			next = append(next, x)
		}
	}
	if d.closed {
		d.ready.Store(nil)
		return
	}
	if ready {
		next = append(next, s)
	}
	d.ready.Store(&next)
}
