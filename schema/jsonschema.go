package schema

//go:generate go run ./internal/gen -o redisfactory.schema.json

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/invopop/jsonschema"

	"github.com/redisfactory/redisfactory/errclass"
)

// SchemaID is the $id of the JSON Schema of the configuration file format.
const SchemaID = "https://redisfactory.dev/schema/redisfactory.schema.json"

// DurationPattern is the pattern a duration written as a string must match
// in a file: one or more numbers, each with a unit (ns, us, µs, ms, s, m,
// h), or a lone 0. A bare number such as 5 is refused rather than read as
// nanoseconds. (The number 0, unquoted, is accepted too.)
const DurationPattern = `^(0|-?([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

// ByteSizePattern is the pattern a size written as a string must match.
const ByteSizePattern = `^[0-9]+ ?(B|KB|MB|GB|KiB|MiB|GiB)?$`

// ProfileNamePattern is the pattern every profile name must match.
const ProfileNamePattern = `^[A-Za-z0-9][A-Za-z0-9_-]*$`

var (
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
	secretType   = reflect.TypeOf(Secret(""))
	classType    = reflect.TypeOf(errclass.Class(""))
)

// JSONSchema returns the JSON Schema (draft 2020-12) of the configuration
// file format: a top-level defaults block and a map of named profiles. It is
// generated from the Go types (their json and jsonschema tags), carries the
// built-in defaults as "default" annotations, and refuses unknown keys
// everywhere so that editors flag typos. The output is indented and
// deterministic; schema/redisfactory.schema.json is a checked-in copy
// (regenerate it with go generate ./schema).
func JSONSchema() ([]byte, error) {
	s, err := buildJSONSchema()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("schema: encoding the JSON Schema: %w", err)
	}
	return buf.Bytes(), nil
}

func buildJSONSchema() (*jsonschema.Schema, error) {
	r := &jsonschema.Reflector{
		// Nothing is required key by key: any key may come from the
		// defaults block, an extends chain, another file or the
		// environment. Whole-configuration rules are checked by Validate.
		RequiredFromJSONSchemaTags: true,
		ExpandedStruct:             true,
		Mapper:                     mapType,
	}
	s := r.Reflect(&Config{})
	s.ID = SchemaID
	s.Title = "redisfactory configuration"
	s.Description = "Declarative go-redis client profiles for redisfactory: a defaults block applied under every profile and the named profiles themselves. " +
		"Built-in defaults, the defaults block, the extends chain, later files, the environment and overrides in code are merged in that order of precedence."

	defs := s.Definitions
	defs["Duration"] = &jsonschema.Schema{
		AnyOf: []*jsonschema.Schema{
			{Type: "string", Pattern: DurationPattern},
			{Type: "integer", Const: 0},
		},
		Description: "A duration with a unit, e.g. 500ms, 5s, 1m30s (units: ns, us, µs, ms, s, m, h); 0 alone needs none. A bare number such as 5 is refused.",
		Examples:    []any{"500ms", "5s", "1m30s"},
	}
	defs["ByteSize"] = &jsonschema.Schema{
		Description: "A size: a whole number of bytes, or a number with a unit B, KB, MB, GB (powers of 1000) or KiB, MiB, GiB (powers of 1024), e.g. 64MiB.",
		AnyOf: []*jsonschema.Schema{
			{Type: "integer", Minimum: json.Number("0")},
			{Type: "string", Pattern: ByteSizePattern},
		},
	}
	var classes []any
	for _, c := range errclass.All() {
		if c.Retryable() {
			classes = append(classes, string(c))
		}
	}
	defs["ErrorClass"] = &jsonschema.Schema{
		Type:        "string",
		Enum:        classes,
		Description: "The name of an error class (see package errclass) that a retry may act on.",
	}

	// Profile names.
	profiles, ok := s.Properties.Get("profiles")
	if !ok {
		return nil, fmt.Errorf("schema: the Config schema has no profiles property")
	}
	profiles.PropertyNames = &jsonschema.Schema{
		Pattern:     ProfileNamePattern,
		Description: "Profile names use letters, digits, '_' and '-' and start with a letter or digit.",
	}

	// The defaults block is a profile that cannot extend one.
	defaults, ok := s.Properties.Get("defaults")
	if !ok {
		return nil, fmt.Errorf("schema: the Config schema has no defaults property")
	}
	defaults.Not = &jsonschema.Schema{
		Required:    []string{"extends"},
		Description: "The defaults block cannot extend a profile; use extends inside a profile.",
	}

	// Full descriptions (the reflector cuts a description at its first
	// comma) for the root and every struct definition.
	if err := fixDescriptions(s, reflect.TypeOf(Config{})); err != nil {
		return nil, err
	}
	for _, t := range []reflect.Type{
		reflect.TypeOf(Profile{}), reflect.TypeOf(TLS{}), reflect.TypeOf(SentinelConfig{}),
		reflect.TypeOf(ClusterConfig{}), reflect.TypeOf(Pool{}), reflect.TypeOf(Timeouts{}),
		reflect.TypeOf(Retry{}), reflect.TypeOf(Backoff{}), reflect.TypeOf(Budget{}),
		reflect.TypeOf(Cache{}), reflect.TypeOf(SCH{}), reflect.TypeOf(Pipeline{}),
	} {
		def, ok := defs[t.Name()]
		if !ok {
			return nil, fmt.Errorf("schema: no JSON Schema definition for %s", t.Name())
		}
		if err := fixDescriptions(def, t); err != nil {
			return nil, err
		}
	}

	// The built-in defaults, as annotations editors show on hover.
	if err := annotateDefaults(defs, defs["Profile"], "", DefaultsTree()); err != nil {
		return nil, err
	}
	return s, nil
}

// mapType gives the schema of the types whose file form differs from their
// Go kind. It returns a reference to a definition added afterwards, fresh
// on every call so that each field can carry its own description.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case durationType:
		return &jsonschema.Schema{Ref: "#/$defs/Duration"}
	case byteSizeType:
		return &jsonschema.Schema{Ref: "#/$defs/ByteSize"}
	case classType:
		return &jsonschema.Schema{Ref: "#/$defs/ErrorClass"}
	case secretType:
		return &jsonschema.Schema{Type: "string"}
	}
	return nil
}

// fixDescriptions sets every property's description from the full text of
// its field's jsonschema tag.
func fixDescriptions(s *jsonschema.Schema, t reflect.Type) error {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		prop, ok := s.Properties.Get(name)
		if !ok {
			return fmt.Errorf("schema: %s.%s has no JSON Schema property %q", t.Name(), f.Name, name)
		}
		if d := tagDescription(f.Tag.Get("jsonschema")); d != "" {
			prop.Description = d
		}
	}
	return nil
}

// tagKeywords are the jsonschema tag keywords that may follow a
// description; a comma followed by anything else belongs to the text.
var tagKeywords = []string{
	"title=", "description=", "type=", "enum=", "minimum=", "maximum=", "pattern=",
	"default=", "example=", "format=", "minLength=", "maxLength=", "minItems=", "maxItems=",
	"required", "nullable", "uniqueItems=", "exclusiveMinimum=", "exclusiveMaximum=",
}

// tagDescription returns the description= value of a jsonschema tag,
// commas included.
func tagDescription(tag string) string {
	_, rest, ok := strings.Cut(tag, "description=")
	if !ok {
		return ""
	}
	end := len(rest)
	for i := 0; i < len(rest); i++ {
		if rest[i] != ',' {
			continue
		}
		if i > 0 && rest[i-1] == '\\' {
			continue
		}
		next := rest[i+1:]
		for _, k := range tagKeywords {
			if strings.HasPrefix(next, k) {
				end = i
				break
			}
		}
		if end != len(rest) {
			break
		}
	}
	return strings.ReplaceAll(rest[:end], `\,`, ",")
}

// annotateDefaults records the built-in defaults (a nested map as in
// defaults.yaml) as "default" annotations on the matching properties.
func annotateDefaults(defs jsonschema.Definitions, s *jsonschema.Schema, path string, tree map[string]any) error {
	for k, v := range tree {
		key := strings.TrimPrefix(path+"."+k, ".")
		prop, ok := s.Properties.Get(k)
		if !ok {
			return fmt.Errorf("schema: built-in default %s is not a key of the file format", key)
		}
		if sub, isMap := v.(map[string]any); isMap {
			target := prop
			if ref, found := strings.CutPrefix(prop.Ref, "#/$defs/"); found {
				target = defs[ref]
			}
			if target == nil || target.Properties == nil {
				return fmt.Errorf("schema: built-in default %s is a block but the key is not an object", key)
			}
			if err := annotateDefaults(defs, target, key, sub); err != nil {
				return err
			}
			continue
		}
		prop.Default = v
	}
	return nil
}
