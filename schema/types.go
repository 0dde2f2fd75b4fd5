// Package schema is the declarative model of redisfactory: the Go types of
// a configuration file, their built-in defaults, their validation rules and
// the JSON Schema generated from them.
//
// The package does no I/O. Loading files and environment variables, merging
// them and remembering where each key came from is the job of package
// profiles; building clients is the job of package factory.
//
// Every struct field carries a `koanf` tag with the key as users write it
// in YAML (snake_case) and a matching `json` tag, used for the JSON Schema
// and for printing.
package schema

import (
	"time"

	"github.com/redisfactory/redisfactory/errclass"
)

// Config is one configuration: a defaults block applied under every profile
// and the named profiles themselves.
//
// After loading (package profiles), every profile in Profiles is effective:
// built-in defaults, the defaults block and the extends chain are already
// merged into it, and Defaults only records what the defaults block said.
type Config struct {
	// Defaults holds keys applied to every profile before its own keys.
	Defaults Profile `koanf:"defaults" json:"defaults,omitempty" jsonschema:"description=Keys applied to every profile before the profile's own keys."`
	// Profiles are the named client profiles.
	Profiles map[string]*Profile `koanf:"profiles" json:"profiles" validate:"dive" jsonschema:"description=Named client profiles: one Redis client each."`
}

// Mode selects the kind of client a profile builds.
type Mode string

// The modes.
const (
	Standalone Mode = "standalone" // one server: *redis.Client
	Sentinel   Mode = "sentinel"   // a master found through Sentinel: redis.NewFailoverClient
	Cluster    Mode = "cluster"    // Redis Cluster: *redis.ClusterClient
)

// Profile is one named client: where it connects and how it behaves.
type Profile struct {
	// Extends names another profile whose keys this one inherits.
	Extends string `koanf:"extends" json:"extends,omitempty" jsonschema:"description=Name of a profile whose keys this profile inherits (its own keys win)."`
	// Mode is standalone, sentinel or cluster.
	Mode Mode `koanf:"mode" json:"mode,omitempty" validate:"oneof=standalone sentinel cluster" jsonschema:"enum=standalone,enum=sentinel,enum=cluster,description=Kind of client: one server, a Sentinel-managed master, or Redis Cluster."`
	// URL is a redis://, rediss:// or unix:// URL, parsed with go-redis's
	// rules; explicit keys win over the values it implies.
	URL Secret `koanf:"url" json:"url,omitempty" jsonschema:"type=string,description=redis:// rediss:// or unix:// URL (go-redis rules). Explicit keys win over values derived from it."`
	// Network is tcp or unix.
	Network string `koanf:"network" json:"network,omitempty" validate:"oneof=tcp unix" jsonschema:"enum=tcp,enum=unix,description=tcp or unix (addr is then a socket path)."`
	// Addr is host:port of a standalone server (or a socket path).
	Addr string `koanf:"addr" json:"addr,omitempty" jsonschema:"description=host:port of the server (standalone), e.g. 127.0.0.1:6379 or [::1]:6379."`
	// Addrs are the cluster seed nodes, host:port each.
	Addrs []string `koanf:"addrs" json:"addrs,omitempty" validate:"omitempty,dive,redis_addr" jsonschema:"description=host:port of cluster seed nodes (cluster mode)."`
	// Username is the ACL user (empty: the default user).
	Username string `koanf:"username" json:"username,omitempty" jsonschema:"description=ACL user name; empty means the default user."`
	// Password authenticates the user. Redacted everywhere it is printed.
	Password Secret `koanf:"password" json:"password,omitempty" jsonschema:"type=string,description=Password (redacted in all output). Prefer password_file."`
	// PasswordFile is a file holding the password (a Kubernetes Secret
	// mount); it is read at load time and a trailing newline is dropped.
	PasswordFile string `koanf:"password_file" json:"password_file,omitempty" jsonschema:"description=File whose content is the password (trailing newline dropped), e.g. a Kubernetes Secret mount."`
	// DB is the database number (standalone and sentinel only).
	DB int `koanf:"db" json:"db,omitempty" validate:"gte=0,lte=15" jsonschema:"minimum=0,maximum=15,description=Database number (not in cluster mode)."`
	// Protocol is the RESP version, 2 or 3.
	Protocol int `koanf:"protocol" json:"protocol,omitempty" validate:"oneof=2 3" jsonschema:"enum=2,enum=3,description=RESP protocol version."`
	// ClientName is sent with CLIENT SETNAME on every connection.
	ClientName string `koanf:"client_name" json:"client_name,omitempty" validate:"omitempty,printascii,excludesall= " jsonschema:"description=Connection name (CLIENT SETNAME); no spaces."`
	// TLS configures transport security.
	TLS TLS `koanf:"tls" json:"tls,omitempty"`
	// Sentinel configures sentinel mode.
	Sentinel SentinelConfig `koanf:"sentinel" json:"sentinel,omitempty"`
	// Cluster configures cluster mode.
	Cluster ClusterConfig `koanf:"cluster" json:"cluster,omitempty"`
	// Pool configures the connection pool.
	Pool Pool `koanf:"pool" json:"pool,omitempty"`
	// Timeouts bound dialing, reads, writes and waiting for the pool.
	Timeouts Timeouts `koanf:"timeouts" json:"timeouts,omitempty"`
	// Retry is the retry policy.
	Retry Retry `koanf:"retry" json:"retry,omitempty"`
	// HealthCheckInterval: a pooled connection idle for longer than this
	// is checked with PING before a command uses it. Zero disables it.
	HealthCheckInterval time.Duration `koanf:"health_check_interval" json:"health_check_interval,omitempty" validate:"gte=0" jsonschema:"description=A connection idle longer than this is PINGed before use; 0 disables."`
	// Cache configures client-side caching.
	Cache Cache `koanf:"cache" json:"cache,omitempty"`
	// SCH configures smart client handoffs (maintenance notifications).
	SCH SCH `koanf:"sch" json:"sch,omitempty"`
	// Pipeline configures automatic pipelining.
	Pipeline Pipeline `koanf:"pipeline" json:"pipeline,omitempty"`
	// DrainTimeout bounds how long a replaced or removed client may finish
	// its in-flight commands before it is closed.
	DrainTimeout time.Duration `koanf:"drain_timeout" json:"drain_timeout,omitempty" validate:"gte=0" jsonschema:"description=How long a replaced client may finish in-flight commands before it is closed."`
}

// TLS configures transport security.
type TLS struct {
	Enabled            bool   `koanf:"enabled" json:"enabled,omitempty" jsonschema:"description=Use TLS."`
	CAFile             string `koanf:"ca_file" json:"ca_file,omitempty" jsonschema:"description=PEM file of CAs to trust (default: system roots)."`
	CertFile           string `koanf:"cert_file" json:"cert_file,omitempty" jsonschema:"description=PEM client certificate (mutual TLS); needs key_file."`
	KeyFile            string `koanf:"key_file" json:"key_file,omitempty" jsonschema:"description=PEM private key of cert_file."`
	ServerName         string `koanf:"server_name" json:"server_name,omitempty" jsonschema:"description=Name to verify the server certificate against (default: the host)."`
	InsecureSkipVerify bool   `koanf:"insecure_skip_verify" json:"insecure_skip_verify,omitempty" jsonschema:"description=Do not verify the server certificate (testing only)."`
	MinVersion         string `koanf:"min_version" json:"min_version,omitempty" validate:"omitempty,oneof=1.2 1.3" jsonschema:"enum=1.2,enum=1.3,description=Lowest TLS version accepted."`
}

// SentinelConfig configures sentinel mode.
type SentinelConfig struct {
	MasterName   string   `koanf:"master_name" json:"master_name,omitempty" jsonschema:"description=Name of the monitored master."`
	Addrs        []string `koanf:"addrs" json:"addrs,omitempty" validate:"omitempty,dive,redis_addr" jsonschema:"description=host:port of the sentinels."`
	Username     string   `koanf:"username" json:"username,omitempty" jsonschema:"description=ACL user for the sentinels."`
	Password     Secret   `koanf:"password" json:"password,omitempty" jsonschema:"type=string,description=Password for the sentinels (redacted)."`
	PasswordFile string   `koanf:"password_file" json:"password_file,omitempty" jsonschema:"description=File holding the sentinels' password."`
	ReplicaOnly  bool     `koanf:"replica_only" json:"replica_only,omitempty" jsonschema:"description=Send commands to replicas only (read-only workloads)."`
}

// ClusterConfig configures cluster mode.
type ClusterConfig struct {
	MaxRedirects   int  `koanf:"max_redirects" json:"max_redirects,omitempty" validate:"gte=0,lte=100" jsonschema:"minimum=0,maximum=100,description=MOVED/ASK redirections followed per command."`
	ReadOnly       bool `koanf:"read_only" json:"read_only,omitempty" jsonschema:"description=Allow read commands on replicas."`
	RouteByLatency bool `koanf:"route_by_latency" json:"route_by_latency,omitempty" jsonschema:"description=Route read commands to the closest node (implies read_only)."`
	RouteRandomly  bool `koanf:"route_randomly" json:"route_randomly,omitempty" jsonschema:"description=Route read commands to a random node (implies read_only)."`
}

// Pool configures the connection pool. Zero values mean go-redis's defaults.
type Pool struct {
	Size            int           `koanf:"size" json:"size,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Connections per node; 0 means 10 per CPU (go-redis default)."`
	MinIdle         int           `koanf:"min_idle" json:"min_idle,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Idle connections kept open."`
	MaxIdle         int           `koanf:"max_idle" json:"max_idle,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Most idle connections kept; 0 means no limit."`
	MaxActive       int           `koanf:"max_active" json:"max_active,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Most connections open at once; 0 means no limit."`
	Timeout         time.Duration `koanf:"timeout" json:"timeout,omitempty" validate:"gte=0" jsonschema:"description=How long a command waits for a free connection; 0 means socket timeout + 1s."`
	ConnMaxIdleTime time.Duration `koanf:"conn_max_idle_time" json:"conn_max_idle_time,omitempty" validate:"gte=0" jsonschema:"description=Close connections idle longer than this; 0 means 30m."`
	ConnMaxLifetime time.Duration `koanf:"conn_max_lifetime" json:"conn_max_lifetime,omitempty" validate:"gte=0" jsonschema:"description=Close connections older than this; 0 means never."`
}

// Timeouts bound dialing, socket reads and writes.
type Timeouts struct {
	Connect time.Duration `koanf:"connect" json:"connect,omitempty" validate:"gt=0" jsonschema:"description=Dial timeout (per attempt)."`
	Socket  time.Duration `koanf:"socket" json:"socket,omitempty" validate:"gt=0" jsonschema:"description=Read and write timeout of a command."`
	Read    time.Duration `koanf:"read" json:"read,omitempty" validate:"gte=0" jsonschema:"description=Read timeout; overrides socket."`
	Write   time.Duration `koanf:"write" json:"write,omitempty" validate:"gte=0" jsonschema:"description=Write timeout; overrides socket."`
}

// EffectiveRead returns the read timeout: Read when set, else Socket.
func (t Timeouts) EffectiveRead() time.Duration {
	if t.Read > 0 {
		return t.Read
	}
	return t.Socket
}

// EffectiveWrite returns the write timeout: Write when set, else Socket.
func (t Timeouts) EffectiveWrite() time.Duration {
	if t.Write > 0 {
		return t.Write
	}
	return t.Socket
}

// Retry is a retry policy, read the way grpc-go's service config reads:
// how many times, how long to wait, and on which errors.
type Retry struct {
	// Retries is how many times a failed command is tried again after its
	// first try (0: never).
	Retries int `koanf:"retries" json:"retries" validate:"gte=0,lte=100" jsonschema:"minimum=0,maximum=100,description=How many times a failed command is tried again after the first try."`
	// Backoff is the wait between tries.
	Backoff Backoff `koanf:"backoff" json:"backoff,omitempty"`
	// On lists the error classes that trigger a retry; it replaces the
	// default list (connection, timeout; in cluster mode also cluster_down).
	On []errclass.Class `koanf:"on" json:"on,omitempty" validate:"dive,error_class" jsonschema:"description=Error classes that trigger a retry; replaces the default list."`
	// AlsoOn adds error classes to On (or to the default list).
	AlsoOn []errclass.Class `koanf:"also_on" json:"also_on,omitempty" validate:"dive,error_class" jsonschema:"description=Error classes added to on (or to the default list)."`
	// NonIdempotent allows retrying commands that are not idempotent
	// (INCR, LPUSH, …) after an error that leaves unknown whether the
	// server ran them (a read timeout, a connection lost mid-reply).
	NonIdempotent bool `koanf:"non_idempotent" json:"non_idempotent,omitempty" jsonschema:"description=Also retry non-idempotent commands (INCR, LPUSH, ...) when the first try may have run."`
	// Budget caps retries to a share of successful commands.
	Budget Budget `koanf:"budget" json:"budget,omitempty"`
}

// BackoffStrategy names how the wait between tries grows.
type BackoffStrategy string

// The backoff strategies; formulas as in redis-py (f is the failure number,
// 1 for the first retry; U is a uniform random draw).
const (
	BackoffNone               BackoffStrategy = "none"                // 0
	BackoffConstant           BackoffStrategy = "constant"            // base
	BackoffExponential        BackoffStrategy = "exponential"         // min(cap, base·2^f)
	BackoffExponentialJitter  BackoffStrategy = "exponential_jitter"  // min(cap, U(0,1)·base·2^f)
	BackoffFullJitter         BackoffStrategy = "full_jitter"         // U(0, min(cap, base·2^f))
	BackoffEqualJitter        BackoffStrategy = "equal_jitter"        // t=min(cap, base·2^f)/2; t + U(0, t)
	BackoffDecorrelatedJitter BackoffStrategy = "decorrelated_jitter" // prev=min(cap, U(base, max(base, 3·prev)))
)

// BackoffStrategies lists every strategy.
var BackoffStrategies = []BackoffStrategy{
	BackoffNone, BackoffConstant, BackoffExponential, BackoffExponentialJitter,
	BackoffFullJitter, BackoffEqualJitter, BackoffDecorrelatedJitter,
}

// Backoff is the wait between tries.
type Backoff struct {
	Strategy BackoffStrategy `koanf:"strategy" json:"strategy,omitempty" validate:"oneof=none constant exponential exponential_jitter full_jitter equal_jitter decorrelated_jitter" jsonschema:"enum=none,enum=constant,enum=exponential,enum=exponential_jitter,enum=full_jitter,enum=equal_jitter,enum=decorrelated_jitter,description=How the wait grows between tries."`
	Base     time.Duration   `koanf:"base" json:"base,omitempty" validate:"gte=0" jsonschema:"description=First wait (the constant wait for strategy constant)."`
	Cap      time.Duration   `koanf:"cap" json:"cap,omitempty" validate:"gte=0" jsonschema:"description=Longest wait; must not be less than base."`
}

// Budget is a retry budget shared by a profile's client, with the
// arithmetic of gRPC's retry throttling: each failure that could be retried
// costs one token, each success gives back TokenRatio tokens, and retries
// stop while the tokens are at or below half of MaxTokens.
type Budget struct {
	MaxTokens  float64 `koanf:"max_tokens" json:"max_tokens,omitempty" validate:"gte=0,lte=1000000" jsonschema:"minimum=0,description=Size of the token bucket; 0 disables the budget."`
	TokenRatio float64 `koanf:"token_ratio" json:"token_ratio,omitempty" validate:"gte=0,lte=1000000" jsonschema:"minimum=0,maximum=1000000,description=Tokens returned per successful command (e.g. 0.1)."`
}

// Enabled reports whether the budget is in force.
func (b Budget) Enabled() bool { return b.MaxTokens > 0 }

// CacheMode selects how the server tracks keys for client-side caching.
type CacheMode string

// The cache modes.
const (
	CacheDefault   CacheMode = "default"   // track the keys this client read
	CacheBroadcast CacheMode = "broadcast" // be told of every change under prefixes
)

// Cache configures client-side caching (server-assisted, CLIENT TRACKING).
type Cache struct {
	Enabled    bool          `koanf:"enabled" json:"enabled,omitempty" jsonschema:"description=Answer allowed read commands from a local cache kept correct by server invalidations."`
	MaxEntries int           `koanf:"max_entries" json:"max_entries,omitempty" validate:"gte=0" jsonschema:"minimum=0,description=Most entries kept."`
	MaxBytes   ByteSize      `koanf:"max_bytes" json:"max_bytes,omitempty" validate:"gte=0" jsonschema:"description=Most memory kept, e.g. 64MiB."`
	TTL        time.Duration `koanf:"ttl" json:"ttl,omitempty" validate:"gte=0" jsonschema:"description=Upper bound on how long an entry lives."`
	Mode       CacheMode     `koanf:"mode" json:"mode,omitempty" validate:"oneof=default broadcast" jsonschema:"enum=default,enum=broadcast,description=default tracks the keys read; broadcast is told of every change under prefixes."`
	Prefixes   []string      `koanf:"prefixes" json:"prefixes,omitempty" jsonschema:"description=Key prefixes tracked in broadcast mode."`
	Commands   []string      `koanf:"commands" json:"commands,omitempty" validate:"dive,cacheable_command" jsonschema:"description=Read-only commands that may be answered from the cache."`
}

// SCHMode selects whether smart client handoffs are used.
type SCHMode string

// The SCH modes, as in go-redis's maintnotifications.
const (
	SCHAuto     SCHMode = "auto"     // use them when the server supports them
	SCHEnabled  SCHMode = "enabled"  // require them: a server without them is an error
	SCHDisabled SCHMode = "disabled" // never
)

// SCH configures smart client handoffs (Redis maintenance notifications).
type SCH struct {
	Mode                       SCHMode       `koanf:"mode" json:"mode,omitempty" validate:"oneof=auto enabled disabled" jsonschema:"enum=auto,enum=enabled,enum=disabled,description=Whether to negotiate maintenance notifications."`
	EndpointType               string        `koanf:"endpoint_type" json:"endpoint_type,omitempty" validate:"oneof=auto internal-ip internal-fqdn external-ip external-fqdn none" jsonschema:"enum=auto,enum=internal-ip,enum=internal-fqdn,enum=external-ip,enum=external-fqdn,enum=none,description=Kind of endpoint a MOVING notification should carry."`
	RelaxedTimeout             time.Duration `koanf:"relaxed_timeout" json:"relaxed_timeout,omitempty" validate:"gte=0" jsonschema:"description=Socket timeout while a maintenance is under way (a command's longer timeout wins)."`
	HandoffTimeout             time.Duration `koanf:"handoff_timeout" json:"handoff_timeout,omitempty" validate:"gte=0" jsonschema:"description=How long the dials to an announced endpoint may take."`
	PostHandoffRelaxedDuration time.Duration `koanf:"post_handoff_relaxed_duration" json:"post_handoff_relaxed_duration,omitempty" validate:"gte=0" jsonschema:"description=How long timeouts stay relaxed after a handoff; 0 means twice relaxed_timeout."`
	MaxHandoffRetries          int           `koanf:"max_handoff_retries" json:"max_handoff_retries,omitempty" validate:"gte=0,lte=10" jsonschema:"minimum=0,maximum=10,description=Dial attempts for a connection on an announced endpoint; 0 means 3."`
	MaxWorkers                 int           `koanf:"max_workers" json:"max_workers,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Accepted for compatibility; no effect (it configured go-redis's handoff worker, which the factory does not use)."`
	HandoffQueueSize           int           `koanf:"handoff_queue_size" json:"handoff_queue_size,omitempty" validate:"gte=0,lte=1000000" jsonschema:"minimum=0,maximum=1000000,description=Accepted for compatibility; no effect (it configured go-redis's handoff worker, which the factory does not use)."`
}

// Pipeline configures automatic pipelining: concurrent commands of the
// profile's handle share round trips through go-redis's auto-pipeliner
// (Client.AutoPipeline), each caller still waiting for its own reply.
type Pipeline struct {
	Auto              bool          `koanf:"auto" json:"auto,omitempty" jsonschema:"description=Send the commands that can be batched through a pipelining engine; concurrent callers then share round trips and system calls (standalone: the factory's full-duplex engine; sentinel: go-redis's auto-pipeliner)."`
	MaxBatch          int           `koanf:"max_batch" json:"max_batch,omitempty" validate:"gte=0,lte=100000" jsonschema:"minimum=0,maximum=100000,description=Commands after which a batch is sent without waiting for more (a soft bound; with flush_delay 0 the factory's engine never waits); 0 means 300 on go-redis's auto-pipeliner and no bound on the factory's engine."`
	MaxBatchBytes     ByteSize      `koanf:"max_batch_bytes" json:"max_batch_bytes,omitempty" validate:"gte=0" jsonschema:"description=Bytes after which a batch is sent without waiting for more, e.g. 128KiB; 0 means 128KiB on go-redis's auto-pipeliner and no bound on the factory's engine."`
	ConcurrentBatches int           `koanf:"concurrent_batches" json:"concurrent_batches,omitempty" validate:"gte=0,lte=64" jsonschema:"minimum=0,maximum=64,description=Sockets the batches share (factory's engine), or batches in flight at once (go-redis's auto-pipeliner); 0 or 1 keeps one ordered stream; more give no order between concurrent callers."`
	FlushDelay        time.Duration `koanf:"flush_delay" json:"flush_delay,omitempty" validate:"gte=0,lte=10ms" jsonschema:"description=How long a batch may wait for more commands before it is sent (at most 10ms); 0 sends at once."`
}
