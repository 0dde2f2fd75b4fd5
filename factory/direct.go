package factory

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/internal/fastcmd"
	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/sch"
	"github.com/redisfactory/redisfactory/schema"
)

// The direct path of the factory's engine (pipeline.auto, standalone): the
// last hook of the engine's client sends the simple commands
// it can (directCommands, with a reply go-redis reads as one value) onto
// a shared socket itself, and sets the reply on the command, instead of
// taking a virtual connection from go-redis's pool. Every hook before it
// runs as for any command (the retry policy, handoff reruns, metrics,
// tracing, the user's hooks: see addBatchHook); what it skips is go-redis's
// per-connection work (pool, buffers, deadlines, push checks), which was
// most of the CPU a command cost with 8 callers.
//
// It keeps go-redis's results exactly: arguments are encoded as go-redis
// encodes them (else the command takes the ordinary path), and a reply
// that is not a plain value (an error, a RESP3 type, an attribute) is read
// by go-redis's own parser (fastcmd.Decoder). It keeps the connection's
// state: a socket serves it only once a go-redis handshake has run on it
// (prepareSocket), and never after a push (a maintenance notice is for
// the connections on the socket: from then on they carry every command).
// A socket from which nothing was read for health_check_interval is left
// to the ordinary path, whose connections are health-checked. With the
// cache, a read the cache stores (a miss being fetched) takes the direct
// path only on a socket whose tracking, turned on by its handshake
// client, still redirects to the cache's current invalidation connection
// (cache.TrackingOf); when that connection is replaced, such reads take
// the ordinary path, whose connections turn tracking on again, until the
// socket's tracking is refreshed (preparedSocket.tracked). A READONLY
// reply retires the socket, as go-redis drops such a connection. During a
// maintenance window (sch.Engine.Relaxing) every command takes the
// ordinary path, whose timeouts the handoff engine relaxes.

// directCommands are the commands the direct path may send: none blocks,
// none changes the connection's state, and each has a reply go-redis
// reads as one value (fastcmd.Supported checks the command's type too).
var directCommands = func() map[string]bool {
	m := map[string]bool{}
	for _, name := range []string{
		"get", "set", "getdel", "getex", "getset", "getrange", "setrange", "append", "strlen",
		"incr", "incrby", "decr", "decrby", "del", "unlink", "exists", "touch",
		"expire", "pexpire", "expireat", "pexpireat", "persist",
		"hget", "hset", "hdel", "hlen", "hincrby", "hexists", "hsetnx", "hstrlen",
		"lpush", "rpush", "llen", "lindex", "lpop", "rpop",
		"sadd", "srem", "scard", "sismember",
		"zadd", "zcard", "zrem", "zscore", "zincrby", "zrank", "zrevrank",
		"publish", "echo",
	} {
		m[name] = true
	}
	return m
}()

// directHook is the last hook of the engine's client.
type directHook struct {
	mux  *mux.Dialer
	dec  *fastcmd.Decoder
	read time.Duration // go-redis's read timeout (after its defaults); ≤ 0 for none
	// stored, with the cache, reports the commands the cache stores; they
	// go on sockets tracked is true of.
	stored  func(name string) bool
	tracked func(prepared io.Closer) bool
	// relaxing, with smart client handoffs, reports a maintenance window:
	// commands then take the engine's connections, whose timeouts the
	// handoff engine relaxes.
	relaxing func(now time.Time) bool
	// off is set when a hook is added after this one (addBatchHook): a
	// hook after it would not see the commands it sends.
	off atomic.Bool
}

// reqBufs recycles the buffers commands are encoded into (the socket
// copies them into its batch).
var reqBufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

func (h *directHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *directHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *directHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		if h.off.Load() || !directCommands[name] || !fastcmd.Supported(cmd) {
			return next(ctx, cmd)
		}
		now := time.Now()
		if h.relaxing != nil && h.relaxing(now) {
			return next(ctx, cmd)
		}
		var accept func(io.Closer) bool
		if h.stored != nil && h.stored(name) {
			accept = h.tracked
		}
		bp := reqBufs.Get().(*[]byte)
		req, ok := fastcmd.AppendArgs((*bp)[:0], cmd.Args())
		if !ok {
			reqBufs.Put(bp)
			return next(ctx, cmd)
		}
		// As go-redis's pool does, a context already done sends nothing.
		if err := ctx.Err(); err != nil {
			reqBufs.Put(bp)
			cmd.SetErr(err)
			return err
		}
		err := h.mux.DoIf(req, h.deadline(ctx, now), accept, func(frame []byte) error {
			err := h.dec.SetReply(ctx, cmd, frame)
			if redis.IsReadOnlyError(err) {
				// As go-redis drops a connection that answers READONLY (the
				// server was demoted; a new dial of a DNS name or a VIP
				// may reach the new master), the socket serves no more.
				return mux.RetireAfter(err)
			}
			return err
		})
		if cap(req) <= 64<<10 {
			*bp = req[:0]
			reqBufs.Put(bp)
		}
		if errors.Is(err, mux.ErrNotReady) {
			return next(ctx, cmd) // nothing was sent
		}
		if err != nil && cmd.Err() == nil {
			cmd.SetErr(err)
		}
		return err
	}
}

// deadline is the read deadline go-redis would set for the command: its
// read timeout from now, or the context's deadline when sooner.
func (h *directHook) deadline(ctx context.Context, now time.Time) time.Time {
	var tm time.Time
	if h.read < 0 {
		return tm // go-redis sets no read deadline at all (timeouts.read -2)
	}
	if h.read > 0 {
		tm = now.Add(h.read)
	}
	if dl, ok := ctx.Deadline(); ok && (tm.IsZero() || dl.Before(tm)) {
		return dl
	}
	return tm
}

// directActive reports whether a profile's engine gets the direct path:
// it is the factory's engine (standalone).
func directActive(p *schema.Profile) bool {
	return p.Pipeline.Auto && p.Mode == schema.Standalone
}

// startDirect adds the direct path as the engine client's last hook
// (after every extension has attached its hooks, the cache's included).
func (c *Client) startDirect() {
	if c.direct == nil {
		return
	}
	if cc := c.Cache(); cc != nil {
		c.direct.stored, c.direct.tracked = cc.Allowed, trackedSocket
	}
	if eng, ok := engines.Load(c); ok {
		c.direct.relaxing = eng.(*sch.Engine).Relaxing
	}
	c.batch.AddHook(c.direct)
}

// addBatchHook adds hk to the engine's client so that it sees every
// command: the direct path in place steps aside, and a new one goes after
// hk.
func (c *Client) addBatchHook(hk redis.Hook) {
	c.directMu.Lock()
	defer c.directMu.Unlock()
	if c.direct == nil {
		c.batch.AddHook(hk)
		return
	}
	c.direct.off.Store(true)
	c.batch.AddHook(hk)
	old := c.direct
	c.direct = &directHook{mux: old.mux, dec: old.dec, read: old.read, stored: old.stored, tracked: old.tracked, relaxing: old.relaxing}
	c.batch.AddHook(c.direct)
}

// errAnchorSpent fails a second dial of a socket's handshake client.
var errAnchorSpent = errors.New("redisfactory: the handshake connection of a shared socket is closed")

// preparedSocket is what prepareSocket returns for a socket: the client
// that ran the handshake on it (closing it closes its connection), and,
// with the cache, whether the tracking it turned on is in force.
type preparedSocket struct {
	client *redis.Client
	cache  *cache.Cache
	conn   net.Conn // what client's pool holds, every wrapper on

	tracking    atomic.Pointer[func() bool] // nil: not tracked (yet)
	refreshing  atomic.Bool
	lastRefresh atomic.Int64   // unix nanoseconds
	wg          sync.WaitGroup // a refresh under way
	timeout     time.Duration
}

// refreshEvery bounds how often a socket's tracking is refreshed (while
// the cache's invalidation connection is down, a refresh cannot help).
const refreshEvery = 100 * time.Millisecond

// Close closes the handshake client, after a refresh under way.
func (ps *preparedSocket) Close() error {
	err := ps.client.Close() // a refresh under way fails at once
	ps.wg.Wait()
	return err
}

// tracked reports whether the socket's tracking redirects to the cache's
// current invalidation connection. When it does not (the socket was
// prepared before that connection was up, or it was replaced since), it
// has the handshake client send one more command, in the background: the
// cache's connection wrapper turns tracking on again before it, and the
// socket serves the cache's reads directly again once it has.
func (ps *preparedSocket) tracked() bool {
	if f := ps.tracking.Load(); f != nil && (*f)() {
		return true
	}
	now := time.Now().UnixNano()
	if now-ps.lastRefresh.Load() >= int64(refreshEvery) && ps.refreshing.CompareAndSwap(false, true) {
		ps.lastRefresh.Store(now)
		ps.wg.Add(1)
		go func() {
			defer ps.wg.Done()
			defer ps.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), ps.timeout)
			defer cancel()
			if ps.client.Echo(ctx, "redisfactory").Err() == nil {
				ps.track()
			}
		}()
	}
	return false
}

// track records the tracking the handshake client's connection has on.
func (ps *preparedSocket) track() {
	if f := ps.cache.TrackingOf(ps.conn); f != nil {
		ps.tracking.Store(&f)
	}
}

// trackedSocket is the directHook.tracked of a profile with the cache.
// It runs under the socket's lock: it only loads, or starts a refresh.
func trackedSocket(prepared io.Closer) bool {
	ps, ok := prepared.(*preparedSocket)
	return ok && ps.cache != nil && ps.tracked()
}

// prepareSocket is the engine's mux.Config.Prepare: it runs go-redis's
// handshake of the profile (the engine client's options and dialer
// wrappers: authentication, RESP3, database, client name, notifications,
// extensions' OnConnect, and the cache's tracking) on conn, a virtual
// connection of a new socket, by an ECHO through a one-connection client,
// which it returns in a preparedSocket. c.Cache is looked up then: the
// first socket is dialed once the client is built.
func (c *Client) prepareSocket(p *schema.Profile, cm common) func(ctx context.Context, conn net.Conn) (io.Closer, error) {
	return func(ctx context.Context, conn net.Conn) (io.Closer, error) {
		var used atomic.Bool
		acm := cm
		acm.dialer = cm.virtual(func(context.Context, string, string) (net.Conn, error) {
			if used.Swap(true) {
				return nil, errAnchorSpent
			}
			return conn, nil
		})
		o := virtualOptions(standaloneOptions(p, acm))
		o.PoolSize, o.MaxIdleConns = 1, 1
		o.ConnMaxIdleTime, o.ConnMaxLifetime = -1, 0
		ac := redis.NewClient(o)
		cc := c.Cache()
		var dialed net.Conn // what go-redis holds, every wrapper on
		if cc != nil {
			ac.AddHook(dialCapture{&dialed})
			ac.AddHook(cc.DialHook())
		}
		// ECHO, not PING: the cache counts a PING as part of a handshake,
		// and turns tracking on before the first command after it.
		if err := ac.Echo(ctx, "redisfactory").Err(); err != nil {
			_ = ac.Close()
			return nil, err
		}
		ao := ac.Options() // go-redis's defaults applied
		ps := &preparedSocket{client: ac, cache: cc, conn: dialed, timeout: ao.DialTimeout + max(ao.ReadTimeout, 0)}
		if cc != nil {
			ps.track()
		}
		return ps, nil
	}
}

// dialCapture records the connection its dial returns.
type dialCapture struct{ conn *net.Conn }

func (d dialCapture) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			*d.conn = conn
		}
		return conn, err
	}
}
func (d dialCapture) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (d dialCapture) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
