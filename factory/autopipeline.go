package factory

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/internal/fastcmd"
	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/schema"
)

// startAutoPipeline builds the engine of a profile with pipeline.auto: a
// second go-redis client of the profile (same options, dialer wrappers,
// hooks and extensions) that the handle sends the commands it can batch
// to.
//
// A standalone profile gets the factory's own engine (internal/mux): the
// second client's connections are virtual, shared over a few sockets that
// are written and read at the same time, so the commands of concurrent
// callers go out together while go-redis still runs every command on its
// own, with its caller's context and deadline, the hooks, and the retry
// policy (retry.Policy.Hook: a lost INCR is never sent twice, a command
// that never left the queue may go again). A maintenance notice on a
// socket reaches every virtual connection on it, so smart client handoffs
// retire and relax them as they would pooled connections.
//
// Sentinel profiles get go-redis's auto-pipeliner instead: go-redis dials
// the sentinels with the same dialer and subscribes on those connections,
// which a shared socket cannot carry. Its batches come from independent
// callers, so the retry policy judges each command of a failed batch alone
// (retry.Policy.BatchHook).
func (c *Client) startAutoPipeline(p *schema.Profile, cm common, outer, batchOuter func(redis.UniversalClient)) error {
	// The sockets are tracked, so that a Close whose context ends can cut
	// them (see closeWithin).
	c.batchConns = &connSet{conns: map[net.Conn]net.Conn{}}
	if p.Mode == schema.Standalone {
		mc := muxConfig(p.Pipeline, c.batchConns.dialer(cm.sockets), cm.write)
		// go-redis applies the maximum age to its virtual connections,
		// which cost nothing to replace; the sockets are what the profile
		// means.
		mc.MaxLifetime = p.Pool.ConnMaxLifetime
		if directActive(p) {
			mc.Prepare = c.prepareSocket(p, cm)
			mc.PrepareTimeout = max(p.Timeouts.Connect, 0) + max(cm.read, 0)
			if mc.PrepareTimeout == 0 {
				mc.PrepareTimeout = 10 * time.Second
			}
			mc.FreshFor = p.HealthCheckInterval
		}
		c.mux = mux.New(mc)
		cm.dialer = cm.virtual(c.mux.DialContext)
		bc := redis.NewClient(virtualOptions(standaloneOptions(p, cm)))
		outer(bc)
		bc.AddHook(c.policy.Hook())
		c.batch, c.batched = bc, bc
		if directActive(p) {
			c.direct = &directHook{mux: c.mux, dec: fastcmd.NewDecoder(), read: bc.Options().ReadTimeout}
		}
		return nil
	}
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
	batchOuter(bc)
	bc.AddHook(c.policy.BatchHook())
	ap, err := bc.AutoPipelineWithOptions(autoPipelineOptions(p.Pipeline))
	if err != nil {
		_ = bc.Close()
		return err
	}
	c.batch, c.ap, c.batched = bc, ap, ap
	return nil
}

// virtualPoolSize is how many virtual connections the factory's engine
// lets go-redis open: one per caller waiting for a reply. They cost a
// go-redis connection's buffers each, and nothing on the server.
const virtualPoolSize = 1024

// virtualOptions adapts the profile's options to virtual connections: the
// pool bounds how many callers wait at once, not how many sockets are
// open (pipeline.concurrent_batches), and a virtual connection needs no
// warm-up.
func virtualOptions(o *redis.Options) *redis.Options {
	o.PoolSize = max(o.PoolSize, virtualPoolSize)
	o.MaxActiveConns = 0
	o.MinIdleConns = 0
	return o
}

// muxConfig maps the pipeline block onto the factory's engine.
func muxConfig(pl schema.Pipeline, dial dialFunc, write time.Duration) mux.Config {
	return mux.Config{
		Dial:          dial,
		Sockets:       max(1, pl.ConcurrentBatches),
		MaxBatch:      pl.MaxBatch,
		MaxBatchBytes: int(pl.MaxBatchBytes),
		FlushDelay:    pl.FlushDelay,
		WriteTimeout:  write,
	}
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

// AutoPipeliner returns go-redis's auto-pipeliner of a sentinel profile
// or a profile with sch active that sets pipeline.auto, and nil otherwise
// (a standalone profile uses the factory's engine, see Batched). The
// profile's Handle already sends the commands it can through it.
func (c *Client) AutoPipeliner() *redis.AutoPipeliner { return c.ap }

// PipelineStats are the counters of the factory's pipelining engine.
type PipelineStats struct {
	Sockets  int    // sockets open
	Writes   uint64 // batches written
	Commands uint64 // commands written; Commands/Writes is the mean batch
	Direct   uint64 // of Commands, those the direct path sent (see direct.go)
}

// PipelineStats returns the counters of the factory's pipelining engine;
// ok is false when the profile does not use it (no pipeline.auto, or a
// sentinel profile, which uses go-redis's auto-pipeliner).
func (c *Client) PipelineStats() (s PipelineStats, ok bool) {
	if c.mux == nil {
		return PipelineStats{}, false
	}
	ms := c.mux.Stats()
	return PipelineStats{Sockets: ms.Sockets, Writes: ms.Writes, Commands: ms.Commands, Direct: ms.Direct}, true
}

// Batched returns where the profile's Handle sends the commands it can
// batch with pipeline.auto (the factory's engine's client, or go-redis's
// auto-pipeliner), or nil without pipeline.auto.
func (c *Client) Batched() redis.UniversalClient { return c.batched }

// closeAutoPipeline closes the engine of pipeline.auto: go-redis's
// auto-pipeliner sends the commands it has accepted and waits for their
// replies; the factory's engine fails the commands still waiting (the
// generation has drained first).
func (c *Client) closeAutoPipeline() error {
	switch {
	case c.ap != nil:
		return errors.Join(c.ap.Close(), c.batch.Close())
	case c.mux != nil:
		err := errors.Join(c.batch.Close(), c.mux.Close())
		if c.direct != nil {
			err = errors.Join(err, c.direct.dec.Close())
		}
		return err
	}
	return nil
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
