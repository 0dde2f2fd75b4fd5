package profiles

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redisfactory/redisfactory/schema"
)

type resolved struct {
	config  *schema.Config
	origins map[string]map[string]Origin
	bad     map[string]map[string]bool // profile -> key paths that did not decode
}

var topLevelKeys = []string{"defaults", "profiles"}

// resolve checks the top level of the merged tree, computes each profile's
// effective tree (built-in defaults < defaults block < extends chain <
// profile) with the origin of every key, and decodes it.
func (l *loader) resolve(raw map[string]any) *resolved {
	profileKeys := keysOf(profileType)
	for _, k := range sortedKeys(raw) {
		if slices.Contains(topLevelKeys, k) || strings.HasPrefix(k, "x-") {
			continue // x- keys hold YAML anchors, as in docker-compose
		}
		o, _ := l.originOf(k)
		msg := "unknown top-level key; the top level holds defaults: and profiles:"
		if slices.Contains(profileKeys, k) {
			msg += fmt.Sprintf(" (%q is a profile key: put it under profiles.NAME or defaults)", k)
		} else {
			msg += suggestKey(k, topLevelKeys)
		}
		l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: k, Rule: "unknown_key", Message: msg})
	}

	defaults := map[string]any{}
	if d, ok := raw["defaults"]; ok && d != nil {
		m, ok := d.(map[string]any)
		if !ok {
			o, _ := l.originOf("defaults")
			l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "defaults", Rule: "type", Message: "must be a map of profile keys"})
		} else {
			defaults = m
			if _, has := m["extends"]; has {
				o, _ := l.originOf("defaults.extends")
				l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "defaults.extends", Rule: "mode_key", Message: "the defaults block cannot extend a profile; use extends inside a profile"})
			}
		}
	}
	profiles := map[string]map[string]any{}
	if p, ok := raw["profiles"]; ok && p != nil {
		m, ok := p.(map[string]any)
		if !ok {
			o, _ := l.originOf("profiles")
			l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles", Rule: "type", Message: "must be a map from profile name to profile"})
			return nil
		}
		for name, v := range m {
			switch t := v.(type) {
			case map[string]any:
				profiles[name] = t
			case nil:
				profiles[name] = map[string]any{}
			default:
				o, _ := l.originOf("profiles." + name)
				msg := "must be a map of profile keys"
				if str, ok := v.(string); ok && strings.Contains(str, "://") {
					msg += "; to connect with a URL write " + name + ": {url: \"...\"}"
				}
				l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles." + name, Rule: "type", Message: msg, Value: schema.DisplayValue("url", v), HasValue: true})
			}
		}
	}

	// The base every profile starts from.
	base := schema.DefaultsTree()
	baseOrigins := map[string]Origin{}
	for _, leaf := range leaves(base, "") {
		baseOrigins[leaf] = Origin{Source: BuiltinSource}
	}
	defaultLeaves := leaves(defaults, "")
	dropReplaced(baseOrigins, defaultLeaves)
	for _, leaf := range defaultLeaves {
		o, _ := l.originOf("defaults." + leaf)
		o.Via = "defaults"
		baseOrigins[leaf] = o
	}
	base = mergeTrees(base, defaults)

	r := &resolved{config: &schema.Config{Profiles: map[string]*schema.Profile{}}, origins: map[string]map[string]Origin{}, bad: map[string]map[string]bool{}}
	type eff struct {
		tree    map[string]any
		origins map[string]Origin
	}
	done := map[string]*eff{}
	var names []string // sorted profile names, for "did you mean"
	var visit func(name string, stack []string) *eff
	visit = func(name string, stack []string) *eff {
		if e, ok := done[name]; ok {
			return e
		}
		own := profiles[name]
		tree, origins := base, maps.Clone(baseOrigins)
		if ext, ok := own["extends"]; ok && ext != nil {
			parent, isStr := ext.(string)
			o, _ := l.originOf("profiles." + name + ".extends")
			switch {
			case !isStr:
				l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles." + name + ".extends", Rule: "type", Message: "must be the name of a profile", Value: fmt.Sprint(ext), HasValue: true})
			case slices.Contains(stack, parent) || parent == name:
				cycle := append(slices.Clone(stack[slices.Index(append(stack, name), parent):]), name, parent)
				l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles." + name + ".extends", Rule: "extends_cycle", Message: "extends loops: " + strings.Join(dedupeCycle(cycle), " -> "), Value: parent, HasValue: true})
			case profiles[parent] == nil:
				if names == nil {
					names = sortedKeysP(profiles)
				}
				l.issues = append(l.issues, schema.Issue{Source: o.Source, Path: "profiles." + name + ".extends", Rule: "extends_unknown", Message: "names no profile" + suggestKey(parent, names), Value: parent, HasValue: true})
			default:
				pe := visit(parent, append(stack, name))
				if pe != nil {
					tree = pe.tree
					origins = maps.Clone(pe.origins)
					for k, o := range origins {
						if o.Via == "" && o.Source != BuiltinSource {
							o.Via = "extends " + parent
							origins[k] = o
						}
					}
				}
			}
		}
		ownLeaves := leaves(own, "")
		dropReplaced(origins, ownLeaves)
		for _, leaf := range ownLeaves {
			o, _ := l.originOf("profiles." + name + "." + leaf)
			origins[leaf] = o
		}
		e := &eff{tree: mergeTrees(tree, own), origins: origins}
		done[name] = e
		return e
	}
	for _, name := range sortedKeysP(profiles) {
		e := visit(name, nil)
		if e == nil {
			continue
		}
		p := &schema.Profile{}
		d := &decoder{l: l, profile: name, origins: e.origins}
		d.decodeStruct(e.tree, p, "")
		if len(d.bad) > 0 {
			r.bad[name] = d.bad
		}
		r.config.Profiles[name] = p
		r.origins[name] = e.origins
	}
	// The defaults block, decoded on its own for printing.
	dd := &decoder{l: l, profile: "", origins: baseOrigins, quiet: true}
	dd.decodeStruct(defaults, &r.config.Defaults, "")
	return r
}

// dedupeCycle shortens a -> b -> a -> b to a -> b -> a.
func dedupeCycle(c []string) []string {
	for i := 1; i < len(c); i++ {
		if c[i] == c[0] {
			return c[:i+1]
		}
	}
	return c
}

// mergeTrees returns a new tree: b over a; maps merge, other values replace.
func mergeTrees(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeTrees(am, bm)
				continue
			}
			out[k] = mergeTrees(map[string]any{}, bm)
			continue
		}
		out[k] = v
	}
	return out
}

// leaves lists the dotted paths of a tree's non-map values.
func leaves(tree map[string]any, prefix string) []string {
	var out []string
	for k, v := range tree {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			out = append(out, leaves(m, p)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// dropReplaced removes from m the origins that the keys at paths replace:
// a path itself and every key below it. It takes one pass over m, whatever
// the number of paths (a profile with 40,000 keys must not scan m for
// each).
func dropReplaced(m map[string]Origin, paths []string) {
	if len(paths) == 0 || len(m) == 0 {
		return
	}
	set := make(map[string]bool, len(paths))
	for _, p := range paths {
		set[p] = true
	}
	for k := range m {
		for p := k; ; {
			if set[p] {
				delete(m, k)
				break
			}
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
}

func sortedKeys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func sortedKeysP(m map[string]map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}
