package factory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/mux"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/retry"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// BuildOptions configure Build.
type BuildOptions struct {
	// OnBuild is called with the new client before Build returns it.
	OnBuild func(profile string, client redis.UniversalClient) error
	// RetryOptions are passed to the retry policy (tests inject Sleep and
	// Rand). Its Observer is set by Build.
	RetryOptions retry.Options
}

// Client is one profile's go-redis client with what the factory added:
// its profile, its retry policy and its health.
type Client struct {
	redis.UniversalClient

	name    string
	profile *schema.Profile
	rt      *runtime.Runtime
	policy  *retry.Policy

	health    atomic.Pointer[Health]
	checks    atomic.Uint64 // health-check PINGs sent
	failures  atomic.Uint64 // health-check PINGs that failed
	probeMu   sync.Mutex
	stopProbe func()
	exts      []*extension
	// With pipeline.auto (see autopipeline.go): where the handle sends
	// batchable commands (batched), the client behind it (batch), and its
	// sockets (batchConns). The factory's engine (mux) or, for a sentinel
	// profile, go-redis's auto-pipeliner (ap).
	batched    redis.UniversalClient
	batch      *redis.Client
	mux        *mux.Dialer
	ap         *redis.AutoPipeliner
	batchConns *connSet // the batch client's sockets
	// The engine's direct path (direct.go), replaced when a hook is
	// added after it (addBatchHook, under directMu).
	direct    *directHook
	directMu  sync.Mutex
	closing   atomic.Bool // Close has begun: no more health-check PINGs
	closeOnce sync.Once
	closeErr  error
}

// Build builds the client of one validated profile. Most users call New,
// which builds every profile of a configuration.
//
// A profile that does not pass schema.ValidateProfile is refused with an
// error listing its issues: go-redis panics on some values validation
// rejects (a pool size beyond int32), and Build never panics. A panic from
// go-redis or an OnBuild callback that validation did not foresee is
// turned into an error naming the profile, as a last line of defence.
func Build(name string, p *schema.Profile, rt *runtime.Runtime, opts BuildOptions) (c *Client, err error) {
	if p == nil {
		return nil, fmt.Errorf("redisfactory: profile %q is nil", name)
	}
	if rt == nil {
		return nil, errors.New("redisfactory: Build needs a runtime")
	}
	routeGoRedisLogs()
	if is := schema.ValidateProfile(name, p); len(is) > 0 {
		return nil, fmt.Errorf("redisfactory: profile %s is invalid: %w", name, is.Sort())
	}
	c = &Client{name: name, profile: p, rt: rt}
	defer func() {
		if r := recover(); r != nil {
			if c.UniversalClient != nil {
				_ = c.UniversalClient.Close()
			}
			_ = closeExtensions(c.exts)
			c, err = nil, fmt.Errorf("redisfactory: profile %s: building the client failed: %v", name, r)
		}
	}()
	if err := c.build(opts); err != nil {
		return nil, err
	}
	return c, nil
}

// build does Build's work on c, which holds the name, profile and runtime.
func (c *Client) build(opts BuildOptions) error {
	name, p, rt := c.name, c.profile, c.rt
	tlsCfg, err := tlsConfig(p)
	if err != nil {
		return fmt.Errorf("redisfactory: profile %s: %w", name, err)
	}
	c.health.Store(&Health{State: StateUnknown})
	bus := rt.Events()

	ropts := opts.RetryOptions
	userObserver := ropts.Observer
	ropts.Observer = func(e retry.Event) {
		bus.Publish(retryEvent(name, e))
		if userObserver != nil {
			userObserver(e)
		}
	}
	c.policy = retry.NewPolicy(p, ropts)

	read, write := p.Timeouts.EffectiveRead(), p.Timeouts.EffectiveWrite()
	hooks := healthHooks{
		checked: func() { c.checks.Add(1) },
		failed: func(err error) {
			c.failures.Add(1)
			bus.Publish(runtime.Event{Kind: runtime.HealthCheckFailed, Profile: name, Class: string(errclass.Of(err)), Err: err,
				Message: "idle connection failed its PING; it is dropped and the command goes to another connection"})
			bus.Publish(runtime.Event{Kind: runtime.ConnReplaced, Profile: name, Class: string(errclass.Of(err))})
		},
		closing: c.closing.Load,
	}
	if c.exts, err = extensions(name, p, rt); err != nil {
		return fmt.Errorf("redisfactory: profile %s: %w", name, err)
	}
	sockets := socketDialer(p.Timeouts.Connect, tlsCfg)
	cm := common{
		dialer: wrapDialer(c.exts, withHealth(sockets, p.HealthCheckInterval, read, hooks)),
		// The factory's pipelining engine wraps its virtual connections
		// as the pool's are wrapped: health check, then extensions.
		virtual: func(d dialFunc) dialFunc {
			return wrapDialer(c.exts, withHealth(d, p.HealthCheckInterval, read, hooks))
		},
		sockets:   sockets,
		tls:       tlsCfg,
		read:      read,
		write:     write,
		onConnect: chainOnConnect(c.exts),
	}
	outer := func(owner redis.UniversalClient) {
		for _, e := range c.exts {
			if e.outerHook != nil {
				owner.AddHook(e.outerHook(owner))
			}
		}
	}
	batchOuter := func(owner redis.UniversalClient) {
		for _, e := range c.exts {
			switch {
			case e.batchHook != nil:
				owner.AddHook(e.batchHook)
			case e.outerHook != nil:
				owner.AddHook(e.outerHook(owner))
			}
		}
	}

	switch p.Mode {
	case schema.Cluster:
		cc := redis.NewClusterClient(clusterOptions(p, cm))
		outer(cc)
		installClusterPolicy(cc, c.policy)
		c.UniversalClient = cc
	case schema.Sentinel:
		fc := redis.NewFailoverClient(failoverOptions(p, cm))
		outer(fc)
		fc.AddHook(c.policy.Hook())
		c.UniversalClient = fc
	default:
		sc := redis.NewClient(standaloneOptions(p, cm))
		outer(sc)
		sc.AddHook(c.policy.Hook())
		c.UniversalClient = sc
	}
	if p.Pipeline.Auto {
		if err := c.startAutoPipeline(p, cm, outer, batchOuter); err != nil {
			_ = c.UniversalClient.Close()
			_ = closeExtensions(c.exts)
			return fmt.Errorf("redisfactory: profile %s: pipeline: %w", name, err)
		}
	}
	for _, e := range c.exts {
		if e.attach == nil {
			continue
		}
		if err := e.attach(c); err != nil {
			_ = c.closeAutoPipeline()
			_ = c.UniversalClient.Close()
			_ = closeExtensions(c.exts)
			return fmt.Errorf("redisfactory: profile %s: %w", name, err)
		}
	}
	c.startDirect() // after every extension's hooks
	if opts.OnBuild != nil {
		if err := opts.OnBuild(name, c.UniversalClient); err != nil {
			_ = c.closeAutoPipeline()
			_ = c.UniversalClient.Close()
			_ = closeExtensions(c.exts)
			return fmt.Errorf("redisfactory: profile %s: build callback: %w", name, err)
		}
	}
	bus.Publish(runtime.Event{Kind: runtime.ClientBuilt, Profile: name, Message: string(p.Mode)})
	for _, w := range profiles.Warnings(name, p) {
		// Paths and modes only: a warning never carries a secret.
		bus.Publish(runtime.Event{Kind: runtime.ConfigWarning, Profile: name, Message: strings.TrimPrefix(w.Path, "profiles."+name+".") + ": " + w.Message,
			Attrs: []slog.Attr{slog.String("rule", w.Rule)}})
	}
	return nil
}

// HealthChecks returns how many idle-connection health checks (PINGs before
// a command) the client has made, and how many of them failed.
func (c *Client) HealthChecks() (checks, failed uint64) { return c.checks.Load(), c.failures.Load() }

// Name returns the profile's name.
func (c *Client) Name() string { return c.name }

// Profile returns the effective profile the client was built from. It must
// not be modified.
func (c *Client) Profile() *schema.Profile { return c.profile }

// Policy returns the client's retry policy.
func (c *Client) Policy() *retry.Policy { return c.policy }

// Close stops the client's probe and closes the go-redis client, which
// closes every connection, in use or not. It is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		c.probeMu.Lock()
		if c.stopProbe != nil {
			c.stopProbe()
			c.stopProbe = nil
		}
		c.probeMu.Unlock()
		// The pipelining engine first: go-redis's auto-pipeliner sends
		// what it has accepted and waits for the replies, on connections
		// still open; the factory's engine fails what still waits.
		c.closeErr = errors.Join(c.closeAutoPipeline(), c.UniversalClient.Close(), closeExtensions(c.exts))
		c.rt.Events().Publish(runtime.Event{Kind: runtime.ClientClosed, Profile: c.name})
	})
	return c.closeErr
}

// cutGrace is how long closeWithin waits, once it has cut the
// auto-pipeliner's connections, for the close to finish: the reads under
// way fail as soon as their sockets close, so this is scheduling time.
const cutGrace = 100 * time.Millisecond

// errCut is reported by closeWithin when it had to cut connections.
var errCut = errors.New("auto-pipeline connections cut before their replies came")

// closeWithin closes the client as Close does, but does not wait past
// stop (plus cutGrace) for it. Only go-redis's auto-pipeliner (sentinel
// profiles) can make Close wait on the network (it waits for the replies
// of the batches it sent; the factory's engine does not wait): when stop
// comes first, its connections are closed under it, which makes those
// reads fail and its drain end, so the close finishes at once and leaves
// no goroutine behind.
func (c *Client) closeWithin(stop <-chan struct{}) error {
	if c.batchConns == nil {
		return c.Close()
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Close() }()
	select {
	case <-done:
		return c.closeErr
	case <-stop:
	}
	c.batchConns.closeAll()
	select {
	case <-done:
		return errors.Join(fmt.Errorf("redisfactory: close %s: %w", c.name, errCut), c.closeErr)
	case <-time.After(cutGrace):
		// Not expected: every socket that could hold the close up is
		// closed. The close goes on in the background.
		return fmt.Errorf("redisfactory: close %s: %w; still closing %s later", c.name, errCut, cutGrace)
	}
}

// installClusterPolicy makes a cluster client follow the profile's retry
// policy exactly.
//
// go-redis's cluster client runs its own loop around every command: it
// follows MOVED/ASK and also retries transient errors (timeouts included,
// so an INCR could run twice) up to MaxRedirects, with its own backoff. So
// the policy runs on each node's client, where errors arrive raw, and an
// error the policy gives up on is sealed before it reaches the cluster
// loop, which then returns it without retrying. On the cluster client, the
// policy runs again for what never reached a node (a failed reload of the
// slot map, for example) — a sealed error is not in any retry class, so it
// passes through — and the outermost hook unseals, so callers see
// go-redis's own error. Redirections (MOVED, ASK), READONLY after a
// failover and a closed node client are not sealed: following them is the
// cluster loop's job, bounded by cluster.max_redirects.
//
// Pipelines are split per node inside go-redis's pipeline code, which
// retries failed sub-batches itself (up to MaxRedirects); the policy wraps
// the whole pipeline on the cluster client.
func installClusterPolicy(cc *redis.ClusterClient, pol *retry.Policy) {
	h := pol.Hook()
	cc.AddHook(unsealHook{})
	cc.AddHook(h)
	cc.OnNewNode(func(node *redis.Client) {
		node.AddHook(sealHook{})
		node.AddHook(processOnly{h})
	})
}

// sealedError hides an error from go-redis's cluster retry loop. It is
// never returned to users.
type sealedError struct{ err error }

// The text must not start with a prefix go-redis's retry check looks for
// (LOADING, READONLY, …): it checks error strings too.
func (e *sealedError) Error() string { return "redisfactory: final: " + e.err.Error() }

// sealed are the classes go-redis's cluster loop would retry on its own
// (its shouldRetry): only those need hiding from it. Everything else —
// redirections, READONLY after a failover, a closed node client, replies
// such as "ERR unknown subcommand" during a connection's handshake — goes
// to the cluster loop as it is.
var sealed = map[errclass.Class]bool{
	errclass.Connection: true, errclass.Timeout: true, errclass.PoolTimeout: true, errclass.TLS: true,
	errclass.BusyLoading: true, errclass.ClusterDown: true, errclass.TryAgain: true,
	errclass.MasterDown: true, errclass.MaxClients: true, errclass.NoReplicas: true,
}

// passToCluster reports whether the cluster loop must see err as it is.
func passToCluster(err error) bool {
	if errors.Is(err, redis.ErrClosed) || errors.Is(err, context.Canceled) {
		return true
	}
	return !sealed[errclass.Of(err)]
}

// sealHook is the outermost hook of every cluster node client.
type sealHook struct{}

func (sealHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (sealHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		// A connection's handshake (HELLO, AUTH, …) runs through the node's
		// hooks too, inside the dial of some command; its error must reach
		// that command unsealed, so that the policy can retry the command
		// (a sealed EOF from a HELLO to a restarting node has no class).
		if err == nil || passToCluster(err) || retry.IsHandshake(cmd) {
			return err
		}
		return &sealedError{err}
	}
}
func (sealHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// processOnly applies a hook's ProcessHook only.
type processOnly struct{ h redis.Hook }

func (p processOnly) DialHook(next redis.DialHook) redis.DialHook { return next }
func (p processOnly) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return p.h.ProcessHook(next)
}
func (p processOnly) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// unsealHook is the cluster client's outermost hook: it returns a sealed
// error's original to the caller.
type unsealHook struct{}

func (unsealHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (unsealHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		var s *sealedError
		if errors.As(err, &s) {
			err = s.err
			cmd.SetErr(err)
		}
		return err
	}
}
func (unsealHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// State is a client's health as last observed.
type State string

// The health states.
const (
	StateUnknown State = "unknown" // not probed yet
	StateUp      State = "up"      // the last probe succeeded
	StateDown    State = "down"    // the last probe failed
)

// Health is a client's health as last observed.
type Health struct {
	State State
	// Since is when State began.
	Since time.Time
	// Checked is when the last probe ran.
	Checked time.Time
	// RTT is the round trip of the last successful probe.
	RTT time.Duration
	// Err is the error of the last failed probe and Class its class.
	Err   error
	Class errclass.Class
}

// Health returns the client's health as last observed.
func (c *Client) Health() Health { return *c.health.Load() }

// record stores the outcome of a probe and publishes a change of state.
func (c *Client) record(rtt time.Duration, err error) {
	now := c.rt.Clock().Now()
	old := c.health.Load()
	h := Health{State: StateUp, Since: old.Since, Checked: now, RTT: rtt}
	if err != nil {
		h = Health{State: StateDown, Since: old.Since, Checked: now, Err: err, Class: errclass.Of(err)}
	}
	if h.State != old.State {
		h.Since = now
		c.rt.Events().Publish(runtime.Event{Kind: runtime.HealthChanged, Profile: c.name, Message: string(old.State) + " -> " + string(h.State), Err: err, Class: string(h.Class)})
	}
	c.health.Store(&h)
}

// Probe PINGs the client once (through its retry policy), records the
// outcome in Health and returns the round-trip time.
func (c *Client) Probe(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	if timeout <= 0 {
		timeout = c.profile.Timeouts.EffectiveRead()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	err := c.UniversalClient.Ping(ctx).Err()
	rtt := time.Since(start)
	c.record(rtt, err)
	return rtt, err
}

func (c *Client) startProbe(interval, timeout time.Duration) {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	c.stopProbe = c.rt.Every("health-probe("+c.name+")", interval, func(ctx context.Context) {
		_, _ = c.Probe(ctx, timeout)
	})
}

// CheckResult is what Check learned about one profile's server.
type CheckResult struct {
	Profile       string         `json:"profile"`
	Reachable     bool           `json:"reachable"`
	ServerVersion string         `json:"server_version,omitempty"`
	Protocol      int            `json:"protocol,omitempty"`
	RTT           time.Duration  `json:"rtt_ns,omitempty"`
	Err           error          `json:"-"`
	Class         errclass.Class `json:"error_class,omitempty"`
}

// Check PINGs the client under its own policy — each try bounded by the
// profile's timeouts, tried again as its retry block says — and asks the
// server for its version and the RESP version of the connection. ctx
// bounds the whole check.
func (c *Client) Check(ctx context.Context) CheckResult {
	res := CheckResult{Profile: c.name}
	start := time.Now()
	err := c.UniversalClient.Ping(ctx).Err()
	rtt := time.Since(start)
	c.record(rtt, err)
	if err != nil {
		res.Err, res.Class = err, errclass.Of(err)
		return res
	}
	res.Reachable, res.RTT = true, rtt
	if info, err := c.UniversalClient.InfoMap(ctx, "server").Result(); err == nil {
		for _, section := range info {
			if v, ok := section["redis_version"]; ok {
				res.ServerVersion = v
			}
		}
	} else if s, err := c.UniversalClient.Info(ctx, "server").Result(); err == nil {
		res.ServerVersion = field(s, "redis_version:", "\r\n")
	}
	if ci, err := c.UniversalClient.Do(ctx, "CLIENT", "INFO").Text(); err == nil {
		if v := field(ci, "resp=", " "); v != "" {
			res.Protocol, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if res.Protocol == 0 {
		res.Protocol = c.profile.Protocol
	}
	return res
}

func field(s, key, end string) string {
	i := strings.Index(s, key)
	if i < 0 {
		return ""
	}
	s = s[i+len(key):]
	if j := strings.Index(s, end); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}

// Format prints the profile's name, mode and go-redis client, for every
// verb: never the fields, whose profile holds secrets (fmt prints an
// unexported pointer field raw under verbs such as %s).
func (c *Client) Format(f fmt.State, verb rune) {
	if c == nil {
		_, _ = f.Write([]byte("<nil>"))
		return
	}
	s := fmt.Sprintf("factory.Client{profile: %s, mode: %s, client: %v}", c.name, c.profile.Mode, c.UniversalClient)
	if verb == 'q' {
		s = strconv.Quote(s)
	}
	_, _ = f.Write([]byte(s))
}
