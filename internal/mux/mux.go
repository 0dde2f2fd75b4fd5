// Package mux shares a few sockets among many connections, full duplex:
// it is the engine under pipeline.auto.
//
// go-redis talks to one connection per command, writes the command, and
// waits for its reply. A [Dialer] hands go-redis virtual connections
// instead. What they write is queued on a shared socket, whose writer
// goroutine sends everything queued in one write while the previous write's
// replies are still arriving; its reader goroutine splits the replies (RESP
// frames, in order) and hands each to the virtual connection whose command
// it answers. Concurrent callers thus share round trips and system calls,
// as in rueidis, while go-redis still encodes every command, parses every
// reply and runs every hook: results are exactly go-redis's.
//
// A virtual connection is one go-redis connection: whatever go-redis does
// on it (its handshake, a health check's PING, the cache's CLIENT TRACKING)
// goes to the shared socket as requests and replies like any other. So
// only commands that leave no state on the socket may go through it: the
// factory sends blocking commands, transactions, Pub/Sub and Conn to its
// ordinary pool.
//
// Failures stay as narrow as go-redis's own:
//   - a command whose bytes never reached the socket fails with an error
//     whose NotSent method reports true, so the retry policy may send it
//     again, even an INCR;
//   - a read deadline that passes fails that command only and retires the
//     socket: no new connection is given to it, the connections go-redis
//     holds idle on it fail its pool's check (see vconn.SyscallConn), the
//     replies of the commands under way still arrive, and it is closed when
//     its last connection is;
//   - a broken socket fails the commands waiting on it, as it would fail
//     the connections of a pool.
package mux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// Config says how a Dialer dials and batches.
type Config struct {
	// Dial opens a socket. Required.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Sockets is how many sockets each address gets; virtual connections
	// are spread over them. 0 means 1.
	Sockets int
	// MaxBatch and MaxBatchBytes end the wait of FlushDelay early: a batch
	// that holds this many commands or bytes is written at once. 0 means
	// no bound.
	MaxBatch      int
	MaxBatchBytes int
	// FlushDelay is how long the writer waits for more commands before a
	// write. 0 writes as soon as the socket is free.
	FlushDelay time.Duration
	// WriteTimeout bounds each write to a socket; a write that times out
	// breaks the socket. 0 means none.
	WriteTimeout time.Duration

	// Prepare, when set, readies each new socket for Do. It gets a virtual
	// connection on the socket and runs on it the handshake a client runs
	// on a connection of its own (authentication, protocol, database,
	// notifications), so that what Do sends afterwards finds the socket in
	// the state a client's connection would be in. It returns what to close
	// when the socket is done with (it holds the connection, which keeps
	// the socket open meanwhile). ctx ends with PrepareTimeout or when the
	// socket breaks. Without Prepare, Do has no socket.
	Prepare        func(ctx context.Context, conn net.Conn) (io.Closer, error)
	PrepareTimeout time.Duration
	// FreshFor, when set, keeps Do off a socket from which nothing was read
	// for that long (an idle socket may be dead without anyone knowing;
	// the caller's ordinary path checks its connections' health).
	FreshFor time.Duration

	// MaxLifetime, when set, retires a socket that has been open that long
	// (less up to a tenth, so that sockets dialed together are not
	// replaced together): new connections and Do go to a new socket, and
	// the old one closes once its connections have, or once it has been
	// quiet for a second (see retireAged). 0 means never.
	MaxLifetime time.Duration
}

// ErrClosed is returned by a Dialer after Close, and wrapped by the errors
// of the commands Close cut short.
var ErrClosed = errors.New("mux: closed")

// Dialer makes virtual connections over shared sockets.
type Dialer struct {
	cfg Config

	mu      sync.Mutex
	sockets map[string][]*socket // network+addr → live, not retired
	dialing map[string][]*dial   // network+addr → sockets being dialed
	all     map[*socket]struct{}
	next    int
	closed  bool
	wg      sync.WaitGroup

	// ready lists the sockets Do may use (see Config.Prepare); rr spreads
	// Do's commands over them.
	ready atomic.Pointer[[]*socket]
	rr    atomic.Uint32

	writes, commands, direct atomic.Uint64
}

// Stats are a Dialer's counters.
type Stats struct {
	Sockets  int    // open now
	Writes   uint64 // batches written
	Commands uint64 // commands written; Commands/Writes is the mean batch
	Direct   uint64 // of Commands, those sent by Do
}

// Stats returns the counters.
func (d *Dialer) Stats() Stats {
	return Stats{Sockets: d.Sockets(), Writes: d.writes.Load(), Commands: d.commands.Load(), Direct: d.direct.Load()}
}

// New returns a Dialer.
func New(cfg Config) *Dialer {
	if cfg.Sockets <= 0 {
		cfg.Sockets = 1
	}
	return &Dialer{cfg: cfg, sockets: map[string][]*socket{}, dialing: map[string][]*dial{}, all: map[*socket]struct{}{}}
}

// DialContext returns a virtual connection to addr over one of its shared
// sockets, opening the socket when it has fewer than Config.Sockets, open
// or being dialed. go-redis dials a pool's connections concurrently: a
// dial that finds every socket of addr still being dialed waits for one
// (or for ctx), and shares its error when it fails.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	key := network + "\x00" + addr
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return nil, ErrClosed
		}
		live, pending := d.sockets[key], d.dialing[key]
		if len(live)+len(pending) < d.cfg.Sockets {
			break // d.mu held: this caller dials
		}
		if len(live) > 0 {
			d.next++
			s := live[d.next%len(live)]
			d.mu.Unlock()
			if v := s.attach(); v != nil {
				return v, nil
			}
			// The socket broke or was retired since it was listed.
			d.unlist(s)
			continue
		}
		p := pending[0]
		d.mu.Unlock()
		select {
		case <-p.done:
			if p.err != nil && !p.ctxEnded {
				return nil, p.err
			}
			// A socket is open, or the dial ended with its caller's
			// context, not ours: look again.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p := &dial{done: make(chan struct{})}
	d.dialing[key] = append(d.dialing[key], p)
	d.mu.Unlock()

	conn, err := d.cfg.Dial(ctx, network, addr)
	d.mu.Lock()
	d.dialed(key, p)
	if err == nil && d.closed {
		_ = conn.Close()
		err = ErrClosed
	}
	if err != nil {
		p.err, p.ctxEnded = err, ctx.Err() != nil
		d.mu.Unlock()
		close(p.done)
		return nil, err
	}
	s := newSocket(d, key, conn)
	if life := d.cfg.MaxLifetime; life > 0 {
		// Up to a tenth earlier, so that the sockets of an address, dialed
		// together, are not all replaced at once.
		if life >= 10 {
			life -= rand.N(life / 10)
		}
		s.aged = time.AfterFunc(life, s.retireAged)
	}
	v := s.attach()
	d.sockets[key] = append(d.sockets[key], s)
	d.all[s] = struct{}{}
	d.wg.Add(2)
	if d.cfg.Prepare != nil {
		d.wg.Add(1)
		go s.prepare()
	}
	d.mu.Unlock()
	close(p.done)
	go s.writeLoop()
	go s.readLoop()
	return v, nil
}

// dial is a socket being dialed; done is closed when the dial ends.
type dial struct {
	done     chan struct{}
	err      error // the dial's error, set before done is closed
	ctxEnded bool  // the dialing caller's context had ended
}

// dialed takes p off the dials under way of key. d.mu must be held.
func (d *Dialer) dialed(key string, p *dial) {
	list := d.dialing[key]
	for i, x := range list {
		if x == p {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(d.dialing, key)
	} else {
		d.dialing[key] = list
	}
}

// unlist takes s off the list of sockets new connections may use.
func (d *Dialer) unlist(s *socket) {
	d.mu.Lock()
	live := d.sockets[s.key]
	for i, x := range live {
		if x == s {
			live = append(live[:i:i], live[i+1:]...)
			break
		}
	}
	if len(live) == 0 {
		delete(d.sockets, s.key)
	} else {
		d.sockets[s.key] = live
	}
	d.mu.Unlock()
}

// forget drops a closed socket.
func (d *Dialer) forget(s *socket) {
	d.mu.Lock()
	delete(d.all, s)
	d.mu.Unlock()
}

// Sockets returns how many sockets are open.
func (d *Dialer) Sockets() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.all)
}

// Close closes every socket: the commands waiting on them fail at once
// with an error wrapping ErrClosed, and later dials fail. It waits for the
// sockets' goroutines, which end as soon as their sockets are closed.
func (d *Dialer) Close() error {
	d.mu.Lock()
	d.closed = true
	all := make([]*socket, 0, len(d.all))
	for s := range d.all {
		all = append(all, s)
	}
	d.sockets = map[string][]*socket{}
	d.ready.Store(nil)
	d.mu.Unlock()
	for _, s := range all {
		s.fail(ErrClosed)
	}
	d.wg.Wait()
	return nil
}

// socket is one shared connection to the server.
type socket struct {
	d    *Dialer
	key  string
	conn net.Conn

	mu      sync.Mutex
	out     []byte // queued bytes, not yet taken by the writer
	spare   []byte // the last batch's buffer, for the next one
	queued  int    // commands in out
	writing bool   // the writer has been woken or is writing
	holding bool   // the writer holds the batch until the reader's next read
	waiting ring   // what each command whose reply has not arrived goes to, in order
	taken   int    // how many of waiting the writer has taken (written or being written)
	err     error  // set once the socket is broken
	retired bool   // no new connections
	vconns  map[*vconn]struct{}
	aged    *time.Timer // Config.MaxLifetime's: set before the socket is shared, then under mu
	queues  uint64      // how many times commands were queued, for closeWhenQuiet

	// Do's side (Config.Prepare): ready while Do may use the socket: it is
	// prepared, not retired, and has received no push (a maintenance
	// notice or an invalidation is for the connections on the socket,
	// which Do's commands bypass). anchor holds the prepared connection;
	// calls counts Do's commands waiting, which keep the socket open.
	ready    bool
	spent    bool // never ready (again): retired, broken, pushed to, or unused
	anchor   io.Closer
	calls    int
	lastRead atomic.Int64 // unix nanoseconds of the last read, for FreshFor

	wake chan struct{} // the writer has work
	done chan struct{} // closed when the socket breaks
}

func newSocket(d *Dialer, key string, conn net.Conn) *socket {
	return &socket{d: d, key: key, conn: conn, vconns: map[*vconn]struct{}{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// attach returns a new virtual connection on s, or nil when s is broken.
func (s *socket) attach() *vconn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil || s.retired {
		return nil
	}
	v := &vconn{s: s, ready: make(chan struct{}, 1)}
	s.vconns[v] = struct{}{}
	return v
}

// detach is called when a virtual connection closes. A socket without
// connections is closed: go-redis keeps idle connections in its pool, so
// this happens when the pool lets them go (idle time, a retired socket's
// last user, Close). A socket ready for Do keeps its prepared connection
// until it is retired, breaks or receives a push.
func (s *socket) detach(v *vconn) {
	s.mu.Lock()
	delete(s.vconns, v)
	last := len(s.vconns) == 0
	if last {
		// Before unlocking: a dial attaching between here and fail would
		// get a socket about to close.
		s.retired = true
	}
	// Do's commands under way keep the socket open: the reader closes it
	// after the last of their replies (see pop).
	unused := last && s.calls == 0
	s.mu.Unlock()
	if last {
		s.unready()
	}
	if unused {
		s.fail(errUnused)
	}
}

var errUnused = errors.New("mux: socket closed with its last connection")

// retire stops giving s to new connections.
func (s *socket) retire() {
	s.mu.Lock()
	if s.retired || s.err != nil {
		s.mu.Unlock()
		return
	}
	s.retired = true
	s.mu.Unlock()
	s.d.unlist(s)
	s.unready()
}

// retireAged retires s at Config.MaxLifetime, and closes it once it has
// been quiet for agedQuiet. Its connections would keep it open otherwise:
// go-redis drops an idle connection of a retired socket only when it next
// takes it from its pool, which holds up to a thousand of them, last in
// first out, and has no reaper.
func (s *socket) retireAged() {
	s.retire()
	s.closeWhenQuiet(math.MaxUint64)
}

// agedQuiet is how long a socket retired for its age must go without a
// command before it is closed. A connection that go-redis took from its
// pool before the socket was retired writes its command within
// microseconds; one that it had not written after a whole second would
// fail as not sent (and be sent again by the retry policy).
const agedQuiet = time.Second

// closeWhenQuiet closes s if nothing was queued on it since the last look
// (queues was seen then) and nothing is waiting for a reply; otherwise it
// looks again after agedQuiet.
func (s *socket) closeWhenQuiet(seen uint64) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	if s.queues != seen || s.waiting.n > 0 || s.queued > 0 || s.calls > 0 {
		seen = s.queues
		s.aged = time.AfterFunc(agedQuiet, func() { s.closeWhenQuiet(seen) })
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	s.fail(errAged)
}

var errAged = errors.New("mux: socket closed at its maximum age")

// enqueue queues the complete commands in b (n of them) for v and wakes
// the writer. (A caller writing the batch itself, to save the writer's
// wake-up, measured no faster: the write system call dominates.)
func (s *socket) enqueue(v *vconn, b []byte, n int) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return &notSentError{err}
	}
	for range n {
		s.waiting.push(v)
	}
	s.queueLocked(b, n)
	return nil
}

// queueLocked queues b (n commands) and wakes the writer; it unlocks s.mu.
func (s *socket) queueLocked(b []byte, n int) {
	s.queues++
	s.out = append(s.out, b...)
	s.queued += n
	idle := !s.writing
	s.writing = true
	// A writer waiting out FlushDelay must hear of a batch that has
	// reached MaxBatch or MaxBatchBytes: only the first command of a
	// batch wakes it otherwise.
	full := s.d.cfg.FlushDelay > 0 && s.fullLocked()
	s.mu.Unlock()
	if idle || full {
		s.wakeWriter() // else the writer sees it when its write is done
	}
}

func (s *socket) wakeWriter() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// takeLocked takes the queued batch for a write.
func (s *socket) takeLocked() []byte {
	buf := s.out
	s.out, s.spare = s.spare[:0], nil
	s.taken += s.queued
	s.d.writes.Add(1)
	s.d.commands.Add(uint64(s.queued))
	s.queued = 0
	return buf
}

// fail breaks the socket: it is closed, and every command waiting on it
// fails with err (one never taken by the writer as not sent).
func (s *socket) fail(err error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	waiting, taken := s.waiting.drain(), s.taken
	for _, r := range waiting {
		if c, ok := r.(*call); ok {
			c.counted = false
		}
	}
	s.out, s.queued, s.taken, s.calls = nil, 0, 0, 0
	if s.aged != nil {
		s.aged.Stop()
	}
	s.mu.Unlock()
	// While the socket's goroutines still run: unready starts a goroutine
	// counted in d.wg, which must not go from zero during Close's Wait.
	s.unready()
	// Each waiting connection gets its error before done wakes them all: a
	// reader woken by done first would take the socket's error, and a
	// command never sent would look sent.
	for i, r := range waiting {
		if i >= taken {
			r.fail(&notSentError{err})
		} else {
			r.fail(err)
		}
	}
	close(s.done)
	_ = s.conn.Close()
	s.d.unlist(s)
	s.d.forget(s)
}

// writeLoop writes what is queued, everything at once, as long as the
// socket lives.
func (s *socket) writeLoop() {
	defer s.d.wg.Done()
	var delay *time.Timer
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		if s.d.cfg.FlushDelay > 0 {
			s.waitForMore(&delay)
		}
		for {
			s.mu.Lock()
			if s.err != nil {
				s.mu.Unlock()
				return
			}
			if s.queued == 0 {
				s.writing = false
				s.mu.Unlock()
				break
			}
			if s.taken >= holdAt && !s.fullLocked() {
				// Many replies are due: hold the batch until the reader
				// has taken the next read's worth (it wakes the writer),
				// so that it grows by what callers queue meanwhile.
				s.holding = true
				s.mu.Unlock()
				break
			}
			buf := s.takeLocked()
			s.mu.Unlock()
			if t := s.d.cfg.WriteTimeout; t > 0 {
				_ = s.conn.SetWriteDeadline(time.Now().Add(t))
			}
			if _, err := s.conn.Write(buf); err != nil {
				s.fail(fmt.Errorf("mux: write: %w", err))
				return
			}
			if cap(buf) <= 1<<20 { // do not keep a large batch's buffer
				s.mu.Lock()
				s.spare = buf[:0]
				s.mu.Unlock()
			}
		}
	}
}

// fullLocked reports whether the queued batch has reached a bound.
func (s *socket) fullLocked() bool {
	c := s.d.cfg
	return (c.MaxBatch > 0 && s.queued >= c.MaxBatch) || (c.MaxBatchBytes > 0 && len(s.out) >= c.MaxBatchBytes)
}

// waitForMore waits up to FlushDelay for the batch to fill.
func (s *socket) waitForMore(t **time.Timer) {
	full := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.fullLocked()
	}
	if full() {
		return
	}
	if *t == nil {
		*t = time.NewTimer(s.d.cfg.FlushDelay)
	} else {
		(*t).Reset(s.d.cfg.FlushDelay)
	}
	for {
		select {
		case <-(*t).C:
			return
		case <-s.done:
			(*t).Stop()
			return
		case <-s.wake:
			if full() {
				(*t).Stop()
				return
			}
		}
	}
}

// readLoop splits the server's replies and hands each to the connection
// whose command it answers.
func (s *socket) readLoop() {
	defer s.d.wg.Done()
	buf := make([]byte, 0, 64<<10)
	var sc resp.Scanner
	// from is the first byte not yet handed out, start the first not yet
	// scanned: they differ while an attribute waits for the reply after
	// it. sc's place in an incomplete frame is relative to start, which
	// therefore never moves back.
	from, start := 0, 0
	for {
		if len(buf) == cap(buf) {
			// Make room: drop what was handed out, or grow for a frame
			// larger than the buffer.
			if from > 0 {
				n := copy(buf, buf[from:])
				buf, start, from = buf[:n], start-from, 0
			} else {
				buf = append(buf, 0)[:len(buf)]
			}
		}
		n, err := s.conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if s.d.cfg.FreshFor > 0 {
			s.lastRead.Store(time.Now().UnixNano())
		}
		if err != nil {
			s.fail(fmt.Errorf("mux: read: %w", err))
			return
		}
		for start < len(buf) {
			n, typ, err := sc.Scan(buf[start:])
			if err != nil {
				s.fail(err)
				return
			}
			if n == 0 {
				break
			}
			start += n
			switch typ {
			case '>':
				// A push is about the socket (a maintenance notice): every
				// connection on it gets a copy, read before its next
				// reply, as on a connection of its own.
				s.unready()
				s.broadcast(buf[from:start])
				from = start
				continue
			case '|':
				continue // an attribute goes with the reply that follows
			}
			r, unused := s.pop()
			if r == nil {
				s.fail(fmt.Errorf("%w: a reply no command asked for", resp.ErrProtocol))
				return
			}
			r.deliver(buf[from:start])
			from = start
			if unused {
				s.fail(errUnused)
				return
			}
		}
		s.releaseHeld()
		// All handed out: reuse the buffer from its start. (Otherwise
		// what is from from on, an incomplete frame or an attribute
		// waiting for its reply, stays.)
		if from == len(buf) {
			buf, from, start = buf[:0], 0, 0
			if cap(buf) > 1<<20 {
				buf = make([]byte, 0, 64<<10)
			}
		}
	}
}

// broadcast hands a push frame to every connection of the socket.
func (s *socket) broadcast(frame []byte) {
	s.mu.Lock()
	vs := make([]*vconn, 0, len(s.vconns))
	for v := range s.vconns {
		vs = append(vs, v)
	}
	s.mu.Unlock()
	for _, v := range vs {
		v.deliverPush(frame)
	}
}

// holdAt is how many replies must be due before the writer holds a new
// batch for the reader's next read (see writeLoop). Below it, with few
// callers, a command is written at once: holding would add a round trip
// to each. Above it, with many, holding turns a stream of one-command
// writes (each caller's next command as its reply wakes it) into batches,
// and the write system call is most of the cost of a command.
const holdAt = 16

// releaseHeld wakes the writer after a read, when it holds a batch.
func (s *socket) releaseHeld() {
	s.mu.Lock()
	held := s.holding && s.queued > 0
	s.holding = false
	s.mu.Unlock()
	if held {
		s.wakeWriter()
	}
}

// pop takes what the next reply goes to. unused reports that it was the
// last of Do's commands on a socket whose connections are all closed: the
// socket is to be closed once the reply is delivered.
func (s *socket) pop() (r receiver, unused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.taken == 0 {
		return nil, false
	}
	s.taken--
	r = s.waiting.pop()
	if c, ok := r.(*call); ok && c.counted {
		c.counted = false
		s.calls--
		unused = s.calls == 0 && len(s.vconns) == 0
	}
	return r, unused
}

// receiver is what a reply goes to: a virtual connection, or one of Do's
// commands.
type receiver interface {
	deliver(frame []byte)
	fail(err error)
}

// ring is a FIFO of receivers that reuses its storage.
type ring struct {
	q       []receiver
	head, n int
}

func (r *ring) push(v receiver) {
	if r.n == len(r.q) {
		q := make([]receiver, max(16, 2*len(r.q)))
		for i := range r.n {
			q[i] = r.q[(r.head+i)%len(r.q)]
		}
		r.q, r.head = q, 0
	}
	r.q[(r.head+r.n)%len(r.q)] = v
	r.n++
}

func (r *ring) pop() receiver {
	if r.n == 0 {
		return nil
	}
	v := r.q[r.head]
	r.q[r.head] = nil
	r.head = (r.head + 1) % len(r.q)
	r.n--
	return v
}

// drain empties r and returns what it held, in order.
func (r *ring) drain() []receiver {
	out := make([]receiver, 0, r.n)
	for r.n > 0 {
		out = append(out, r.pop())
	}
	return out
}

// notSentError is the error of a command that never reached the socket.
type notSentError struct{ err error }

func (e *notSentError) Error() string { return "mux: not sent: " + e.err.Error() }
func (e *notSentError) Unwrap() error { return e.err }

// NotSent reports that the command was not written: the retry policy may
// send it again whatever it is.
func (e *notSentError) NotSent() bool { return true }

// asNotSent returns err as the error of a command that was not sent.
func asNotSent(err error) error {
	var ns *notSentError
	if errors.As(err, &ns) {
		return err
	}
	return &notSentError{err}
}

// timeoutError is a read deadline that passed.
type timeoutError struct{}

func (timeoutError) Error() string   { return "mux: i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
func (timeoutError) Unwrap() error   { return os.ErrDeadlineExceeded }
