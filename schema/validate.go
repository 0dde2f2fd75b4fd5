package schema

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-playground/validator/v10"

	"github.com/redisfactory/redisfactory/errclass"
	"github.com/redisfactory/redisfactory/internal/suggest"
)

var (
	validateOnce sync.Once
	validate     *validator.Validate
)

// validatorInstance returns the shared validator with the project's custom
// tags registered. Registration happens once, before any use, because the
// validator's Register* methods are not safe for concurrent use.
func validatorInstance() *validator.Validate {
	validateOnce.Do(func() {
		v := validator.New(validator.WithRequiredStructEnabled())
		v.RegisterTagNameFunc(func(f reflect.StructField) string {
			name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if name == "-" {
				return ""
			}
			return name
		})
		must(v.RegisterValidation("redis_addr", func(fl validator.FieldLevel) bool {
			return CheckAddr(fl.Field().String()) == nil
		}))
		must(v.RegisterValidation("error_class", func(fl validator.FieldLevel) bool {
			return errclass.Class(fl.Field().String()).Retryable()
		}))
		must(v.RegisterValidation("cacheable_command", func(fl validator.FieldLevel) bool {
			return IsCacheableCommand(fl.Field().String())
		}))
		// Validate the zero values once so that a bad tag panics here, in
		// tests, and never in the middle of a hot reload.
		_ = v.Struct(&Config{Profiles: map[string]*Profile{"x": {}}})
		validate = v
	})
	return validate
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

var hostnameRE = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?)*\.?$`)

// CheckAddr checks a TCP address "host:port": the host is an IP (IPv6 in
// brackets, e.g. [::1]:6379) or a hostname, the port is 1-65535. It does no
// DNS lookup.
func CheckAddr(addr string) error {
	if strings.Contains(addr, "://") {
		// Never echo it: a URL may carry a password.
		return fmt.Errorf("is a URL, not host:port; put a URL in url: (and its password is then redacted)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not host:port (IPv6 literals go in brackets, e.g. [::1]:6379)")
	}
	if host == "" {
		return fmt.Errorf("has no host")
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("has an invalid port %q (want 1-65535)", port)
	}
	if net.ParseIP(host) == nil && !hostnameRE.MatchString(host) {
		if strings.Contains(host, ":") {
			return fmt.Errorf("has an IPv6 host that is not valid")
		}
		return fmt.Errorf("has a host %q that is neither an IP address nor a hostname", host)
	}
	return nil
}

var profileNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks an effective configuration (every profile already merged
// and finalized) and returns every issue at once, sorted by path. Paths are
// full key paths (profiles.NAME.…); package profiles maps them to sources.
func Validate(c *Config) Issues {
	var out Issues
	if len(c.Profiles) == 0 {
		out = append(out, Issue{Path: "profiles", Rule: "required", Message: "defines no profile; add at least one under profiles:"})
	}
	names := make([]string, 0, len(c.Profiles))
	for n := range c.Profiles {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := c.Profiles[n]
		if !profileNameRE.MatchString(n) {
			out = append(out, Issue{Path: "profiles." + n, Rule: "profile_name", Message: "profile names use letters, digits, '_' and '-' and start with a letter or digit", Value: n, HasValue: true})
		}
		if p == nil {
			out = append(out, Issue{Path: "profiles." + n, Rule: "required", Message: "is empty; a profile needs at least one key (e.g. addr)"})
			continue
		}
		out = append(out, ValidateProfile(n, p)...)
	}
	return out.Redacted().Sort()
}

// ValidateProfile checks one effective profile. Paths start with
// profiles.NAME.
func ValidateProfile(name string, p *Profile) Issues {
	prefix := "profiles." + name
	var out Issues
	err := validatorInstance().Struct(p)
	var verrs validator.ValidationErrors
	if errors.As(err, &verrs) {
		for _, fe := range verrs {
			out = append(out, fieldIssue(prefix, fe))
		}
	} else if err != nil {
		out = append(out, Issue{Path: prefix, Rule: "internal", Message: err.Error()})
	}
	out = append(out, crossCheck(prefix, p)...)
	out = append(out, durationBounds(prefix, p)...)
	return out
}

// MaxDuration is the longest duration any key accepts. go-redis and the
// factory add durations together (a dial timeout and a read timeout make
// the bound of a reload's check; the pool timeout defaults to the socket
// timeout plus a second), so each must stay far from time.Duration's
// limit of about 292 years; a year is longer than any timeout, interval
// or lifetime a client needs.
const MaxDuration = 365 * 24 * time.Hour

// durationField is where one duration key sits in a Profile.
type durationField struct {
	index []int  // reflect field index path
	path  string // key path, e.g. timeouts.connect
}

// durationFields lists every duration of a Profile, found by reflection
// once, so that a key added later is bounded too.
var durationFields = sync.OnceValue(func() []durationField {
	var out []durationField
	var walk func(t reflect.Type, index []int, rel string)
	walk = func(t reflect.Type, index []int, rel string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
			if name == "" || name == "-" {
				continue
			}
			path := name
			if rel != "" {
				path = rel + "." + name
			}
			idx := append(append([]int(nil), index...), i)
			switch {
			case f.Type == reflect.TypeOf(time.Duration(0)):
				out = append(out, durationField{index: idx, path: path})
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, idx, path)
			}
		}
	}
	walk(reflect.TypeOf(Profile{}), nil, "")
	return out
})

// durationBounds checks every duration of a profile against MaxDuration.
func durationBounds(prefix string, p *Profile) Issues {
	var out Issues
	v := reflect.ValueOf(p).Elem()
	for _, f := range durationFields() {
		if d := time.Duration(v.FieldByIndex(f.index).Int()); d > MaxDuration {
			out = append(out, Issue{Path: prefix + "." + f.path, Rule: "max_duration", Message: "must be at most 8760h (one year); longer durations overflow when go-redis adds them to others", Value: d.String(), HasValue: true})
		}
	}
	return out
}

// fieldIssue turns a validator error into an Issue with a plain-English
// message and the koanf key path.
func fieldIssue(prefix string, fe validator.FieldError) Issue {
	ns := fe.Namespace()
	if i := strings.IndexByte(ns, '.'); i >= 0 {
		ns = ns[i+1:] // drop the root type name
	}
	path := prefix + "." + ns
	iss := Issue{Path: path, Rule: fe.Tag(), Value: DisplayValue(path, fe.Value()), HasValue: true}
	param := fe.Param()
	switch fe.Tag() {
	case "oneof":
		iss.Message = "must be one of " + strings.Join(strings.Fields(param), ", ")
		if s := suggest.Closest(fmt.Sprint(fe.Value()), strings.Fields(param)); s != "" {
			iss.Message += fmt.Sprintf(" (did you mean %q?)", s)
		}
	case "gte":
		if fe.Type() == reflect.TypeOf(time.Duration(0)) && param == "0" {
			iss.Message = "must not be negative"
		} else {
			iss.Message = "must be at least " + param
		}
	case "gt":
		if fe.Type() == reflect.TypeOf(time.Duration(0)) {
			iss.Message = "must be greater than 0 (a duration with a unit, e.g. 5s)"
		} else {
			iss.Message = "must be greater than " + param
		}
	case "lte":
		iss.Message = "must be at most " + param
	case "redis_addr":
		iss.Message = "is not a valid address: it " + CheckAddr(fmt.Sprint(fe.Value())).Error()
	case "error_class":
		v := fmt.Sprint(fe.Value())
		if _, err := errclass.Parse(v); err != nil {
			iss.Message = err.Error()
		} else {
			iss.Message = fmt.Sprintf("error class %q cannot be retried (a retry can never change its outcome)", v)
		}
	case "cacheable_command":
		v := strings.ToUpper(fmt.Sprint(fe.Value()))
		iss.Message = fmt.Sprintf("%s is not a read-only command whose reply depends only on its keys, so it cannot be cached", v)
		names := make([]string, 0, len(cacheableCommands))
		for c := range cacheableCommands {
			names = append(names, c)
		}
		sort.Strings(names)
		if s := suggest.Closest(v, names); s != "" {
			iss.Message += fmt.Sprintf(" (did you mean %q?)", s)
		}
	case "printascii", "excludesall":
		iss.Message = "must be printable ASCII without spaces"
	default:
		iss.Message = fmt.Sprintf("breaks the %q rule %s", fe.Tag(), param)
	}
	return iss
}

// crossCheck holds the rules that relate several keys.
func crossCheck(prefix string, p *Profile) Issues {
	var out Issues
	add := func(path, rule, msg string, v any) {
		full := prefix + "." + path
		out = append(out, Issue{Path: full, Rule: rule, Message: msg, Value: DisplayValue(full, v), HasValue: v != nil})
	}

	// Where the profile connects, by mode.
	switch p.Mode {
	case Standalone:
		if len(p.Addrs) > 0 {
			add("addrs", "mode_key", "is for cluster mode; a standalone profile connects to one server: use addr", strings.Join(p.Addrs, ","))
		}
	case Cluster:
		if len(p.Addrs) == 0 && p.URL == "" {
			add("addrs", "required", "a cluster profile needs at least one seed node in addrs (or a url)", nil)
		}
		if p.Addr != "" && p.URL == "" {
			add("addr", "mode_key", "is for standalone mode; a cluster profile lists its seed nodes in addrs", p.Addr)
		}
		if p.DB != 0 {
			add("db", "mode_key", "Redis Cluster has only database 0", p.DB)
		}
		if p.Network == "unix" {
			add("network", "mode_key", "a cluster profile connects over tcp", p.Network)
		}
	case Sentinel:
		if p.Sentinel.MasterName == "" {
			add("sentinel.master_name", "required", "a sentinel profile needs the name of the monitored master", nil)
		}
		if len(p.Sentinel.Addrs) == 0 {
			add("sentinel.addrs", "required", "a sentinel profile needs at least one sentinel address", nil)
		}
		if p.Addr != "" {
			add("addr", "mode_key", "a sentinel profile finds its master through sentinel.addrs; remove addr", p.Addr)
		}
		if len(p.Addrs) > 0 {
			add("addrs", "mode_key", "is for cluster mode; a sentinel profile lists sentinels in sentinel.addrs", strings.Join(p.Addrs, ","))
		}
		if p.Network == "unix" {
			add("network", "mode_key", "a sentinel profile connects over tcp", p.Network)
		}
	}
	if p.Mode != Sentinel {
		s := p.Sentinel
		if s.MasterName != "" || len(s.Addrs) > 0 || s.Username != "" || s.Password != "" || s.PasswordFile != "" || s.ReplicaOnly {
			add("sentinel", "mode_key", fmt.Sprintf("sentinel keys only apply in sentinel mode (mode is %s)", p.Mode), nil)
		}
	}
	if p.Mode != Cluster {
		c := p.Cluster
		if c.ReadOnly || c.RouteByLatency || c.RouteRandomly || c.MaxRedirects != 0 {
			add("cluster", "mode_key", fmt.Sprintf("cluster keys only apply in cluster mode (mode is %s)", p.Mode), nil)
		}
	}
	if p.Cluster.RouteByLatency && p.Cluster.RouteRandomly {
		add("cluster.route_randomly", "exclusive", "choose one of route_by_latency and route_randomly", true)
	}
	if p.Mode != Cluster && p.Mode != Sentinel && p.URL == "" {
		switch {
		case p.Network == "unix" && !strings.HasPrefix(p.Addr, "/"):
			add("addr", "unix_path", "with network unix, addr is the absolute path of the socket", p.Addr)
		case p.Network != "unix" && p.Addr != "":
			if err := CheckAddr(p.Addr); err != nil {
				add("addr", "redis_addr", "is not a valid address: it "+err.Error(), p.Addr)
			}
		}
	}

	// Credentials: "password and password_file together" is checked by the
	// loader, which reads the file into password (so a loaded profile has
	// both, and validating it again must still pass).

	// TLS.
	t := p.TLS
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify || t.MinVersion != "") {
		add("tls.enabled", "tls_disabled", "TLS keys are set but tls.enabled is false; set tls.enabled: true or remove them", false)
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			add("tls.cert_file", "required_with", "tls.key_file needs tls.cert_file", nil)
		} else {
			add("tls.key_file", "required_with", "tls.cert_file needs tls.key_file", nil)
		}
	}
	if p.Network == "unix" && t.Enabled {
		add("tls.enabled", "mode_key", "TLS is not used over a unix socket", true)
	}

	// Pool.
	pl := p.Pool
	if pl.Size > 0 && pl.MinIdle > pl.Size {
		add("pool.min_idle", "lte_field", fmt.Sprintf("must not exceed pool.size (%d)", pl.Size), pl.MinIdle)
	}
	if pl.MaxIdle > 0 && pl.MinIdle > pl.MaxIdle {
		add("pool.min_idle", "lte_field", fmt.Sprintf("must not exceed pool.max_idle (%d)", pl.MaxIdle), pl.MinIdle)
	}
	if pl.MaxActive > 0 && pl.MinIdle > pl.MaxActive {
		add("pool.min_idle", "lte_field", fmt.Sprintf("must not exceed pool.max_active (%d)", pl.MaxActive), pl.MinIdle)
	}

	// Retry.
	b := p.Retry.Backoff
	switch b.Strategy {
	case BackoffNone:
	case BackoffConstant:
		if b.Base <= 0 {
			add("retry.backoff.base", "required", "constant backoff waits base between tries, so base must be greater than 0 (use strategy none for no wait)", b.Base)
		}
	default:
		if b.Base <= 0 {
			add("retry.backoff.base", "required", fmt.Sprintf("%s backoff grows from base, so base must be greater than 0", b.Strategy), b.Base)
		}
		if b.Cap < b.Base {
			add("retry.backoff.cap", "cap_gte_base", fmt.Sprintf("must not be less than retry.backoff.base (%s)", b.Base), b.Cap)
		}
	}
	if p.Retry.Budget.TokenRatio > 0 && !p.Retry.Budget.Enabled() {
		add("retry.budget.max_tokens", "required_with", "retry.budget.token_ratio needs max_tokens greater than 0", p.Retry.Budget.MaxTokens)
	}
	if p.Retry.Budget.Enabled() && p.Retry.Budget.TokenRatio <= 0 {
		add("retry.budget.token_ratio", "required_with", "a retry budget needs token_ratio greater than 0, or it never refills after failures", p.Retry.Budget.TokenRatio)
	}

	// Cache.
	c := p.Cache
	if c.Enabled && c.MaxEntries == 0 && c.MaxBytes == 0 {
		add("cache.max_entries", "required", "an enabled cache needs a bound: max_entries or max_bytes", nil)
	}
	if len(c.Prefixes) > 0 && c.Mode != CacheBroadcast {
		add("cache.prefixes", "mode_key", "prefixes only apply with cache.mode: broadcast", strings.Join(c.Prefixes, ","))
	}

	// Pipeline.
	if p.Pipeline.Auto && p.Mode == Cluster {
		add("pipeline.auto", "pipeline_unsupported", "auto-pipelining is offered for standalone and sentinel profiles; a cluster profile keeps one round trip per command (use Pipelined for batches)", true)
	}

	// SCH.
	if p.SCH.Mode == SCHEnabled {
		switch {
		case p.Protocol == 2:
			add("sch.mode", "sch_unsupported", "maintenance notifications are RESP3 push messages; set protocol: 3 or sch.mode: auto", p.SCH.Mode)
		case p.Network == "unix":
			add("sch.mode", "sch_unsupported", "maintenance notifications move TCP endpoints; they do not apply over a unix socket", p.SCH.Mode)
		}
	}
	return out
}
