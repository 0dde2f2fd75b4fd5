package schema_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	sjs "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/redisfactory/redisfactory/schema"
)

const regenerate = "go generate ./schema"

func TestJSONSchemaCheckedInIsCurrent(t *testing.T) {
	got, err := schema.JSONSchema()
	require.NoError(t, err)
	want, err := os.ReadFile("redisfactory.schema.json")
	require.NoError(t, err, "schema/redisfactory.schema.json is missing; create it with: %s", regenerate)
	if !bytes.Equal(got, want) {
		t.Fatalf("schema/redisfactory.schema.json is stale (the Go types changed); regenerate it with: %s", regenerate)
	}
}

func TestJSONSchemaIsDeterministic(t *testing.T) {
	a, err := schema.JSONSchema()
	require.NoError(t, err)
	for range 5 {
		b, err := schema.JSONSchema()
		require.NoError(t, err)
		require.Equal(t, string(a), string(b))
	}
}

// compileSchema compiles the generated schema with an independent
// validator, which also checks that it is a valid draft 2020-12 schema.
func compileSchema(t *testing.T) *sjs.Schema {
	t.Helper()
	b, err := schema.JSONSchema()
	require.NoError(t, err)
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	c := sjs.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource(schema.SchemaID, doc))
	s, err := c.Compile(schema.SchemaID)
	require.NoError(t, err)
	return s
}

// yamlToJSON decodes YAML into the values a JSON decoder would produce.
func yamlToJSON(t *testing.T, src []byte) any {
	t.Helper()
	var v any
	require.NoError(t, yaml.Unmarshal(src, &v))
	b, err := json.Marshal(v)
	require.NoError(t, err)
	doc, err := sjs.UnmarshalJSON(bytes.NewReader(b))
	require.NoError(t, err)
	return doc
}

func TestExamplesMatchJSONSchema(t *testing.T) {
	s := compileSchema(t)
	root := filepath.Join("..", "examples", "configs")
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, files, "no example configurations under %s", root)
	for _, f := range files {
		t.Run(filepath.ToSlash(strings.TrimPrefix(f, root+string(filepath.Separator))), func(t *testing.T) {
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			// Editors find the schema through the modeline; its relative
			// path must point at the checked-in file.
			first, _, _ := strings.Cut(string(src), "\n")
			ref, ok := strings.CutPrefix(first, "# yaml-language-server: $schema=")
			require.True(t, ok, "%s must start with a yaml-language-server $schema modeline", f)
			_, err = os.Stat(filepath.Join(filepath.Dir(f), filepath.FromSlash(ref)))
			require.NoError(t, err, "the $schema path of %s does not resolve", f)
			require.NoError(t, s.Validate(yamlToJSON(t, src)))
		})
	}
}

func TestJSONSchemaAccepts(t *testing.T) {
	s := compileSchema(t)
	for name, doc := range map[string]string{
		"minimal":       "profiles:\n  app:\n    addr: localhost:6379\n",
		"defaults only": "defaults:\n  timeouts:\n    socket: 2s\n",
		"everything": `
defaults:
  timeouts: {connect: 2s, socket: 500ms}
profiles:
  base-1:
    mode: standalone
    url: redis://user:pw@localhost:6379/0
    network: tcp
    username: app
    password: pw
    db: 3
    protocol: 2
    client_name: svc
    tls: {enabled: true, ca_file: /ca.pem, cert_file: /c.pem, key_file: /k.pem, server_name: r, min_version: "1.3"}
    pool: {size: 20, min_idle: 2, max_idle: 10, max_active: 40, timeout: 4s, conn_max_idle_time: 30m, conn_max_lifetime: 1h}
    timeouts: {connect: 1s, socket: 1m30s, read: 250ms, write: 1.5s}
    retry:
      retries: 5
      backoff: {strategy: decorrelated_jitter, base: 5ms, cap: 2s}
      on: [connection, timeout]
      also_on: [busy_loading, read_only]
      non_idempotent: true
      budget: {max_tokens: 100, token_ratio: 0.1}
    health_check_interval: 3s
    cache: {enabled: true, max_entries: 100, max_bytes: 64MiB, ttl: 1m, mode: broadcast, prefixes: ["user:"], commands: [GET]}
    sch: {mode: enabled, endpoint_type: internal-ip, relaxed_timeout: 10s, handoff_timeout: 15s, post_handoff_relaxed_duration: 20s, max_handoff_retries: 3}
    drain_timeout: 10s
  Cluster_2:
    mode: cluster
    addrs: [a:7000, b:7000]
    cluster: {max_redirects: 3, read_only: true, route_by_latency: true}
    cache: {max_bytes: 1048576}
  s:
    extends: base-1
    mode: sentinel
    sentinel: {master_name: mymaster, addrs: ["s1:26379"], username: u, password_file: /p, replica_only: true}
`,
	} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, s.Validate(yamlToJSON(t, []byte(doc))))
		})
	}
}

func TestJSONSchemaRejects(t *testing.T) {
	s := compileSchema(t)
	for name, tc := range map[string]struct{ doc, want string }{
		"unknown top-level key":     {"profile:\n  app: {addr: x:1}\n", "profile"},
		"unknown profile key":       {"profiles:\n  app:\n    adress: x:1\n", "adress"},
		"unknown nested key":        {"profiles:\n  app:\n    retry: {backof: {base: 1s}}\n", "backof"},
		"duration without unit":     {"profiles:\n  app:\n    timeouts: {socket: 5}\n", "socket"},
		"duration string w/o unit":  {"profiles:\n  app:\n    timeouts: {socket: \"5\"}\n", "socket"},
		"fraction without unit":     {"profiles:\n  app:\n    timeouts: {socket: 0.5}\n", "socket"},
		"bad duration unit":         {"profiles:\n  app:\n    health_check_interval: 3 sec\n", "health_check_interval"},
		"unknown error class":       {"profiles:\n  app:\n    retry: {also_on: [timeouts]}\n", "also_on"},
		"class that cannot retry":   {"profiles:\n  app:\n    retry: {on: [nil]}\n", "on"},
		"bad mode":                  {"profiles:\n  app:\n    mode: clustered\n", "mode"},
		"bad protocol":              {"profiles:\n  app:\n    protocol: 4\n", "protocol"},
		"bad byte size":             {"profiles:\n  app:\n    cache: {max_bytes: 64 mb}\n", "max_bytes"},
		"extends in defaults":       {"defaults:\n  extends: base\nprofiles:\n  base: {addr: \"x:1\"}\n", "defaults"},
		"bad profile name":          {"profiles:\n  -app:\n    addr: x:1\n", "-app"},
		"profile is not an object":  {"profiles:\n  app: localhost:6379\n", "app"},
		"db out of range":           {"profiles:\n  app:\n    db: 16\n", "db"},
		"negative retries":          {"profiles:\n  app:\n    retry: {retries: -1}\n", "retries"},
		"string where bool belongs": {"profiles:\n  app:\n    cache: {enabled: yes please}\n", "enabled"},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Validate(yamlToJSON(t, []byte(tc.doc)))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestJSONSchemaCarriesDefaults(t *testing.T) {
	b, err := schema.JSONSchema()
	require.NoError(t, err)
	var doc struct {
		Defs map[string]struct {
			Properties map[string]struct {
				Default     any    `json:"default"`
				Description string `json:"description"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	require.Equal(t, "10s", doc.Defs["Timeouts"].Properties["connect"].Default)
	require.Equal(t, "exponential_jitter", doc.Defs["Backoff"].Properties["strategy"].Default)
	require.Equal(t, "standalone", doc.Defs["Profile"].Properties["mode"].Default)
	// Descriptions keep their commas.
	require.Equal(t, "Kind of client: one server, a Sentinel-managed master, or Redis Cluster.",
		doc.Defs["Profile"].Properties["mode"].Description)
}
