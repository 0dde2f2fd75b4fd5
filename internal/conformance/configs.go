package conformance

// Config is one run of the spec suite: a baseline (plain go-redis, Profile
// empty and Baseline empty) or a factory configuration compared with one.
type Config struct {
	// Name identifies the run in the table, in exclusions.yaml and in the
	// log; lower case, no spaces.
	Name string
	// Baseline names the baseline run this configuration is compared with;
	// empty for a baseline.
	Baseline string
	// Profile holds the profile keys under test as YAML, as a user writes
	// them under `profiles.<name>:`. The harness adds the connection
	// settings of the suite's own client options (address, timeouts, pool)
	// underneath, so only these keys differ from what the baseline runs.
	Profile string
	// Cluster runs against a three-master cluster instead of one server:
	// the command suites only, since the pipeline and tx specs hold a
	// *redis.Client.
	Cluster bool
}

// IsBaseline reports whether c runs plain go-redis.
func (c Config) IsBaseline() bool { return c.Baseline == "" }

// Configs is the table of runs. A baseline must come before the
// configurations compared with it. Adding a configuration is one line, as
// for the auto-pipelining profile key below.
var Configs = []Config{
	{Name: "go-redis"},
	{Name: "defaults", Baseline: "go-redis"},
	{Name: "resp3-cache", Baseline: "go-redis", Profile: "protocol: 3\ncache:\n  enabled: true\n"},
	// A 5ms interval PINGs nearly every connection before it is reused, so
	// the health check runs under the whole suite, not only after idle gaps.
	{Name: "health-retry-budget", Baseline: "go-redis", Profile: "health_check_interval: 5ms\nretry:\n  retries: 3\n  budget:\n    max_tokens: 10\n    token_ratio: 0.1\n"},
	// auto is also the built-in default; the run names it explicitly so the
	// table keeps showing SCH if the default ever changes.
	{Name: "sch-auto", Baseline: "go-redis", Profile: "sch:\n  mode: auto\n"},
	{Name: "pipeline-auto", Baseline: "go-redis", Profile: "pipeline:\n  auto: true\n"},
	{Name: "go-redis-cluster", Cluster: true},
	{Name: "cluster", Baseline: "go-redis-cluster", Cluster: true},
}

// RepeatSpec is a spec whose failure depends on timing: every run executes
// it Times more times, each in a process of its own, and counts it failed if
// any of those failed. Baselines repeat it too, so a spec flaky on plain
// go-redis stays a baseline failure, not a factory-only one.
type RepeatSpec struct {
	// File is the spec's file (it is repeated only in runs that include it).
	File string
	// Name is the spec's full text.
	Name string
	// Times is how many extra runs.
	Times int
}

// RepeatSpecs are the timing-dependent specs. "Tx should Watch" runs 100
// goroutines doing WATCH/GET/MULTI SET n+1/EXEC: a client that answers the
// GET from stale local state loses increments only when goroutines
// interleave badly, in about one run in four.
var RepeatSpecs = []RepeatSpec{
	{File: "tx_test.go", Name: "Tx should Watch", Times: 10},
}
