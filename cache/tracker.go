package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redisfactory/redisfactory/internal/resp"
)

// nodeState is a node's invalidation connection as data connections see
// it: gen changes every time a new invalidation connection comes up; id is
// its client id, 0 while none is up.
type nodeState struct {
	gen uint64
	id  int64
}

// node is one server's invalidation connection.
type node struct {
	c     *Cache
	addr  string
	state atomic.Pointer[nodeState]

	mu      sync.Mutex
	conn    net.Conn
	closed  bool
	stop    chan struct{}
	kick    chan struct{}
	isUp    bool
	lastGen uint64
}

var downState = &nodeState{}

// node returns the node of addr, creating it (and dialling its
// invalidation connection once, synchronously) on first use. It returns nil
// once the cache is closed.
func (c *Cache) node(ctx context.Context, addr string) *node {
	c.nodesMu.Lock()
	if c.closed {
		c.nodesMu.Unlock()
		return nil
	}
	var old []*node
	if c.cfg.ResolveByRemote && c.primary != addr {
		if c.primary != "" {
			for a, n := range c.nodes {
				if a != addr {
					old = append(old, n)
					delete(c.nodes, a)
				}
			}
		}
		c.primary = addr
	}
	n, ok := c.nodes[addr]
	if !ok {
		n = &node{c: c, addr: addr, stop: make(chan struct{}), kick: make(chan struct{}, 1)}
		n.state.Store(downState)
		c.down.Add(1)
		c.epoch.Add(1)
		c.nodes[addr] = n
	}
	c.nodesMu.Unlock()
	if len(old) > 0 {
		// The data connections now go to another server (a failover):
		// nothing cached from the old one can be trusted.
		for _, o := range old {
			o.close()
		}
		c.flush("failover to "+addr, true)
	}
	if !ok {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.Timeout)
		conn, id, err := n.connect(cctx)
		cancel()
		c.wg.Add(1)
		go n.run(conn, id, err)
	}
	return n
}

func (n *node) close() {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return
	}
	n.closed = true
	close(n.stop)
	if n.conn != nil {
		_ = n.conn.Close()
	}
	up := n.isUp
	n.mu.Unlock()
	// A closed node no longer counts as down (it was either up or down).
	_ = up
}

// run keeps the node's invalidation connection up until the node is closed.
func (n *node) run(conn net.Conn, id int64, err error) {
	c := n.c
	defer c.wg.Done()
	backoff := 10 * time.Millisecond
	for {
		if err == nil {
			backoff = 10 * time.Millisecond
			err = n.serve(conn, id)
		}
		select {
		case <-n.stop:
			n.mu.Lock()
			wasUp := n.isUp
			n.isUp = false
			n.mu.Unlock()
			if !wasUp {
				c.down.Add(-1)
			}
			return
		default:
		}
		if c.cfg.OnChannel != nil {
			c.cfg.OnChannel(n.addr, false, err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-n.stop:
			t.Stop()
			c.down.Add(-1)
			return
		case <-t.C:
		case <-n.kick:
			t.Stop()
		}
		backoff = min(backoff*2, time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		go func() {
			select {
			case <-n.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		conn, id, err = n.connect(ctx)
		cancel()
	}
}

// connect dials the invalidation connection and subscribes it.
func (n *node) connect(ctx context.Context) (net.Conn, int64, error) {
	c := n.c
	if c.cfg.Dial == nil {
		return nil, 0, errors.New("redisfactory/cache: no dialer")
	}
	conn, err := c.cfg.Dial(ctx, n.addr)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (net.Conn, int64, error) {
		_ = conn.Close()
		return nil, 0, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// RESP3: replies and invalidation pushes are told apart, so the
	// connection can also run ROLE while it receives invalidations.
	hello := []string{"HELLO", "3"}
	if c.cfg.Password != "" {
		user := c.cfg.Username
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, c.cfg.Password)
	}
	if c.cfg.ClientName != "" {
		hello = append(hello, "SETNAME", c.cfg.ClientName+"-invalidations")
	}
	req := resp.AppendCommand(nil, hello...)
	req = resp.AppendCommand(req, "CLIENT", "ID")
	if c.cfg.ExpectMaster {
		req = resp.AppendCommand(req, "ROLE")
	}
	if _, err := conn.Write(req); err != nil {
		return fail(err)
	}
	r := bufio.NewReader(conn)
	reply := func() (any, error) {
		for {
			v, err := resp.ReadValue(r)
			if _, push := v.(resp.Push); push && err == nil {
				continue
			}
			if e, ok := v.(resp.ErrorReply); ok {
				return nil, fmt.Errorf("invalidation connection to %s: %s", n.addr, string(e))
			}
			return v, err
		}
	}
	if _, err := reply(); err != nil {
		return fail(err)
	}
	v, err := reply()
	if err != nil {
		return fail(err)
	}
	id, ok := v.(int64)
	if !ok {
		return fail(fmt.Errorf("invalidation connection to %s: CLIENT ID replied %v", n.addr, v))
	}
	if c.cfg.ExpectMaster {
		v, err := reply()
		if err != nil {
			return fail(err)
		}
		if err := checkRole(n.addr, v); err != nil {
			return fail(err)
		}
	}
	_ = conn.SetDeadline(time.Time{})
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fail(ErrClosed)
	}
	n.conn = conn
	n.mu.Unlock()
	return &bufConn{Conn: conn, r: r}, id, nil
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

// serve marks the node up and applies invalidations until the connection
// fails. It then marks the node down and flushes the cache.
func (n *node) serve(conn net.Conn, id int64) error {
	c := n.c
	bc := conn.(*bufConn)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		_ = conn.Close()
		return ErrClosed
	}
	n.lastGen++
	n.state.Store(&nodeState{gen: n.lastGen, id: id})
	n.isUp = true
	n.mu.Unlock()
	c.down.Add(-1)
	if c.cfg.OnChannel != nil {
		c.cfg.OnChannel(n.addr, true, nil)
	}

	// PING keeps the connection honest: a silent peer (blackholed
	// network, stopped server) is noticed within three intervals.
	stopPing := make(chan struct{})
	var pw sync.WaitGroup
	pw.Add(1)
	go func() {
		defer pw.Done()
		t := time.NewTicker(c.cfg.PingInterval)
		defer t.Stop()
		ping := resp.AppendCommand(nil, "PING")
		if c.cfg.ExpectMaster {
			ping = resp.AppendCommand(nil, "ROLE")
		}
		for {
			select {
			case <-stopPing:
				return
			case <-t.C:
				_ = conn.SetWriteDeadline(time.Now().Add(c.cfg.PingInterval))
				if _, err := conn.Write(ping); err != nil {
					_ = conn.Close()
					return
				}
			}
		}
	}()
	var err error
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * c.cfg.PingInterval))
		var v any
		v, err = resp.ReadValue(bc.r)
		if err != nil {
			break
		}
		if p, ok := v.(resp.Push); ok {
			c.apply(p)
		} else if c.cfg.ExpectMaster {
			if err = checkRole(n.addr, v); err != nil {
				break
			}
		}
	}
	close(stopPing)
	_ = conn.Close()
	pw.Wait()

	// Down: everything cached may have missed an invalidation.
	n.mu.Lock()
	n.state.Store(downState)
	n.isUp = false
	n.conn = nil
	n.mu.Unlock()
	c.down.Add(1)
	c.flush("invalidation connection to "+n.addr+" lost", !c.isClosed())
	return err
}

// apply handles one push of an invalidation connection:
// ["invalidate", keys] (RESP3), or ["message", "__redis__:invalidate", keys];
// keys nil means the server flushed a database.
func (c *Cache) apply(msg resp.Push) {
	if len(msg) < 2 {
		return
	}
	kind, _ := msg[0].(string)
	var keys any
	switch {
	case kind == "invalidate":
		keys = msg[1]
	case kind == "message" && len(msg) == 3:
		keys = msg[2]
	default:
		return
	}
	switch keys := keys.(type) {
	case nil:
		c.Flush("server flushed the database")
		if c.cfg.OnInvalidate != nil {
			c.cfg.OnInvalidate(nil)
		}
	case []any:
		var names []string
		if c.cfg.OnInvalidate != nil {
			names = make([]string, 0, len(keys))
		}
		for _, k := range keys {
			if s, ok := k.(string); ok {
				c.Invalidate(s)
				if names != nil {
					names = append(names, s)
				}
			}
		}
		if names != nil {
			c.cfg.OnInvalidate(names)
		}
	}
}

// errNotMaster: the server behind a sentinel profile's invalidation
// connection is no longer the master (a failover happened).
var errNotMaster = errors.New("redisfactory/cache: server is no longer the master")

func checkRole(addr string, v any) error {
	a, ok := v.([]any)
	if !ok || len(a) == 0 {
		return nil // PONG and the like
	}
	if role, _ := a[0].(string); role != "master" {
		return fmt.Errorf("%w (%s is %s)", errNotMaster, addr, role)
	}
	return nil
}

// trackedConn turns tracking on, redirected to its node's live
// invalidation connection, before it writes a command after go-redis's
// handshake, and again whenever that connection was replaced.
type trackedConn struct {
	net.Conn
	n     *node
	gen   uint64
	ready bool
	// pubsub: the first command after the handshake subscribed, so this is
	// a go-redis PubSub connection. It is never tracked: its reader runs
	// while other goroutines write (ReceiveMessage may block in Read
	// before Subscribe is called), so track could not read the TRACKING
	// replies without taking them, or the subscription's, from that
	// reader; and it needs no tracking, since a PubSub connection never
	// sends a command whose reply the cache stores.
	pubsub bool
	// awaiting is set by a Write and cleared by a Read that returns data:
	// while it is set, a Write continues the request being written (go-redis
	// writes a large command in several Writes), and tracking, if its
	// connection was replaced meanwhile, is set up before the next request
	// instead of in the middle of this one.
	awaiting atomic.Bool
}

// Read clears awaiting once the reply comes.
func (t *trackedConn) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.awaiting.Store(false)
	}
	return n, err
}

func (t *trackedConn) Write(p []byte) (int, error) {
	if t.pubsub {
		return t.Conn.Write(p)
	}
	if !t.ready {
		if isHandshake(p) {
			return t.Conn.Write(p)
		}
		t.ready = true
		if isSubscribe(p) {
			t.pubsub = true
			return t.Conn.Write(p)
		}
	}
	if st := t.n.state.Load(); st.gen != t.gen && !t.awaiting.Load() {
		if st.id == 0 {
			// No invalidation connection: this connection may read
			// untracked keys. The node counts as down, so nothing read
			// now is stored; ask for a reconnect.
			select {
			case t.n.kick <- struct{}{}:
			default:
			}
		} else {
			if err := t.track(st.id); err != nil {
				return 0, err
			}
			t.gen = st.gen
		}
	}
	n, err := t.Conn.Write(p)
	if n > 0 {
		t.awaiting.Store(true)
	}
	return n, err
}

// track sends CLIENT TRACKING OFF and CLIENT TRACKING ON REDIRECT id … and
// reads both replies, byte by byte so that nothing of go-redis's is read.
func (t *trackedConn) track(id int64) error {
	c := t.n.c
	req := resp.AppendCommand(nil, "CLIENT", "TRACKING", "OFF")
	args := []string{"CLIENT", "TRACKING", "ON", "REDIRECT", strconv.FormatInt(id, 10)}
	if c.cfg.Mode == Broadcast {
		args = append(args, "BCAST")
		for _, p := range c.cfg.Prefixes {
			args = append(args, "PREFIX", p)
		}
	}
	req = resp.AppendCommand(req, args...)
	_ = t.Conn.SetDeadline(time.Now().Add(c.cfg.Timeout))
	defer func() { _ = t.Conn.SetDeadline(time.Time{}) }()
	if _, err := t.Conn.Write(req); err != nil {
		return err
	}
	// The buffer must hold a whole line of the reply: ReadValue reads
	// lines with ReadSlice, and the refusal of a stale REDIRECT id is an
	// error line of about 60 bytes. byteReader keeps it from reading past
	// the replies whatever its size.
	r := bufio.NewReaderSize(byteReader{t.Conn}, 4096)
	for got := 0; got < 2; {
		v, err := resp.ReadValue(r)
		if err != nil {
			return err
		}
		if _, push := v.(resp.Push); push {
			continue
		}
		got++
		if e, ok := v.(resp.ErrorReply); ok && got == 2 {
			// The invalidation connection is gone (a stale id): the
			// node will notice and replace it; fail this write.
			return fmt.Errorf("redisfactory/cache: CLIENT TRACKING: %s", string(e))
		}
	}
	return nil
}

// byteReader reads one byte at a time, so that a bufio.Reader on top of it
// never reads past the frame asked for.
type byteReader struct{ r io.Reader }

func (b byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return b.r.Read(p)
}
