package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Target is where a run's servers listen.
type Target struct {
	// Port is the standalone server's port (in a cluster run: one master's,
	// used by the suite's own admin client).
	Port int
	// ClusterAddrs are the cluster's nodes (cluster runs only).
	ClusterAddrs []string
}

// Run is one execution of the spec binary.
type Run struct {
	Config   Config
	Specs    []Spec
	Duration time.Duration
	// Log is the binary's output file.
	Log string
}

// ConfigFile returns the YAML document defining the profile a
// configuration runs: its keys under profiles.subject.
func ConfigFile(c Config) []byte {
	if strings.TrimSpace(c.Profile) == "" {
		return []byte("profiles:\n  subject: {}\n")
	}
	var b bytes.Buffer
	b.WriteString("profiles:\n  subject:\n")
	for _, line := range strings.Split(strings.TrimRight(c.Profile, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.Bytes()
}

// RunSpecs runs the compiled suite bin (built from dir) for config against
// target, writing its files into work, and returns the parsed report.
// redisVersion ("7.0") lets the suite skip specs for newer servers.
func RunSpecs(ctx context.Context, bin, dir, work string, config Config, target Target, skip, redisVersion string) (*Run, error) {
	report := filepath.Join(work, config.Name+".json")
	logPath := filepath.Join(work, config.Name+".log")
	files := SpecFiles
	if config.Cluster {
		files = ClusterSpecFiles
	}
	baseArgs := func(report string, files ...string) []string {
		args := []string{
			"-test.run", "^TestGinkgoSuite$",
			"-test.count", "1",
			"-test.timeout", "15m",
			// Ginkgo's own deadline comes first, so a hanging spec is
			// reported as timed out (with the report written) instead of
			// the binary being killed; the progress report puts the
			// hanging spec's goroutines into the log.
			"-ginkgo.timeout", "10m",
			"-ginkgo.poll-progress-after", "60s",
			"-ginkgo.json-report", report,
			"-ginkgo.no-color",
		}
		for _, f := range files {
			// The slash anchors the name: commands_test.go must not
			// also match bitmap_commands_test.go.
			args = append(args, "-ginkgo.focus-file", "/"+regexp.QuoteMeta(f)+"$")
		}
		return args
	}
	args := baseArgs(report, files...)
	if skip != "" {
		args = append(args, "-ginkgo.skip", skip)
	}
	env := []string{
		fmt.Sprintf("REDISFACTORY_CONFORMANCE_PORT=%d", target.Port),
		"REDIS_VERSION=" + redisVersion,
	}
	if !config.IsBaseline() {
		path := filepath.Join(work, config.Name+".yaml")
		if err := os.WriteFile(path, ConfigFile(config), 0o644); err != nil {
			return nil, err
		}
		env = append(env, "REDISFACTORY_CONFORMANCE_CONFIG="+path)
	}
	if config.Cluster {
		env = append(env, "REDISFACTORY_CONFORMANCE_CLUSTER_ADDRS="+strings.Join(target.ClusterAddrs, ","))
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	start := time.Now()
	specs, err := runBinary(ctx, bin, dir, env, args, report, logFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (see %s)", config.Name, err, logPath)
	}
	for _, rs := range RepeatSpecs {
		if !slices.Contains(files, rs.File) {
			continue
		}
		i := slices.IndexFunc(specs, func(s Spec) bool { return s.Name == rs.Name })
		if i < 0 || specs[i].Outcome != Passed {
			continue
		}
		focus := "^" + regexp.QuoteMeta(SuiteDescription+" "+rs.Name) + "$"
		failed, first := 0, ""
		for n := range rs.Times {
			rep := filepath.Join(work, fmt.Sprintf("%s-repeat-%d.json", config.Name, n))
			got, err := runBinary(ctx, bin, dir, env, append(baseArgs(rep, rs.File), "-ginkgo.focus", focus), rep, logFile)
			if err != nil {
				return nil, fmt.Errorf("%s: repeating %q: %w (see %s)", config.Name, rs.Name, err, logPath)
			}
			for _, g := range got {
				if g.Key() == specs[i].Key() && g.Outcome == Failed {
					failed++
					if first == "" {
						first = g.Message
					}
				}
			}
		}
		if failed > 0 {
			specs[i].Outcome = Failed
			specs[i].Message = fmt.Sprintf("failed %d of %d repetitions: %s", failed, rs.Times, first)
		}
	}
	return &Run{Config: config, Specs: specs, Duration: time.Since(start), Log: logPath}, nil
}

// runBinary runs the spec binary once and parses the JSON report it writes.
func runBinary(ctx context.Context, bin, dir string, env, args []string, report string, log *os.File) ([]Spec, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	runErr := cmd.Run()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return nil, runErr
	}
	data, err := os.ReadFile(report)
	if err != nil {
		// Failing specs make the binary exit non-zero; only a missing
		// report means the run itself broke.
		return nil, fmt.Errorf("no report (%w); the binary said %v", err, runErr)
	}
	return ParseReport(data)
}

// RedisVersion returns the version of the redis-server on PATH, in full
// ("7.0.15") and as the suite's REDIS_VERSION wants it ("7.0").
func RedisVersion(ctx context.Context) (full, majorMinor string, err error) {
	out, err := exec.CommandContext(ctx, "redis-server", "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("redis-server --version: %w", err)
	}
	m := regexp.MustCompile(`v=(\d+)\.(\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("redis-server --version: no version in %q", out)
	}
	return fmt.Sprintf("%s.%s.%s", m[1], m[2], m[3]), fmt.Sprintf("%s.%s", m[1], m[2]), nil
}
