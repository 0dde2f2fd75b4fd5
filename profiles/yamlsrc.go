package profiles

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

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

// parseYAML parses one document once into yaml.v3's node tree, records the
// line of every key from it, and decodes the nodes into a map (the same
// decoding koanf's yaml parser does, without parsing the text twice).
func parseYAML(name string, data []byte) (p *parsed, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("cannot parse YAML: %v", r)
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, errors.New(redactYAMLError(yamlError(err).Error(), data))
	}
	p = &parsed{name: name, tree: map[string]any{}, lines: map[string]int{}, kind: originFile}
	if len(root.Content) == 0 {
		return p, nil // an empty document
	}
	doc := root.Content[0]
	if dup := recordLines(doc, "", p.lines); dup != "" {
		return nil, errors.New(dup)
	}
	if msg := secretValueIssue(doc, ""); msg != "" {
		return nil, errors.New(msg)
	}
	var tree any
	if err := doc.Decode(&tree); err != nil {
		return nil, errors.New(redactYAMLError(yamlError(err).Error(), data))
	}
	switch t := normalize(tree).(type) {
	case map[string]any:
		p.tree = t
	case nil:
	default:
		return nil, errors.New("invalid YAML: the top level must be a map of `defaults` and `profiles`")
	}
	return p, nil
}

// yamlError strips yaml.v3's "yaml: " prefix; the caller adds the source.
func yamlError(err error) error {
	return errors.New("invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: "))
}

// recordLines stores the line of each mapping key under prefix. It returns
// a message when a mapping repeats a key.
func recordLines(n *yaml.Node, prefix string, lines map[string]int) string {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return ""
	}
	seen := map[string]int{}
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
			return fmt.Sprintf("line %d: key %q is defined twice (first at line %d)", k.Line, path, first)
		}
		seen[k.Value] = k.Line
		lines[path] = k.Line
		if msg := recordLines(v, path, lines); msg != "" {
			return msg
		}
	}
	return ""
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
		if v, ok := p.envs[path]; ok {
			return Origin{Source: "env " + v}
		}
		for k, v := range p.envs { // a key inside a value set by one variable
			if strings.HasPrefix(path, k+".") {
				return Origin{Source: "env " + v}
			}
		}
		return Origin{Source: "env"}
	case originOverride:
		return Origin{Source: "override"}
	}
	return Origin{Source: BuiltinSource}
}
