package profiles

import (
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/schema"
)

// afterDecode applies each profile's url (explicit keys win over what the
// URL implies; the built-in defaults do not) and fills mode-dependent
// defaults.
func (l *loader) afterDecode(res *Result) {
	for _, name := range sortedProfileNames(res.Config) {
		p := res.Config.Profiles[name]
		if p.URL != "" {
			l.applyURL(name, p, res.origins[name])
		}
		schema.Finalize(p)
	}
}

func sortedProfileNames(c *schema.Config) []string {
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// applyURL parses p.URL with go-redis's rules for the profile's mode and
// copies the values it states into keys nobody set explicitly.
func (l *loader) applyURL(name string, p *schema.Profile, origins map[string]Origin) {
	raw := p.URL.Reveal()
	urlOrigin := origins["url"]
	fail := func(msg string) {
		is := schema.Issue{Source: urlOrigin.Source, Path: "profiles." + name + ".url", Rule: "url", Message: msg, Value: schema.RedactString(raw), HasValue: true}
		if urlOrigin.Via == "defaults" {
			is.Path = "defaults.url"
		}
		l.issues = append(l.issues, is)
	}
	if msg := unescapedUserinfo(raw); msg != "" {
		fail(msg)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		fail("is not a valid URL")
		return
	}
	q := u.Query()
	explicit := func(rel string) bool {
		o, ok := origins[rel]
		return ok && o.Source != BuiltinSource
	}
	set := func(rel string, apply func()) {
		if explicit(rel) {
			return
		}
		apply()
		origins[rel] = Origin{Source: urlOrigin.Source, Via: "url"}
	}
	has := func(param string) bool { return q.Has(param) }
	redact := func(err error) string {
		// go-redis errors may quote the URL; never echo it.
		return strings.ReplaceAll(err.Error(), raw, schema.RedactString(raw))
	}

	switch p.Mode {
	case schema.Cluster:
		o, err := redis.ParseClusterURL(raw)
		if err != nil {
			fail("cannot be parsed: " + redact(err))
			return
		}
		set("addrs", func() { p.Addrs = o.Addrs })
		if u.User != nil {
			set("username", func() { p.Username = o.Username })
			set("password", func() { p.Password = schema.Secret(o.Password) })
		}
		if has("max_redirects") {
			set("cluster.max_redirects", func() { p.Cluster.MaxRedirects = max(o.MaxRedirects, 0) })
		}
		if has("read_only") {
			set("cluster.read_only", func() { p.Cluster.ReadOnly = o.ReadOnly })
		}
		if has("route_by_latency") {
			set("cluster.route_by_latency", func() { p.Cluster.RouteByLatency = o.RouteByLatency })
		}
		if has("route_randomly") {
			set("cluster.route_randomly", func() { p.Cluster.RouteRandomly = o.RouteRandomly })
		}
		commonURL(set, has, u, commonOpts{o.Protocol, o.ClientName, o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolSize, o.PoolTimeout, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns, o.ConnMaxIdleTime, o.ConnMaxLifetime, o.TLSConfig != nil}, p)
	case schema.Sentinel:
		o, err := redis.ParseFailoverURL(raw)
		if err != nil {
			fail("cannot be parsed: " + redact(err))
			return
		}
		set("sentinel.addrs", func() { p.Sentinel.Addrs = o.SentinelAddrs })
		if u.User != nil {
			set("sentinel.username", func() { p.Sentinel.Username = o.SentinelUsername })
			set("sentinel.password", func() { p.Sentinel.Password = schema.Secret(o.SentinelPassword) })
		}
		if has("master_name") {
			set("sentinel.master_name", func() { p.Sentinel.MasterName = o.MasterName })
		}
		if has("username") {
			set("username", func() { p.Username = o.Username })
		}
		if has("password") {
			set("password", func() { p.Password = schema.Secret(o.Password) })
		}
		if has("replica_only") {
			set("sentinel.replica_only", func() { p.Sentinel.ReplicaOnly = o.ReplicaOnly })
		}
		if len(strings.Trim(u.Path, "/")) > 0 || has("db") {
			set("db", func() { p.DB = o.DB })
		}
		commonURL(set, has, u, commonOpts{o.Protocol, o.ClientName, o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolSize, o.PoolTimeout, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns, o.ConnMaxIdleTime, o.ConnMaxLifetime, o.TLSConfig != nil}, p)
	default:
		o, err := redis.ParseURL(raw)
		if err != nil {
			fail("cannot be parsed: " + redact(err))
			return
		}
		set("network", func() { p.Network = o.Network })
		set("addr", func() { p.Addr = o.Addr })
		if u.User != nil {
			set("username", func() { p.Username = o.Username })
			set("password", func() { p.Password = schema.Secret(o.Password) })
		}
		if len(strings.Trim(u.Path, "/")) > 0 && u.Scheme != "unix" || has("db") {
			set("db", func() { p.DB = o.DB })
		}
		commonURL(set, has, u, commonOpts{o.Protocol, o.ClientName, o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolSize, o.PoolTimeout, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns, o.ConnMaxIdleTime, o.ConnMaxLifetime, o.TLSConfig != nil}, p)
	}
}

// unescapedUserinfo returns a message when the user name or password of a
// URL holds a character that ends the user-info ('/', '?', '#'),
// unescaped. url.Parse (and so go-redis) would read
// "redis://:pa#ss@host" as host ":pa" with a fragment, and
// "redis://:pa/ss@host" as a path: the client would dial another host
// without the password, and the password would be printed as part of a
// host or a path. It never includes the URL.
func unescapedUserinfo(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	// An unescaped '@' inside the user-info is left alone: url.Parse
	// splits at the last '@' of the authority, so go-redis reads such a
	// password whole, and refusing it would refuse a URL bare go-redis
	// serves.
	last := strings.LastIndexByte(rest, '@')
	if last < end || strings.Contains(rest[:end], "@") || strings.Contains(rest[:last], "=") {
		// No '@' after the first '/', '?' or '#', or one inside a query
		// value: the user-info, if any, is whole.
		return ""
	}
	return "has a user name or password holding '" + string(rest[end]) + "' unescaped, which ends the user-info of a URL (the client would dial another host without the password); percent-encode it: '@' as %40, '/' as %2F, '?' as %3F, '#' as %23, ':' in a user name as %3A"
}

type commonOpts struct {
	protocol                    int
	clientName                  string
	maxRetries                  int
	minBackoff, maxBackoff      time.Duration
	dial, read, write           time.Duration
	poolSize                    int
	poolTimeout                 time.Duration
	minIdle, maxIdle, maxActive int
	idle, lifetime              time.Duration
	tls                         bool
}

// nonNeg maps go-redis's "-1 disables" to our zero.
func nonNeg[T ~int | ~int64](v T) T { return max(v, 0) }

func commonURL(set func(string, func()), has func(string) bool, u *url.URL, o commonOpts, p *schema.Profile) {
	if o.tls {
		set("tls.enabled", func() { p.TLS.Enabled = true })
		if has("skip_verify") {
			set("tls.insecure_skip_verify", func() { p.TLS.InsecureSkipVerify = u.Query().Get("skip_verify") == "true" })
		}
	}
	if has("protocol") {
		set("protocol", func() { p.Protocol = o.protocol })
	}
	if has("client_name") {
		set("client_name", func() { p.ClientName = o.clientName })
	}
	if has("max_retries") {
		set("retry.retries", func() { p.Retry.Retries = nonNeg(o.maxRetries) })
	}
	if has("min_retry_backoff") {
		set("retry.backoff.base", func() { p.Retry.Backoff.Base = nonNeg(o.minBackoff) })
	}
	if has("max_retry_backoff") {
		set("retry.backoff.cap", func() { p.Retry.Backoff.Cap = nonNeg(o.maxBackoff) })
	}
	if has("dial_timeout") {
		set("timeouts.connect", func() { p.Timeouts.Connect = o.dial })
	}
	if has("read_timeout") {
		set("timeouts.read", func() { p.Timeouts.Read = nonNeg(o.read) })
	}
	if has("write_timeout") {
		set("timeouts.write", func() { p.Timeouts.Write = nonNeg(o.write) })
	}
	if has("pool_size") {
		set("pool.size", func() { p.Pool.Size = o.poolSize })
	}
	if has("pool_timeout") {
		set("pool.timeout", func() { p.Pool.Timeout = nonNeg(o.poolTimeout) })
	}
	if has("min_idle_conns") {
		set("pool.min_idle", func() { p.Pool.MinIdle = o.minIdle })
	}
	if has("max_idle_conns") {
		set("pool.max_idle", func() { p.Pool.MaxIdle = o.maxIdle })
	}
	if has("max_active_conns") {
		set("pool.max_active", func() { p.Pool.MaxActive = o.maxActive })
	}
	if has("conn_max_idle_time") || has("idle_timeout") {
		set("pool.conn_max_idle_time", func() { p.Pool.ConnMaxIdleTime = nonNeg(o.idle) })
	}
	if has("conn_max_lifetime") || has("max_conn_age") {
		set("pool.conn_max_lifetime", func() { p.Pool.ConnMaxLifetime = nonNeg(o.lifetime) })
	}
}
