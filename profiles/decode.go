package profiles

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redisfactory/redisfactory/schema"
)

var (
	profileType  = reflect.TypeOf(schema.Profile{})
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(schema.ByteSize(0))
)

// keysOf lists the koanf keys of a struct type.
func keysOf(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if k := koanfKey(t.Field(i)); k != "" {
			out = append(out, k)
		}
	}
	return out
}

func koanfKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("koanf"), ",")
	if k == "-" {
		return ""
	}
	return k
}

// decoder decodes one effective profile tree into schema types strictly:
// unknown keys, wrong types and durations without a unit are issues, each
// reported where the user wrote the key. It never guesses: a value from a
// YAML file must already have the key's type; a value from the environment
// (always text) is parsed as the key's type.
type decoder struct {
	l       *loader
	profile string
	origins map[string]Origin
	quiet   bool            // decode without reporting (issues are reported elsewhere)
	bad     map[string]bool // key paths (relative) that did not decode
	sorted  []string        // origins' keys, sorted once for lookupOriginSorted
	keys    map[reflect.Type][]string
}

func (d *decoder) report(rel, rule, msg string, v any) {
	if d.quiet {
		return
	}
	if d.bad == nil {
		d.bad = map[string]bool{}
	}
	d.bad[rel] = true
	if d.sorted == nil {
		d.sorted = slices.Sorted(maps.Keys(d.origins))
	}
	o, ok := lookupOriginSorted(d.origins, d.sorted, rel)
	if !ok || o.Source == BuiltinSource && rule == "unknown_key" {
		// A key no path names (it holds a '.'): it was written in the
		// profile, never by the built-in defaults.
		if po, found := d.l.originOf("profiles." + d.profile); found {
			o, ok = po, true
		} else if !ok {
			o = Origin{Source: BuiltinSource}
		}
	}
	path := "profiles." + d.profile + "." + rel
	switch {
	case o.Via == "defaults":
		path = "defaults." + rel
	case strings.HasPrefix(o.Via, "extends "):
		path = "profiles." + strings.TrimPrefix(o.Via, "extends ") + "." + rel
	}
	is := schema.Issue{Source: o.Source, Path: path, Rule: rule, Message: msg}
	if v != nil {
		is.Value, is.HasValue = schema.DisplayValue(rel, display(v)), true
	}
	d.l.issues = append(d.l.issues, is)
}

func display(v any) any {
	if s, ok := v.(envString); ok {
		return string(s)
	}
	return v
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

func (d *decoder) decodeStruct(tree map[string]any, out any, prefix string) {
	rv := reflect.ValueOf(out).Elem()
	d.structValue(tree, rv, prefix)
}

func (d *decoder) structValue(tree map[string]any, rv reflect.Value, prefix string) {
	t := rv.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if k := koanfKey(t.Field(i)); k != "" {
			fields[k] = i
		}
	}
	for k, v := range tree { // issues are sorted at the end
		rel := join(prefix, k)
		i, ok := fields[k]
		if !ok {
			if d.keys == nil {
				d.keys = map[reflect.Type][]string{}
			}
			allowed, ok := d.keys[t]
			if !ok {
				allowed = keysOf(t)
				d.keys[t] = allowed
			}
			d.report(rel, "unknown_key", "unknown key"+suggestKey(k, allowed), nil)
			continue
		}
		d.value(v, rv.Field(i), rel)
	}
}

func (d *decoder) value(v any, fv reflect.Value, rel string) {
	if v == nil {
		return // "key:" with no value keeps the zero value
	}
	es, fromEnv := v.(envString)
	ft := fv.Type()
	switch {
	case ft == durationType:
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case envString:
			s = string(x)
		case int, int64, uint64, float64:
			if fmt.Sprint(x) == "0" {
				fv.SetInt(0)
				return
			}
			d.report(rel, "duration", fmt.Sprintf("a duration needs a unit, e.g. %vs or %vms", x, x), v)
			return
		default:
			d.report(rel, "duration", "must be a duration with a unit, e.g. 5s or 250ms", v)
			return
		}
		dur, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			if _, nerr := strconv.ParseFloat(strings.TrimSpace(s), 64); nerr == nil && strings.TrimSpace(s) != "0" {
				d.report(rel, "duration", fmt.Sprintf("a duration needs a unit, e.g. %ss or %sms", s, s), v)
			} else if strings.TrimSpace(s) == "0" {
				fv.SetInt(0)
			} else {
				d.report(rel, "duration", "must be a duration with a unit (ns, us, ms, s, m, h), e.g. 5s or 1m30s", v)
			}
			return
		}
		fv.SetInt(int64(dur))
	case ft == byteSizeType:
		switch x := v.(type) {
		case int:
			if x < 0 {
				d.report(rel, "bytes", "must not be negative", v)
				return
			}
			fv.SetInt(int64(x))
		case string, envString:
			b, err := schema.ParseByteSize(fmt.Sprint(display(x)))
			if err != nil {
				d.report(rel, "bytes", "must be a size such as 64MiB or 1000000", v)
				return
			}
			fv.SetInt(int64(b))
		default:
			d.report(rel, "bytes", "must be a size such as 64MiB or 1000000", v)
		}
	case ft.Kind() == reflect.String:
		switch x := v.(type) {
		case string:
			fv.SetString(x)
		case envString:
			fv.SetString(string(x))
		case schema.Secret: // an override given in code as a Secret
			fv.SetString(x.Reveal())
		default:
			if isScalar(v) && ft.Name() != "string" && ft.PkgPath() != "" {
				// an enum given a number or boolean
				d.report(rel, "type", "must be text", v)
				return
			}
			if isScalar(v) {
				// YAML reads "client_name: 123" as a number; a string
				// key accepts the text the user wrote.
				fv.SetString(fmt.Sprint(v))
				return
			}
			d.report(rel, "type", "must be text, not a list or a map", nil)
		}
	case ft.Kind() == reflect.Int:
		switch x := v.(type) {
		case int:
			fv.SetInt(int64(x))
		case float64:
			if x != math.Trunc(x) {
				d.report(rel, "type", "must be a whole number", v)
				return
			}
			fv.SetInt(int64(x))
		case envString:
			n, err := strconv.Atoi(strings.TrimSpace(string(x)))
			if err != nil {
				d.report(rel, "type", "must be a whole number", v)
				return
			}
			fv.SetInt(int64(n))
		default:
			d.report(rel, "type", "must be a whole number", v)
		}
	case ft.Kind() == reflect.Float64:
		switch x := v.(type) {
		case int:
			fv.SetFloat(float64(x))
		case float64:
			fv.SetFloat(x)
		case envString:
			f, err := strconv.ParseFloat(strings.TrimSpace(string(x)), 64)
			if err != nil {
				d.report(rel, "type", "must be a number", v)
				return
			}
			fv.SetFloat(f)
		default:
			d.report(rel, "type", "must be a number", v)
		}
	case ft.Kind() == reflect.Bool:
		switch x := v.(type) {
		case bool:
			fv.SetBool(x)
		case envString:
			b, err := strconv.ParseBool(strings.TrimSpace(string(x)))
			if err != nil {
				d.report(rel, "type", "must be true or false", v)
				return
			}
			fv.SetBool(b)
		default:
			d.report(rel, "type", "must be true or false", v)
		}
	case ft.Kind() == reflect.Slice:
		var items []any
		switch x := v.(type) {
		case []any:
			items = x
		case envString:
			for _, part := range strings.Split(string(x), ",") {
				if part = strings.TrimSpace(part); part != "" {
					items = append(items, envString(part))
				}
			}
		default:
			d.report(rel, "type", "must be a list", v)
			return
		}
		sl := reflect.MakeSlice(ft, len(items), len(items))
		for i, it := range items {
			d.value(it, sl.Index(i), fmt.Sprintf("%s[%d]", rel, i))
		}
		fv.Set(sl)
	case ft.Kind() == reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			if fromEnv {
				d.report(rel, "type", "is a block of keys; set its keys one by one (e.g. "+rel+".KEY)", es)
				return
			}
			d.report(rel, "type", "must be a map of keys", v)
			return
		}
		d.structValue(m, fv, rel)
	default:
		d.report(rel, "internal", fmt.Sprintf("cannot decode into %s", ft), nil)
	}
}

func isScalar(v any) bool {
	switch v.(type) {
	case int, int64, uint64, float64, bool:
		return true
	}
	return false
}
