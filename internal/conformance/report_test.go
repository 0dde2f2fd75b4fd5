package conformance

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/profiles"
)

func TestParseReport(t *testing.T) {
	data := []byte(`[{"SpecReports":[
	 {"ContainerHierarchyTexts":["Commands","server"],"LeafNodeText":"should Ping","LeafNodeType":"It",
	  "LeafNodeLocation":{"FileName":"/x/commands_test.go","LineNumber":10},"State":"passed"},
	 {"ContainerHierarchyTexts":["Tx",""],"LeafNodeText":"should Watch","LeafNodeType":"It",
	  "LeafNodeLocation":{"FileName":"/x/tx_test.go","LineNumber":26},"State":"failed",
	  "Failure":{"Message":"Expected\n  <int64>: 99\nto equal\n  <int64>: 100\nmore","Location":{"FileName":"/x/tx_test.go","LineNumber":62}}},
	 {"ContainerHierarchyTexts":["Commands"],"LeafNodeText":"should WaitAOF","LeafNodeType":"It",
	  "LeafNodeLocation":{"FileName":"/x/commands_test.go","LineNumber":153},"State":"skipped"},
	 {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"BeforeSuite",
	  "LeafNodeLocation":{"FileName":"/x/main_test.go","LineNumber":1},"State":"passed"},
	 {"ContainerHierarchyTexts":null,"LeafNodeText":"","LeafNodeType":"AfterSuite",
	  "LeafNodeLocation":{"FileName":"/x/main_test.go","LineNumber":2},"State":"panicked","Failure":{"Message":"boom"}}
	]}]`)
	specs, err := ParseReport(data)
	require.NoError(t, err)
	require.Equal(t, []Spec{
		{Name: "Commands server should Ping", Location: "commands_test.go:10", Outcome: Passed},
		{Name: "Tx should Watch", Location: "tx_test.go:26", Outcome: Failed,
			Message: "tx_test.go:62: Expected <int64>: 99 to equal …"},
		{Name: "Commands should WaitAOF", Location: "commands_test.go:153", Outcome: Skipped},
		{Name: "[AfterSuite]", Location: "main_test.go:2", Outcome: Failed, Message: "boom"},
	}, specs)
	assert.Equal(t, Counts{Run: 3, Pass: 1, Fail: 2, Skip: 1}, Count(specs))

	_, err = ParseReport([]byte("{"))
	require.Error(t, err)
}

func TestCompare(t *testing.T) {
	spec := func(name string, o Outcome) Spec { return Spec{Name: name, Location: "f.go:1", Outcome: o} }
	baseline := []Spec{
		spec("both pass", Passed),
		spec("factory only", Passed),
		spec("baseline fails", Failed),
		spec("fixed", Failed),
		spec("skipped here", Passed),
		spec("missing", Passed),
		spec("skipped both", Skipped),
	}
	got := []Spec{
		spec("both pass", Passed),
		spec("factory only", Failed),
		spec("baseline fails", Failed),
		spec("fixed", Passed),
		spec("skipped here", Skipped),
		spec("skipped both", Skipped),
		spec("[AfterSuite]", Failed),
	}
	d := Compare(baseline, got)
	assert.Equal(t, []Spec{spec("factory only", Failed), spec("[AfterSuite]", Failed)}, d.FactoryOnly)
	assert.Equal(t, []Spec{spec("skipped here", Skipped)}, d.SkippedOnly)
	assert.Equal(t, []Spec{spec("missing", Passed)}, d.Missing)
	assert.Equal(t, []Spec{spec("fixed", Passed)}, d.Fixed)
}

func TestSkipPattern(t *testing.T) {
	configs := []Config{
		{Name: "base"}, {Name: "a", Baseline: "base"}, {Name: "b", Baseline: "base"},
		{Name: "cbase", Cluster: true}, {Name: "c", Baseline: "cbase", Cluster: true},
	}
	ex := []Exclusion{
		{Spec: "Commands should Foo (x)", Reason: "everywhere"},
		{Spec: "Tx should Bar", Configs: []string{"a"}, Reason: "only a"},
	}
	tests := []struct {
		config     string
		skipped    []string
		notSkipped []string
	}{
		{"base", []string{"Commands should Foo (x)", "Tx should Bar"}, []string{"Commands should Foo"}},
		{"a", []string{"Commands should Foo (x)", "Tx should Bar"}, nil},
		{"b", []string{"Commands should Foo (x)"}, []string{"Tx should Bar", "Tx should Bar too"}},
		{"c", []string{"Commands should Foo (x)"}, []string{"Tx should Bar"}},
	}
	for _, tt := range tests {
		t.Run(tt.config, func(t *testing.T) {
			var cfg Config
			for _, c := range configs {
				if c.Name == tt.config {
					cfg = c
				}
			}
			re := regexp.MustCompile(SkipPattern(ex, cfg, configs))
			var report []Spec
			for _, s := range tt.skipped {
				assert.True(t, re.MatchString(SuiteDescription+" "+s), s)
				report = append(report, Spec{Name: s, Outcome: Skipped})
			}
			for _, s := range tt.notSkipped {
				assert.False(t, re.MatchString(SuiteDescription+" "+s), s)
			}
			require.NoError(t, CheckExcluded(ex, cfg, configs, report))
			if len(report) > 0 {
				report[0].Outcome = Passed
				require.ErrorContains(t, CheckExcluded(ex, cfg, configs, report), "not skipped")
			}
		})
	}
	assert.Empty(t, SkipPattern(nil, configs[0], configs))
}

func TestLoadExclusions(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "ex.yaml")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	_, err := LoadExclusions(write("- spec: X\n"), Configs)
	require.ErrorContains(t, err, "reason")
	_, err = LoadExclusions(write("- spec: X\n  reason: r\n  configs: [nope]\n"), Configs)
	require.ErrorContains(t, err, `unknown configuration "nope"`)
	ex, err := LoadExclusions(write("- spec: X\n  reason: r\n  configs: [defaults]\n"), Configs)
	require.NoError(t, err)
	require.Equal(t, []Exclusion{{Spec: "X", Reason: "r", Configs: []string{"defaults"}}}, ex)

	// The committed file is valid.
	_, err = LoadExclusions("exclusions.yaml", Configs)
	require.NoError(t, err)
}

func TestConfigs(t *testing.T) {
	for _, rs := range RepeatSpecs {
		require.Contains(t, SpecFiles, rs.File, rs.Name)
		require.Positive(t, rs.Times, rs.Name)
	}
	names := map[string]bool{}
	for _, c := range Configs {
		require.False(t, names[c.Name], "duplicate configuration %q", c.Name)
		require.Regexp(t, `^[a-z0-9-]+$`, c.Name)
		if !c.IsBaseline() {
			require.True(t, names[c.Baseline], "%s: baseline %q must come before it", c.Name, c.Baseline)
		}
		names[c.Name] = true
		// The generated file is a valid profile once the suite's
		// connection settings are added, as the subject file does.
		base := "profiles:\n  subject:\n    addr: 127.0.0.1:6379\n"
		if c.Cluster {
			base = "profiles:\n  subject:\n    mode: cluster\n    addrs: [127.0.0.1:7000]\n"
		}
		res, err := profiles.Load(profiles.Options{Sources: []profiles.Source{
			profiles.Bytes("base.yaml", []byte(base)), profiles.Bytes(c.Name+".yaml", ConfigFile(c)),
		}})
		require.NoError(t, err, c.Name)
		require.Contains(t, res.Config.Profiles, "subject", c.Name)
	}
}
