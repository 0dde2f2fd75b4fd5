package factory

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/schema"
)

// startAutoPipeline builds the auto-pipeliner of a profile with
// pipeline.auto: a second go-redis client with the profile's options (its
// own connections, the same dialer, health checks, extensions and events)
// whose auto-pipeliner batches the commands of concurrent callers.
//
// It is a client of its own because a batch must be retried differently
// from a pipeline the user built: the commands of a batch come from
// independent callers, so the retry policy judges each one alone
// (retry.Policy.BatchHook) — a failed batch retries its GETs and never its
// INCR — while a user's Pipelined keeps its all-or-nothing rule on the
// profile's main client. go-redis's own retries stay off on both.
func (c *Client) startAutoPipeline(p *schema.Profile, cm common, outer func(redis.UniversalClient)) error {
	// Its connections are tracked, so that a Close whose context ends
	// can cut them (see closeWithin).
	c.batchConns = &connSet{conns: map[net.Conn]net.Conn{}}
	cm.dialer = c.batchConns.dialer(cm.dialer)
	var bc *redis.Client
	switch p.Mode {
	case schema.Sentinel:
		bc = redis.NewFailoverClient(failoverOptions(p, cm))
	case schema.Standalone:
		bc = redis.NewClient(standaloneOptions(p, cm))
	default:
		return errors.New("auto-pipelining needs a standalone or sentinel profile")
	}
	outer(bc)
	bc.AddHook(c.policy.BatchHook())
	ap, err := bc.AutoPipelineWithOptions(autoPipelineOptions(p.Pipeline))
	if err != nil {
		_ = bc.Close()
		return err
	}
	c.batch, c.ap = bc, ap
	return nil
}

// autoPipelineOptions maps the pipeline block onto go-redis's options for
// the blocking face. More than one batch in flight gives up the order
// between batches, which go-redis makes explicit with Unordered; each
// caller of the blocking face waits for its command, so a caller's own
// commands stay in order either way.
func autoPipelineOptions(pl schema.Pipeline) *redis.AutoPipelineOptions {
	return &redis.AutoPipelineOptions{
		MaxBatchSize:         pl.MaxBatch,
		MaxBatchBytes:        int(pl.MaxBatchBytes),
		MaxConcurrentBatches: max(1, pl.ConcurrentBatches),
		Unordered:            pl.ConcurrentBatches > 1,
		MaxFlushDelay:        pl.FlushDelay,
	}
}

// AutoPipeliner returns the profile's auto-pipeliner, or nil when the
// profile does not set pipeline.auto. The profile's Handle already sends
// the commands it can through it.
func (c *Client) AutoPipeliner() *redis.AutoPipeliner { return c.ap }

// closeAutoPipeline closes the auto-pipeliner, which sends the commands it
// has accepted and waits for their replies, then its client.
func (c *Client) closeAutoPipeline() error {
	if c.ap == nil {
		return nil
	}
	return errors.Join(c.ap.Close(), c.batch.Close())
}

// connSet tracks the open connections of the auto-pipeliner's client.
//
// go-redis's AutoPipeliner.Close waits for the replies of the batches it
// has sent, bounded only by the socket timeout (and an internal backstop of
// about 30s); the client's own Close runs that same wait before it closes
// its pool. Neither takes a context. When the factory's Close context ends
// first, closeAll closes the sockets underneath go-redis: the reads under
// way fail at once, the batches complete with an error and the drain ends,
// leaving no goroutine behind.
type connSet struct {
	mu     sync.Mutex
	conns  map[net.Conn]net.Conn // the connection go-redis holds → the socket under it
	closed bool                  // closeAll ran: new connections are closed at once
}

// dialer returns next with every connection it makes tracked.
func (s *connSet) dialer(next dialFunc) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: conn, set: s}
		var out net.Conn = tc
		if sc, ok := conn.(syscall.Conn); ok {
			// go-redis's pre-use check (and the health check in
			// healthConn.SyscallConn) looks for syscall.Conn on the
			// connection it holds; keep it visible, and only when the
			// connection underneath has it (not under TLS).
			out = &trackedSysConn{trackedConn: tc, sys: sc}
		}
		tc.self = out
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = conn.Close()
			return nil, redis.ErrClosed
		}
		s.conns[out] = conn
		s.mu.Unlock()
		return out, nil
	}
}

// closeAll closes every tracked connection, and every later one as soon
// as it is dialed.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[net.Conn]net.Conn{}
	s.mu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
}

func (s *connSet) forget(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// trackedConn leaves the set when go-redis closes it.
type trackedConn struct {
	net.Conn
	set  *connSet
	self net.Conn // what go-redis holds and the set knows: this or its trackedSysConn
}

func (c *trackedConn) Close() error {
	c.set.forget(c.self)
	return c.Conn.Close()
}

// NetConn returns the wrapped connection, for code that looks for the
// socket underneath.
func (c *trackedConn) NetConn() net.Conn { return c.Conn }

// trackedSysConn is a trackedConn whose connection exposes its socket.
type trackedSysConn struct {
	*trackedConn
	sys syscall.Conn
}

func (c *trackedSysConn) SyscallConn() (syscall.RawConn, error) { return c.sys.SyscallConn() }
