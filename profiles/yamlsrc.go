package profiles

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// parsed is one source after parsing: its tree and, for files, the line of
// every key path.
type parsed struct {
	name  string
	tree  map[string]any
	lines map[string]int
	kind  originKind
	envs  map[string]string // key path -> environment variable, for env
}

// parseError is a problem with one document, at a line when known.
type parseError struct {
	line int // 0: the whole document
	rule string
	msg  string
}

func (e *parseError) Error() string { return e.msg }

// parseBudget is what the parses of one load may still use.
type parseBudget struct {
	lim       Limits
	nodesLeft int // MaxNodes minus the nodes of the documents parsed so far
}

// parseYAML parses one document once into yaml.v3's node tree, checks it
// against the limits (depth, alias expansion, nodes) before anything
// expands its aliases, records the line of every key from it, and decodes
// the nodes into a map (the same decoding koanf's yaml parser does,
// without parsing the text twice).
func parseYAML(name string, data []byte, b *parseBudget) (p *parsed, perr *parseError) {
	defer func() {
		if r := recover(); r != nil {
			p, perr = nil, &parseError{rule: "yaml", msg: fmt.Sprintf("cannot parse YAML: %v", r)}
		}
	}()
	if line, col, msg := checkText(data); msg != "" {
		return nil, &parseError{line: line, rule: "encoding", msg: fmt.Sprintf("column %d: %s", col, msg)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(data, err)
	}
	p = &parsed{name: name, tree: map[string]any{}, lines: map[string]int{}, kind: originFile}
	if len(root.Content) == 0 {
		return p, nil // an empty document
	}
	doc := root.Content[0]
	if perr := b.check(doc); perr != nil {
		return nil, perr
	}
	if line, msg := secretValueIssue(doc, ""); msg != "" {
		// Before anything else reports on the document's content, so
		// that no later message can name an anchor or alias that is a
		// password (the limits checked above name none). Its paths grow
		// with the depth, which the limits have just bounded.
		return nil, &parseError{line: line, rule: "yaml", msg: msg}
	}
	if line, msg := recordLines(doc, "", p.lines); msg != "" {
		return nil, &parseError{line: line, rule: "yaml", msg: msg}
	}
	tree, perr := toValue(withoutExtensions(doc))
	if perr != nil {
		return nil, perr
	}
	switch t := tree.(type) {
	case map[string]any:
		p.tree = t
	case nil:
	default:
		return nil, &parseError{line: doc.Line, rule: "yaml", msg: "invalid YAML: the top level must be a map of `defaults` and `profiles`"}
	}
	return p, nil
}

// withoutExtensions returns the top-level mapping doc without its x- keys
// (as a copy: doc is left as it is). They hold YAML anchors, which their
// aliases reach through the node tree, and nothing reads their values
// (resolve skips them), so decoding them would be work for nothing: as
// much as the rest of the file when they hold a large anchor, and the
// limits allow a million nodes.
func withoutExtensions(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.MappingNode {
		return doc
	}
	var kept []*yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k := doc.Content[i]
		if k.Kind == yaml.ScalarNode && strings.HasPrefix(k.Value, "x-") {
			continue
		}
		kept = append(kept, k, doc.Content[i+1])
	}
	if len(kept) == len(doc.Content) {
		return doc
	}
	out := *doc
	out.Content = kept
	return &out
}

// checkText finds the first byte YAML does not accept: invalid UTF-8, or
// a control character other than tab, newline and carriage return (the
// set yaml.v3's reader refuses without saying where). Documents in UTF-16
// or UTF-32 (with a byte order mark) are left to the parser.
func checkText(data []byte) (line, col int, msg string) {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return 0, 0, ""
	}
	line, col = 1, 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			return line, col, fmt.Sprintf("invalid UTF-8 (byte 0x%02X); the file must be UTF-8 text", data[i])
		case !yamlPrintable(r):
			return line, col, fmt.Sprintf("control character %U is not allowed in YAML (only tab, newline and carriage return are)", r)
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		i += size
	}
	return 0, 0, ""
}

// yamlPrintable is YAML 1.1's c-printable, as yaml.v3 checks it.
func yamlPrintable(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D || (r >= 0x20 && r <= 0x7E) || r == 0x85 ||
		(r >= 0xA0 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// syntaxError turns a yaml.v3 error into a parseError at the line of the
// problem. yaml.v3 reports the line where the enclosing block or flow
// collection began (a bad key on line 40 of a profile that starts on line
// 2 is "line 2"), or no line at all for an unknown anchor; the line of the
// problem itself is found by parsing prefixes of the document (see
// problemLine). data is nil when the error is not a syntax error.
func syntaxError(data []byte, err error) *parseError {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		// "line 3: cannot unmarshal ..."; several at once are rare here.
		msg = te.Errors[0]
	}
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if data != nil {
		if l := problemLine(data, msg); l > 0 {
			line = l
		}
	}
	// yaml.v3 quotes tokens of the document in its messages; one may be a
	// password (an unknown anchor 'S3CRET…', for a password written
	// *S3CRET…).
	return &parseError{line: line, rule: "yaml", msg: redactYAMLError("invalid YAML: "+msg, data)}
}

// problemLine returns the first line L such that the document cut after
// line L fails to parse with the same message as the whole document: the
// parser reads the document in order and is deterministic, so the cut
// first shows the same failure at the line of the problem (for an unclosed
// quote or bracket: the line where it was opened). The search is bounded
// above by how far the parser read before failing, measured by feeding it
// one byte at a time, so only a few cuts near that point are parsed. 0
// when the cuts do not reproduce the failure.
func problemLine(data []byte, msg string) int {
	r := &countingReader{data: data}
	var n yaml.Node
	_ = yaml.NewDecoder(r).Decode(&n)
	ends := lineEnds(data)
	hi := 1 + bytes.Count(data[:max(0, min(r.off, len(data))-1)], []byte("\n"))
	hi = min(hi+1, len(ends))
	fails := func(l int) bool {
		var n yaml.Node
		err := yaml.Unmarshal(data[:ends[l-1]], &n)
		if err == nil {
			return false
		}
		m := strings.TrimPrefix(err.Error(), "yaml: ")
		if x := yamlLineRE.FindStringSubmatch(m); x != nil {
			m = m[len(x[0]):]
		}
		return m == msg
	}
	if hi < 1 || !fails(hi) {
		return 0
	}
	// Walk back a few lines (the usual case), then bisect.
	lo := hi
	for step := 0; step < 4; step++ {
		if lo == 1 || !fails(lo-1) {
			return lo
		}
		lo--
	}
	a, b := 1, lo // fails(b); find the first failing line in [a, b]
	for a < b {
		mid := (a + b) / 2
		if fails(mid) {
			b = mid
		} else {
			a = mid + 1
		}
	}
	return b
}

// lineEnds returns, for each line, the offset just after it.
func lineEnds(data []byte) []int {
	var ends []int
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		ends = append(ends, len(data))
	}
	return ends
}

// countingReader hands its data out one byte per Read and counts them.
type countingReader struct {
	data []byte
	off  int
}

func (r *countingReader) Read(p []byte) (int, error) {
	if r.off >= len(r.data) {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.data[r.off]
	r.off++
	return 1, nil
}

// check measures a document before anything expands its aliases: its
// depth, the nodes its aliases expand to, and its nodes in all, each
// against its limit. Sizes are computed once per anchored node, so the
// work is linear in the document, however much its aliases expand.
func (b *parseBudget) check(doc *yaml.Node) *parseError {
	m := &measure{memo: map[*yaml.Node]shape{}, active: map[*yaml.Node]bool{}}
	s := m.of(doc)
	if m.cycle != nil {
		// The anchor's name is not shown: it may be a password written
		// after '&' or '*'.
		return &parseError{line: m.cycle.Line, rule: "yaml", msg: "invalid YAML: an alias refers to the anchor that contains it (an endless value)"}
	}
	if s.height > b.lim.MaxDepth {
		n := deepest(m, doc, b.lim.MaxDepth)
		return &parseError{line: n.Line, rule: "limit", msg: limitMsg("nesting (aliases expanded) is deeper than", fmt.Sprintf("%d levels", b.lim.MaxDepth), "max_depth")}
	}
	if s.size-s.physical > b.lim.MaxAliasNodes {
		n := crossing(m, doc, b.lim.MaxAliasNodes, true)
		return &parseError{line: n.Line, rule: "limit", msg: limitMsg("aliases expand to more nodes than", b.lim.MaxAliasNodes, "max_alias_nodes")}
	}
	if s.size > b.nodesLeft {
		n := crossing(m, doc, b.nodesLeft, false)
		return &parseError{line: n.Line, rule: "limit", msg: limitMsg("the configuration has more YAML nodes (keys, values, list items; aliases expanded) than", b.lim.MaxNodes, "max_nodes")}
	}
	b.nodesLeft -= s.size
	return nil
}

// shape is what measure knows of a node.
type shape struct {
	size     int // nodes, aliases expanded (saturating)
	physical int // nodes as written (an alias counts as one)
	height   int // levels of maps and lists, aliases expanded
}

type measure struct {
	memo   map[*yaml.Node]shape
	active map[*yaml.Node]bool // anchored nodes being measured
	cycle  *yaml.Node          // an alias inside the node it refers to
}

const saturated = int(^uint(0) >> 2)

func satAdd(a, b int) int {
	if a > saturated-b {
		return saturated
	}
	return a + b
}

func (m *measure) of(n *yaml.Node) shape {
	if s, ok := m.memo[n]; ok {
		return s
	}
	var s shape
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil && m.active[n.Alias] {
			if m.cycle == nil {
				m.cycle = n
			}
			return shape{size: 1, physical: 1}
		}
		if n.Alias != nil {
			t := m.of(n.Alias)
			s = shape{size: t.size, physical: 1, height: t.height}
		} else {
			s = shape{size: 1, physical: 1}
		}
	default:
		if n.Anchor != "" {
			m.active[n] = true
			defer delete(m.active, n)
		}
		s = shape{size: 1, physical: 1}
		for _, c := range n.Content {
			cs := m.of(c)
			s.size = satAdd(s.size, cs.size)
			s.physical += cs.physical
			s.height = max(s.height, cs.height)
		}
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			s.height++
		}
	}
	if n.Anchor != "" || n.Kind == yaml.AliasNode {
		m.memo[n] = s
	}
	return s
}

// deepest follows the deepest branch down to the node at depth limit+1
// (or the alias that leads there) and returns it.
func deepest(m *measure, n *yaml.Node, limit int) *yaml.Node {
	depth := 0
	for {
		if n.Kind == yaml.AliasNode {
			return n
		}
		if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
			depth++
			if depth > limit {
				return n
			}
		}
		var next *yaml.Node
		best := -1
		for _, c := range n.Content {
			if h := m.of(c).height; h > best {
				best, next = h, c
			}
		}
		if next == nil {
			return n
		}
		n = next
	}
}

// crossing walks the document in order and returns the node at which the
// running count (of alias expansions only, or of all nodes) first exceeds
// limit.
func crossing(m *measure, doc *yaml.Node, limit int, aliasesOnly bool) *yaml.Node {
	count := 0
	var found *yaml.Node
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.AliasNode {
			if n.Alias != nil {
				count = satAdd(count, m.of(n.Alias).size)
			}
		} else if !aliasesOnly {
			count++
		}
		if count > limit {
			found = n
			return true
		}
		if n.Kind == yaml.AliasNode {
			return false
		}
		for _, c := range n.Content {
			if walk(c) {
				return true
			}
		}
		return false
	}
	walk(doc)
	if found == nil {
		return doc
	}
	return found
}

// recordLines stores the line of each mapping key under prefix. It does not
// follow aliases: a key reached through an alias has the line of the key
// that holds the alias (lineOf looks up the closest ancestor). It returns
// the line and a message when a mapping repeats a key.
func recordLines(n *yaml.Node, prefix string, lines map[string]int) (int, string) {
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				if line, msg := recordLines(c, prefix, nil); msg != "" {
					return line, msg
				}
			}
		}
		return 0, ""
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // merge key: the merged keys keep their own lines
			continue
		}
		path := k.Value
		if prefix != "" {
			path = prefix + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			return k.Line, fmt.Sprintf("key %q is defined twice (first at line %d)", path, first)
		}
		seen[k.Value] = k.Line
		if lines != nil {
			lines[path] = k.Line
		}
		if line, msg := recordLines(v, path, lines); msg != "" {
			return line, msg
		}
	}
	return 0, ""
}

// toValue turns a node into the value yaml.v3 would decode it to as an
// `any` (maps with text keys, as koanf reads them), in time linear in the
// node's expanded size. yaml.v3's own Decode compares every pair of keys of
// a mapping to find duplicates (quadratic: a file of 100,000 profiles took
// minutes); recordLines has already found duplicates with a map. Scalars
// are still resolved by yaml.v3 itself, so their types (int, float, bool,
// null, timestamps, binary) are exactly yaml.v3's.
func toValue(n *yaml.Node) (any, *parseError) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return toValue(n.Content[0])
	case yaml.AliasNode:
		if n.Alias == nil {
			return nil, nil
		}
		return toValue(n.Alias)
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return n.Value, nil
		case "!!null":
			return nil, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			pe := syntaxError(nil, err)
			if pe.line == 0 {
				pe.line = n.Line
			}
			return nil, pe
		}
		return v, nil
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			v, perr := toValue(c)
			if perr != nil {
				return nil, perr
			}
			out[i] = v
		}
		return out, nil
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if isMergeKey(k) {
				merges = append(merges, v)
				continue
			}
			key, perr := toValue(k)
			if perr != nil {
				return nil, perr
			}
			switch key.(type) {
			case map[string]any, []any:
				return nil, &parseError{line: k.Line, rule: "yaml", msg: "invalid YAML: a map key must be a scalar, not a map or a list"}
			}
			val, perr := toValue(v)
			if perr != nil {
				return nil, perr
			}
			out[keyText(key)] = val
		}
		// Merge keys (<<: *base, or a list of them): explicit keys win,
		// and among merged maps the first that sets a key wins.
		for _, m := range merges {
			srcs := []*yaml.Node{m}
			if m.Kind == yaml.SequenceNode {
				srcs = m.Content
			}
			for _, src := range srcs {
				target := src
				if target.Kind == yaml.AliasNode && target.Alias != nil {
					target = target.Alias
				}
				if target.Kind != yaml.MappingNode {
					return nil, &parseError{line: src.Line, rule: "yaml", msg: "invalid YAML: map merge requires map or sequence of maps as the value"}
				}
				v, perr := toValue(target)
				if perr != nil {
					return nil, perr
				}
				for k, x := range v.(map[string]any) {
					if _, set := out[k]; !set {
						out[k] = x
					}
				}
			}
		}
		return out, nil
	}
	return nil, nil
}

func isMergeKey(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Value == "<<" && (n.Tag == "" || n.Tag == "!" || n.ShortTag() == "!!merge")
}

// keyText renders a map key as text, as koanf does (fmt.Sprint).
func keyText(k any) string {
	if s, ok := k.(string); ok {
		return s
	}
	return fmt.Sprint(k)
}

// normalize turns map[any]any into map[string]any throughout.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = normalize(x)
		}
		if t == nil {
			return map[string]any{}
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = normalize(x)
		}
		return t
	}
	return v
}

// lineOf returns the line of path, or of its closest ancestor with one.
func (p *parsed) lineOf(path string) int {
	for path != "" {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// origin returns where path came from in this source.
func (p *parsed) origin(path string) Origin {
	switch p.kind {
	case originFile:
		if l := p.lineOf(path); l > 0 {
			return Origin{Source: p.name + ":" + strconv.Itoa(l)}
		}
		return Origin{Source: p.name}
	case originEnv:
		for k := path; k != ""; {
			if v, ok := p.envs[k]; ok { // the key, or a value set whole above it
				return Origin{Source: "env " + v}
			}
			i := strings.LastIndexByte(k, '.')
			if i < 0 {
				break
			}
			k = k[:i]
		}
		// A key above what the variables set (an unknown top-level key):
		// the first variable below it.
		var first string
		for k, v := range p.envs {
			if strings.HasPrefix(k, path+".") && (first == "" || v < first) {
				first = v
			}
		}
		if first != "" {
			return Origin{Source: "env " + first}
		}
		return Origin{Source: "env"}
	case originOverride:
		return Origin{Source: "override"}
	}
	return Origin{Source: BuiltinSource}
}
