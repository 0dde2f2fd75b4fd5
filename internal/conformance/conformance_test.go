package conformance

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// reproduceCommand is the command CONFORMANCE.md says reproduces it.
const reproduceCommand = "CONFORMANCE_OUT=$PWD/CONFORMANCE.md go test -count=1 -timeout 30m -run TestConformance ./internal/conformance/"

// TestConformance is the harness: it builds go-redis's suite once, runs it
// for every entry of Configs and fails on any factory-only failure.
//
// Environment: CONFORMANCE_OUT writes the results table there;
// CONFORMANCE_RACE=1 builds the suite with the race detector;
// CONFORMANCE_ONLY=a,b runs only these configurations (and their
// baselines).
func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the conformance harness takes minutes; run it without -short")
	}
	redistest.Require(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	repoRoot, err := filepath.Abs("../..")
	require.NoError(t, err)
	mod, err := GoRedisSource(ctx, repoRoot)
	require.NoError(t, err)
	redisFull, redisVersion, err := RedisVersion(ctx)
	require.NoError(t, err)
	exclusions, err := LoadExclusions("exclusions.yaml", Configs)
	require.NoError(t, err)

	dir, err := ModuleDir(repoRoot, mod.Version)
	require.NoError(t, err)
	// The runs' logs, reports and configuration files are kept (beside
	// the suite, replaced by the next run) for a look at a failure.
	work := dir + "-runs"
	require.NoError(t, os.RemoveAll(work))
	require.NoError(t, os.MkdirAll(work, 0o755))
	t.Logf("logs and reports in %s", work)
	require.NoError(t, PrepareModule(ctx, dir, mod.Dir, repoRoot))
	bin := filepath.Join(work, "specs.test")
	buildStart := time.Now()
	require.NoError(t, Build(ctx, dir, bin, os.Getenv("CONFORMANCE_RACE") == "1"))
	buildTime := time.Since(buildStart)
	t.Logf("built go-redis %s specs in %s", mod.Version, buildTime.Round(time.Millisecond))

	configs := selectConfigs(t, Configs, os.Getenv("CONFORMANCE_ONLY"))
	runs := make([]*Run, len(configs))
	var mu sync.Mutex
	// Each run gets its own servers, so runs are independent; subtests
	// run up to -test.parallel (GOMAXPROCS) at once.
	t.Run("runs", func(t *testing.T) {
		for i, c := range configs {
			t.Run(c.Name, func(t *testing.T) {
				t.Parallel()
				var target Target
				if c.Cluster {
					cl := redistest.StartCluster(t, 3)
					target.ClusterAddrs = cl.Addrs()
					target.Port = cl.Nodes()[0].Port()
				} else {
					srv := redistest.Start(t, redistest.Options{Args: []string{"--enable-module-command", "yes"}})
					target.Port = srv.Port()
				}
				runWork := filepath.Join(work, "run-"+c.Name)
				require.NoError(t, os.MkdirAll(runWork, 0o755))
				run, err := RunSpecs(ctx, bin, dir, runWork, c, target, SkipPattern(exclusions, c, Configs), redisVersion)
				require.NoError(t, err)
				require.NoError(t, CheckExcluded(exclusions, c, Configs, run.Specs))
				cnt := Count(run.Specs)
				t.Logf("%s: run %d pass %d fail %d skip %d in %s", c.Name, cnt.Run, cnt.Pass, cnt.Fail, cnt.Skip, run.Duration.Round(time.Second))
				mu.Lock()
				runs[i] = run
				mu.Unlock()
			})
		}
	})
	for i, r := range runs {
		if r == nil {
			t.Fatalf("run %s produced no report", configs[i].Name)
		}
	}

	sum := Summary{
		GoRedisVersion: mod.Version,
		RedisVersion:   redisFull,
		Runs:           runs,
		Exclusions:     exclusions,
		WallTime:       time.Since(start),
		BuildTime:      buildTime,
		Command:        reproduceCommand,
	}
	if out := os.Getenv("CONFORMANCE_OUT"); out != "" {
		require.NoError(t, os.WriteFile(out, []byte(sum.Markdown()), 0o644))
	}
	for _, r := range runs {
		if r.Config.IsBaseline() {
			for _, sp := range r.Specs {
				if sp.Outcome == Failed {
					t.Logf("baseline %s fails on its own: %s (%s): %s", r.Config.Name, sp.Name, sp.Location, sp.Message)
				}
			}
		}
	}
	for name, d := range sum.Diffs() {
		for _, sp := range d.FactoryOnly {
			t.Errorf("factory-only failure in %s: %s (%s): %s", name, sp.Name, sp.Location, sp.Message)
		}
		for _, sp := range d.Missing {
			t.Errorf("%s: %s (%s) ran on the baseline but is missing from the report", name, sp.Name, sp.Location)
		}
		// A spec that skips itself only with the factory (its own probe
		// decided the subject lacks something) would hide a difference as
		// well as a failure does. Excluded specs never land here: the
		// baseline skips them too.
		for _, sp := range d.SkippedOnly {
			t.Errorf("%s: %s (%s) passed on the baseline but skipped itself with the factory; fix it or exclude it in exclusions.yaml with a reason",
				name, sp.Name, sp.Location)
		}
	}
	t.Logf("harness wall time %s", time.Since(start).Round(time.Second))
}

// selectConfigs returns the configurations named in only (comma separated)
// plus their baselines, in table order; all of them when only is empty.
func selectConfigs(t *testing.T, all []Config, only string) []Config {
	if only == "" {
		return all
	}
	want := map[string]bool{}
	for _, n := range strings.Split(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	for _, c := range all {
		if want[c.Name] && c.Baseline != "" {
			want[c.Baseline] = true
		}
	}
	var out []Config
	for _, c := range all {
		if want[c.Name] {
			out = append(out, c)
			delete(want, c.Name)
		}
	}
	require.Empty(t, want, "CONFORMANCE_ONLY names unknown configurations")
	return out
}
