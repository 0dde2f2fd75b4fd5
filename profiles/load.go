// Package profiles loads redisfactory configurations: it reads YAML files
// and directories, environment variables and overrides given in code,
// merges them with koanf in a fixed order of precedence, resolves each
// profile's defaults and extends chain, decodes strictly into schema types,
// reads the files that keys point to (password_file, TLS files), validates,
// and remembers which source set every effective key.
//
// Precedence, lowest first:
//
//	built-in defaults (schema/defaults.yaml)
//	< the defaults: block
//	< the extends chain (the profile it extends, recursively)
//	< the profile itself
//
// where the file tree that holds the defaults: block and the profiles is
// itself the merge, lowest first, of
//
//	the files in the order given (a directory: its *.yaml / *.yml in name order)
//	< environment variables (<PREFIX>__PROFILES__<NAME>__<KEY>)
//	< overrides passed in code.
//
// Each Load builds a fresh koanf instance, so a key deleted from a file is
// gone after the next load. Watch keeps a configuration current; see
// Watcher for what triggers a reload.
package profiles

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/knadh/koanf/providers/confmap"

	"github.com/redisfactory/redisfactory/internal/safefile"
	"github.com/redisfactory/redisfactory/internal/suggest"
	"github.com/redisfactory/redisfactory/schema"
)

// BuiltinSource is the Origin.Source of a key nobody set.
const BuiltinSource = "built-in default"

// Options says where a configuration comes from.
type Options struct {
	// Paths are YAML files, or directories whose *.yaml and *.yml files
	// are read in name order. Later files win.
	Paths []string
	// Sources are further documents (for example bytes held in memory),
	// merged after Paths.
	Sources []Source
	// EnvPrefix turns on environment overrides: with "APP_REDIS", the
	// variable APP_REDIS__PROFILES__SESSIONS__TIMEOUTS__SOCKET=5s sets
	// profiles.sessions.timeouts.socket. Empty: the environment is ignored.
	// A variable may only name a profile the files (or Overrides) define:
	// a typo such as APP_REDIS__PROFILES__SESIONS__ADDR is an error with a
	// "did you mean", not a new profile. A profile whose keys all come
	// from the environment is declared in a file with no keys
	// (profiles: {sessions: {}}).
	EnvPrefix string
	// Environ returns the environment as "KEY=value" strings; nil means
	// os.Environ. Tests pass their own.
	Environ func() []string
	// Overrides are key paths (dotted, e.g. "profiles.cache.db") and values
	// that win over every other source.
	Overrides map[string]any
	// AllowEmpty accepts an empty document instead of reporting it.
	AllowEmpty bool
	// Limits bound what a load reads (file sizes, nesting, alias
	// expansion, counts); the zero value means DefaultLimits.
	Limits Limits
}

// Origin is where an effective key's value came from.
type Origin struct {
	// Source is "redis.yaml:12", "env APP_REDIS__PROFILES__…",
	// "override" or "built-in default".
	Source string `json:"source"`
	// Via says how the value reached the profile when it was not set on
	// the profile itself: "defaults", "extends NAME", "url", or "".
	Via string `json:"via,omitempty"`
}

// String renders "redis.yaml:12 (via defaults)".
func (o Origin) String() string {
	if o.Via == "" {
		return o.Source
	}
	return o.Source + " (via " + o.Via + ")"
}

type originKind int

const (
	originBuiltin originKind = iota
	originFile
	originEnv
	originOverride
)

// Result is a loaded, valid configuration.
type Result struct {
	// Config holds the effective profiles.
	Config *schema.Config

	origins  map[string]map[string]Origin // profile -> key path -> origin
	files    []string
	digest   [32]byte
	warnings schema.Issues
}

// Warnings returns what weakens the security of the loaded profiles without
// making them invalid (see the package function Warnings), each with the
// source that set the key, sorted by path.
func (r *Result) Warnings() schema.Issues { return slices.Clone(r.warnings) }

// Files returns every file the configuration was read from, including the
// files its keys point to (password_file, TLS certificates and keys).
func (r *Result) Files() []string { return slices.Clone(r.files) }

// Digest is a hash of the effective configuration, file contents included
// (so a rotated password file changes it). Equal digests mean nothing
// changed.
func (r *Result) Digest() [32]byte { return r.digest }

// Origin returns where the effective key path (relative to the profile,
// e.g. "retry.backoff.cap") of profile came from.
func (r *Result) Origin(profile, path string) (Origin, bool) {
	o, ok := r.origins[profile][path]
	return o, ok
}

// Load reads, merges, resolves, decodes and validates a configuration. On
// failure the error is a schema.Issues listing every problem, each with its
// source (use errors.As).
func Load(opts Options) (*Result, error) {
	l := &loader{opts: opts, limits: opts.Limits.effective()}
	res := l.load()
	if len(l.issues) > 0 {
		// Redacted whatever built them: a URL's credentials in any value,
		// message or source never leave the loader.
		return nil, l.issues.Redacted().Sort()
	}
	return res, nil
}

type loader struct {
	opts    Options
	limits  Limits
	index   *originIndex
	issues  schema.Issues
	sources []*parsed // in precedence order, lowest first (files, env, overrides)
	files   []string
	hash    []byte
}

func (l *loader) fail(source, path, rule, msg string) {
	l.issues = append(l.issues, schema.Issue{Source: source, Path: path, Rule: rule, Message: msg})
}

func (l *loader) load() *Result {
	lim := l.limits
	paths, err := expandPaths(l.opts.Paths, lim.MaxFiles)
	if err != nil {
		if errors.Is(err, errTooManyFiles) {
			src, _, _ := strings.Cut(err.Error(), ": ")
			l.fail(src, "", "limit", limitMsg("the paths hold more configuration files than", lim.MaxFiles, "max_files"))
			return nil
		}
		l.fail(sourceOfPathErr(err), "", "read", "cannot read: "+rootCause(err))
		return nil
	}
	srcs := make([]Source, 0, len(paths)+len(l.opts.Sources))
	for _, p := range paths {
		srcs = append(srcs, File(p))
	}
	srcs = append(srcs, l.opts.Sources...)
	if len(srcs) == 0 {
		l.fail("", "", "required", "no configuration: give at least one file or directory")
		return nil
	}
	budget := &parseBudget{lim: lim, nodesLeft: lim.MaxNodes}
	var total int64
	for _, s := range srcs {
		data, err := l.read(s)
		if err != nil {
			var tl *safefile.TooLargeError
			if errors.As(err, &tl) {
				l.fail(s.Name(), "", "limit", limitMsg("the file is larger than", sizeText(lim.MaxFileSize), "max_file_size"))
			} else {
				l.fail(s.Name(), "", "read", "cannot read: "+rootCause(err))
			}
			continue
		}
		if total += int64(len(data)); total > lim.MaxTotalSize {
			l.fail(s.Name(), "", "limit", limitMsg("the configuration files together are larger than", sizeText(lim.MaxTotalSize), "max_total_size"))
			return nil
		}
		if _, ok := s.(fileSource); ok {
			l.files = append(l.files, s.Name())
		}
		l.hashPart(s.Name(), data)
		if len(strings.TrimSpace(stripComments(data))) == 0 && !l.opts.AllowEmpty {
			l.fail(s.Name(), "", "empty", "the file is empty; write at least one profile under profiles: (or allow empty files)")
			continue
		}
		p, perr := parseYAML(s.Name(), data, budget)
		if perr != nil {
			src := s.Name()
			if perr.line > 0 {
				src += ":" + strconv.Itoa(perr.line)
			}
			l.fail(src, "", perr.rule, perr.msg)
			if perr.rule == "limit" {
				return nil // the budget is spent; later files would only repeat it
			}
			continue
		}
		l.sources = append(l.sources, p)
	}
	if len(l.issues) > 0 {
		return nil
	}

	// Profile names the files (and overrides in code) define, so that
	// environment variables can only address those.
	known := map[string]bool{}
	for _, s := range l.sources {
		if ps, ok := s.tree["profiles"].(map[string]any); ok {
			for n := range ps {
				known[n] = true
			}
		}
	}
	for k := range l.opts.Overrides {
		if rest, ok := strings.CutPrefix(k, "profiles."); ok {
			n, _, _ := strings.Cut(rest, ".")
			known[n] = true
		}
	}
	if l.opts.EnvPrefix != "" {
		environ := l.opts.Environ
		if environ == nil {
			environ = os.Environ
		}
		p, unknown, err := parseEnv(l.opts.EnvPrefix, environ, known)
		if err != nil {
			l.fail("environment", "", "env", err.Error())
			return nil
		}
		for _, u := range unknown {
			l.issues = append(l.issues, schema.Issue{Source: "env " + u.variable, Path: "profiles." + u.profile, Rule: "env_unknown_profile",
				Message: "names no profile of the configuration files" + suggestKey(u.profile, slices.Sorted(maps.Keys(known))) +
					"; to define a profile from the environment alone, declare it in a file first: profiles: {" + u.profile + ": {}}"})
		}
		// The variables under the prefix, name and value, in a stable order.
		var kvs []string
		for _, kv := range environ() {
			if strings.HasPrefix(kv, l.opts.EnvPrefix+envSeparator) {
				kvs = append(kvs, kv)
			}
		}
		slices.Sort(kvs)
		l.hashPart("environment", []byte(strings.Join(kvs, "\n")))
		l.sources = append(l.sources, p)
	}
	if len(l.opts.Overrides) > 0 {
		tree, err := confmap.Provider(l.opts.Overrides, ".").Read()
		if err != nil {
			l.fail("override", "", "override", err.Error())
			return nil
		}
		l.hashPart("override", overridesDigestInput(l.opts.Overrides))
		l.sources = append(l.sources, &parsed{name: "override", tree: normalize(tree).(map[string]any), kind: originOverride})
	}
	if len(l.issues) > 0 {
		return nil
	}

	// Merge every source, in order, into one tree (maps merge, other
	// values replace, as koanf merges). One source needs no merge. The
	// merge is done here rather than with koanf, whose Load flattens the
	// whole configuration again after every source: with thousands of
	// files, that is quadratic.
	raw := l.sources[0].tree
	if len(l.sources) > 1 {
		raw = map[string]any{}
		for _, s := range l.sources {
			mergeInto(raw, s.tree)
		}
	}
	if ps, ok := raw["profiles"].(map[string]any); ok && len(ps) > lim.MaxProfiles {
		o, _ := l.originOf("profiles")
		l.fail(o.Source, "profiles", "limit", limitMsg(fmt.Sprintf("%d profiles are more than", len(ps)), lim.MaxProfiles, "max_profiles"))
		return nil
	}

	cfg := l.resolve(raw)
	if cfg == nil {
		return nil
	}
	res := &Result{Config: cfg.config, origins: cfg.origins}
	// Every profile is validated, so that one run reports every problem;
	// an issue about a key that already failed to decode is left out (its
	// zero value would only add noise).
	l.afterDecode(res)
	for _, is := range schema.Validate(res.Config) {
		if cfg.failedToDecode(is.Path) {
			continue
		}
		l.issues = append(l.issues, l.locate(res, is))
	}
	if len(l.issues) > 0 {
		return nil
	}
	l.readReferencedFiles(res)
	if len(l.issues) > 0 {
		return nil
	}
	res.files = l.files
	res.digest = sha256.Sum256(l.hash)
	for _, name := range sortedProfileNames(res.Config) {
		for _, w := range Warnings(name, res.Config.Profiles[name]) {
			res.warnings = append(res.warnings, l.locate(res, w))
		}
	}
	res.warnings = res.warnings.Redacted().Sort()
	return res
}

// failedToDecode reports whether a validation issue at path concerns a key
// whose decoding already failed.
func (r *resolved) failedToDecode(path string) bool {
	rest, ok := strings.CutPrefix(path, "profiles.")
	if !ok {
		return false
	}
	name, rel, _ := strings.Cut(rest, ".")
	bad := r.bad[name]
	if len(bad) == 0 {
		return false
	}
	if i := strings.IndexByte(rel, '['); i >= 0 {
		rel = rel[:i]
	}
	for p := rel; p != ""; {
		if bad[p] {
			return true
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	for k := range bad {
		if strings.HasPrefix(k, rel+".") || strings.HasPrefix(k, rel+"[") {
			return true
		}
	}
	return false
}

// overridesDigestInput renders the overrides for the digest, secrets
// revealed: fmt would print a schema.Secret as <redacted>, and a rotated
// secret override would then leave the digest unchanged.
func overridesDigestInput(o map[string]any) []byte {
	var b []byte
	for _, k := range slices.Sorted(maps.Keys(o)) {
		v := o[k]
		if s, ok := v.(schema.Secret); ok {
			v = s.Reveal()
		}
		b = fmt.Appendf(b, "%q=%#v\n", k, v)
	}
	return b
}

// hashPart adds one named part to what the digest covers, framed by its
// name and length so that content moving between parts changes the digest.
func (l *loader) hashPart(name string, data []byte) {
	l.hash = fmt.Appendf(l.hash, "%s\x00%d\x00", name, len(data))
	l.hash = append(l.hash, data...)
}

// originOf returns the origin of a full key path in the merged tree: the
// last source that set it (or a parent of it), else the built-in defaults.
func (l *loader) originOf(path string) (Origin, bool) {
	if len(l.sources) == 1 {
		// One source (the common case): it set path if its tree holds
		// it, and no index of every path is worth building.
		if hasPath(l.sources[0].tree, path) {
			return l.sources[0].origin(path), true
		}
		return Origin{Source: BuiltinSource}, false
	}
	if l.index == nil {
		l.index = newOriginIndex(l.sources)
	}
	if i := l.index.last(path); i >= 0 {
		return l.sources[i].origin(path), true
	}
	return Origin{Source: BuiltinSource}, false
}

// hasPath reports whether the nested map sets path (or a leaf above it).
func hasPath(tree map[string]any, path string) bool {
	cur := any(tree)
	for path != "" {
		m, ok := cur.(map[string]any)
		if !ok {
			return true // a leaf above path set it whole
		}
		part, rest, _ := strings.Cut(path, ".")
		if cur, ok = m[part]; !ok {
			return false
		}
		path = rest
	}
	return true
}

// originIndex answers "which source set this path last" in time linear in
// the depth of the path, whatever the number of sources: it records, for
// every path a source's tree holds, the last source holding it, and for
// every leaf (a value that is not a map) the last source setting it.
type originIndex struct {
	has  map[string]int // path -> last source whose tree holds it (map or leaf)
	leaf map[string]int // path -> last source that set it to a non-map value
}

func newOriginIndex(srcs []*parsed) *originIndex {
	x := &originIndex{has: map[string]int{}, leaf: map[string]int{}}
	for i, s := range srcs {
		x.add(i, s.tree, "")
	}
	return x
}

func (x *originIndex) add(i int, tree map[string]any, prefix string) {
	for k, v := range tree {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		x.has[p] = i
		if m, ok := v.(map[string]any); ok {
			x.add(i, m, p)
			continue
		}
		x.leaf[p] = i
	}
}

// last returns the index of the last source that holds path or set a leaf
// above it, or -1.
func (x *originIndex) last(path string) int {
	best := -1
	if i, ok := x.has[path]; ok {
		best = i
	}
	for p := path; ; {
		j := strings.LastIndexByte(p, '.')
		if j < 0 {
			break
		}
		p = p[:j]
		if i, ok := x.leaf[p]; ok && i > best {
			best = i
		}
	}
	return best
}

// locate fills in the source of a validation issue and rewrites its path
// to where the user wrote the key (defaults.…, or the profile extended).
func (l *loader) locate(res *Result, is schema.Issue) schema.Issue {
	if is.Source != "" {
		return is
	}
	rest, ok := strings.CutPrefix(is.Path, "profiles.")
	if !ok {
		if o, ok := l.originOf(is.Path); ok {
			is.Source = o.Source
		} else {
			is.Source = l.sourceNames()
		}
		return is
	}
	name, rel, _ := strings.Cut(rest, ".")
	if rel == "" {
		if o, ok := l.originOf("profiles." + name); ok {
			is.Source = o.Source
		}
		return is
	}
	o, ok := lookupOrigin(res.origins[name], rel)
	if !ok {
		o = Origin{Source: BuiltinSource}
	}
	is.Source = o.Source
	switch {
	case o.Via == "defaults":
		is.Path = "defaults." + rel
	case strings.HasPrefix(o.Via, "extends "):
		is.Path = "profiles." + strings.TrimPrefix(o.Via, "extends ") + "." + rel
	case o.Via == "url":
		is.Path = "profiles." + name + ".url"
		is.Message += " (derived from url)"
	}
	return is
}

// lookupOrigin finds where the value behind an issue at rel was set: rel
// itself or an ancestor, else a key below it (an issue on a whole block),
// else a sibling (a rule such as "token_ratio needs max_tokens" is about
// the key the user did set). User-set origins win over built-in ones.
func lookupOrigin(m map[string]Origin, rel string) (Origin, bool) {
	return lookupOriginSorted(m, nil, rel)
}

// lookupOriginSorted is lookupOrigin given m's keys in sorted order (nil:
// sorted here when needed), so that a caller asking many times about one
// map, such as the decoder reporting thousands of unknown keys, sorts once.
func lookupOriginSorted(m map[string]Origin, keys []string, rel string) (Origin, bool) {
	if o, ok := m[rel]; ok && o.Source != BuiltinSource {
		return o, true // before cutting "[": a key may hold one
	}
	if i := strings.IndexByte(rel, '['); i >= 0 {
		rel = rel[:i]
	}
	var builtin *Origin
	for p := rel; p != ""; {
		if o, ok := m[p]; ok {
			if o.Source != BuiltinSource {
				return o, true
			}
			if builtin == nil {
				builtin = &o
			}
		}
		i := strings.LastIndexByte(p, '.')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	under := func(prefix string) (Origin, bool) {
		if keys == nil {
			keys = slices.Sorted(maps.Keys(m))
		}
		i, _ := slices.BinarySearch(keys, prefix)
		for ; i < len(keys) && strings.HasPrefix(keys[i], prefix); i++ {
			if o := m[keys[i]]; o.Source != BuiltinSource {
				return o, true
			}
		}
		return Origin{}, false
	}
	if o, ok := under(rel + "."); ok {
		return o, true
	}
	if i := strings.LastIndexByte(rel, '.'); i >= 0 {
		if o, ok := under(rel[:i+1]); ok {
			return o, true
		}
	}
	if builtin != nil {
		return *builtin, true
	}
	return Origin{}, false
}

// sourceNames names the sources, for an issue about the whole configuration.
func (l *loader) sourceNames() string {
	names := make([]string, 0, len(l.sources))
	for _, s := range l.sources {
		names = append(names, s.name)
	}
	return strings.Join(names, ", ")
}

func sourceOfPathErr(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Path
	}
	return ""
}

func rootCause(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// stripComments drops YAML comment lines, to tell an empty file from one
// with content.
func stripComments(data []byte) string {
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || t == "---" || t == "..." {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// maxSuggestCandidates bounds the candidates a "did you mean" compares a
// name with: each comparison costs the product of the lengths, and a
// configuration with many bad names among many candidates (100,000
// profiles extending a missing one) would otherwise take quadratic time.
const maxSuggestCandidates = 1000

// suggestKey proposes the closest of the allowed keys (none when there are
// too many to compare, or the name is too long to be a typo of one).
func suggestKey(got string, allowed []string) string {
	if len(allowed) > maxSuggestCandidates || len(got) > 256 {
		return ""
	}
	if s := suggest.Closest(got, allowed); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// read returns a source's document under the file size limit: a file is
// read only if it is a regular file (checked without blocking, so a FIFO
// or a device is refused), and never more than the limit.
func (l *loader) read(s Source) ([]byte, error) {
	if f, ok := s.(fileSource); ok {
		return safefile.Read(string(f), l.limits.MaxFileSize)
	}
	data, err := s.Read()
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > l.limits.MaxFileSize {
		return nil, &safefile.TooLargeError{Path: s.Name(), Limit: l.limits.MaxFileSize}
	}
	return data, nil
}

// mergeInto merges src over dst in place: maps merge, other values
// replace. dst's maps are the merge's own; src's maps are copied where
// they land, so that the sources' trees are never changed.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		sm, ok := v.(map[string]any)
		if !ok {
			dst[k] = v
			continue
		}
		dm, ok := dst[k].(map[string]any)
		if !ok {
			dm = make(map[string]any, len(sm))
			dst[k] = dm
		}
		mergeInto(dm, sm)
	}
}
