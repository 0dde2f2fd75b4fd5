package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redisfactory/redisfactory/cache"
	"github.com/redisfactory/redisfactory/factory"
	"github.com/redisfactory/redisfactory/internal/loadgen"
	"github.com/redisfactory/redisfactory/profiles"
	"github.com/redisfactory/redisfactory/runtime"
	"github.com/redisfactory/redisfactory/schema"
)

// loadSignals returns the context a load run stops on: SIGINT or SIGTERM.
// Tests replace it.
var loadSignals = func(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// loadSpec is what the flags of load ask for.
type loadSpec struct {
	profile     string
	duration    time.Duration
	concurrency int
	reads       int
	writes      int
	keys        int
	format      string
	watch       bool
	verify      bool
}

// loadJSON is the report of load --format json.
type loadJSON struct {
	Profile      string  `json:"profile"`
	Duration     string  `json:"duration"`
	Concurrency  int     `json:"concurrency"`
	Ratio        string  `json:"ratio"`
	Keys         int     `json:"keys"`
	OpsPerSecond float64 `json:"ops_per_second"`
	// Reloads is set with --watch.
	Reloads *reloadCounts `json:"reloads,omitempty"`
	// Cache is set when the profile has client-side caching on.
	Cache *cache.Stats `json:"cache,omitempty"`
	// Pipeline is set when the profile runs the factory's pipelining
	// engine (pipeline.auto on a standalone profile).
	Pipeline *pipelineReport `json:"pipeline,omitempty"`
	loadgen.Report
}

// pipelineReport is what load reports of the factory's pipelining engine
// (factory.PipelineStats): the sockets open at the end of the run, the
// batches and commands written during it, and their mean batch.
type pipelineReport struct {
	Sockets   int     `json:"sockets"`
	Writes    uint64  `json:"writes"`
	Commands  uint64  `json:"commands"`
	Direct    uint64  `json:"direct"` // of commands, those of the direct path
	MeanBatch float64 `json:"mean_batch"`
}

func newPipelineReport(s factory.PipelineStats) *pipelineReport {
	r := &pipelineReport{Sockets: s.Sockets, Writes: s.Writes, Commands: s.Commands, Direct: s.Direct}
	if s.Writes > 0 { // no batch written: no mean (0)
		r.MeanBatch = float64(s.Commands) / float64(s.Writes)
	}
	return r
}

// reloadCounts is what load --watch reports of the reloads during the run.
type reloadCounts struct {
	Applied  uint64 `json:"applied"`
	Rejected uint64 `json:"rejected"`
	Failed   uint64 `json:"failed"`
}

// runLoad drives a GET/SET workload through one profile's client, built
// exactly as the profile says (retries, timeouts, health checks), prints a
// progress line every second on stderr and a report at the end. Exit 0 when
// no operation failed, 1 when one did, 2 on a usage error.
func runLoad(c *cli, args []string) int {
	fs := c.flagSet("load")
	var lf loadFlags
	lf.register(fs)
	var s loadSpec
	fs.StringVar(&s.profile, "profile", "", "the `NAME` of the profile whose client runs the workload (required)")
	fs.DurationVar(&s.duration, "duration", 10*time.Second, "how long to run, `D`; Ctrl-C stops earlier")
	fs.IntVar(&s.concurrency, "concurrency", 8, "number of concurrent workers, `N`")
	ratio := fs.String("ratio", "80:20", "`READS:WRITES`, the weights of GETs and SETs")
	fs.IntVar(&s.keys, "keys", 1000, "size of the key space, `K` keys named "+loadgen.DefaultKeyPrefix+"0 … K-1")
	fs.StringVar(&s.format, "format", "text", "report `format`: text or json")
	fs.BoolVar(&s.verify, "verify", false, "give every worker its own keys and check each read against the value that worker last wrote; a stale read is a failure ("+loadgen.StaleClass+")")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics of the run at http://`HOST:PORT`/metrics (empty: off)")
	fs.BoolVar(&s.watch, "watch", false, "apply changes of the configuration files during the run, through the profile's handle, and count the reloads")
	paths, code, ok := parse(fs, args)
	if !ok {
		return code
	}
	switch {
	case !oneOf(s.format, "text", "json"):
		return c.usageError(fs, "--format must be text or json (got %q)", s.format)
	case s.profile == "":
		return c.usageError(fs, "missing --profile: name the profile to load")
	case s.duration <= 0:
		return c.usageError(fs, "--duration must be positive (got %s)", s.duration)
	case s.concurrency < 1:
		return c.usageError(fs, "--concurrency must be at least 1 (got %d)", s.concurrency)
	case s.keys < 1:
		return c.usageError(fs, "--keys must be at least 1 (got %d)", s.keys)
	case len(paths) == 0:
		return c.usageError(fs, "missing PATH: name at least one configuration file or directory")
	}
	var err error
	if s.reads, s.writes, err = parseRatio(*ratio); err != nil {
		return c.usageError(fs, "--ratio: %v", err)
	}

	res, issues := c.load(paths, lf)
	if len(issues) > 0 {
		if s.format == "json" {
			printIssues(c.stderr, c.stderr, issues)
		} else {
			printIssues(c.stdout, c.stderr, issues)
		}
		return exitFailed
	}
	p, found := res.Config.Profiles[s.profile]
	if !found {
		c.unknownProfile("load", s.profile, profileNames(res))
		return exitUsage
	}
	red := profileSecrets(p)

	rt := runtime.New(runtime.Options{DiscardLogs: true}) // the command prints what matters itself
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = rt.Close(ctx)
	}()
	ctx, stop := loadSignals(context.Background())
	defer stop()

	// The workload runs through the profile's handle, as an application's
	// calls do: pipeline.auto and the cache's hit path are taken there,
	// not by the bare go-redis client under it.
	var client redis.UniversalClient
	var f *factory.Factory
	if s.watch {
		// The whole configuration, kept current: reloads reach the handle
		// without a restart.
		cancelEvents := rt.Events().SubscribeFunc(func(e runtime.Event) {
			fmt.Fprintf(c.stderr, "%s\n", red.clean(e.String()))
		}, runtime.WithKinds(runtime.ReloadApplied, runtime.ReloadRejected, runtime.ReloadFailed))
		defer cancelEvents()
		if f, err = factory.New(res.Config, factory.Options{Runtime: rt}); err == nil {
			defer f.Close(context.Background()) //nolint:errcheck // reported by the runtime
			var w *profiles.Watcher
			lo := lf.options(c, paths)
			if w, err = f.Watch(ctx, profiles.WatchOptions{Load: lo, Current: res}); err == nil {
				defer w.Close() //nolint:errcheck // nothing to report
				client, err = f.Client(s.profile)
			}
		}
	} else {
		// Only this profile is built.
		one := &schema.Config{Profiles: map[string]*schema.Profile{s.profile: p}}
		if f, err = factory.New(one, factory.Options{Runtime: rt}); err == nil {
			defer f.Close(context.Background()) //nolint:errcheck // reported by the runtime
			client, err = f.Client(s.profile)
		}
	}
	if err != nil {
		fmt.Fprintf(c.stderr, "%s load: %s\n", programName, red.clean(err.Error()))
		return exitFailed
	}
	if *metricsAddr != "" {
		ms, err := serveMetrics(*metricsAddr, rt, f)
		if err != nil {
			fmt.Fprintf(c.stderr, "%s load: %v\n", programName, err)
			return exitFailed
		}
		defer ms.close() //nolint:errcheck // the report is what matters
		fmt.Fprintf(c.stderr, "load: metrics at http://%s/metrics\n", ms.addr)
	}
	go func() {
		// After the first Ctrl-C a second one kills the process.
		<-ctx.Done()
		stop()
	}()

	fmt.Fprintf(c.stderr, "load: profile %s, %s, reads:writes %d:%d, %d keys, for %s (Ctrl-C stops early)\n",
		s.profile, plural(s.concurrency, "worker", "workers"), s.reads, s.writes, s.keys, s.duration)
	var workload loadgen.Workload = loadgen.Mix{Keys: s.keys, Reads: s.reads, Writes: s.writes, Seed: uint64(time.Now().UnixNano())}
	if s.verify {
		workload = loadgen.Verify{Keys: max(1, s.keys/s.concurrency), Reads: s.reads, Writes: s.writes, Seed: uint64(time.Now().UnixNano())}
	}
	rep := loadgen.Run(ctx, client, loadgen.Options{
		Duration:    s.duration,
		Concurrency: s.concurrency,
		Workload:    workload,
		Events:      rt.Events(),
		Progress: func(p loadgen.Progress) {
			fmt.Fprintf(c.stderr, "%6s  %d ops  %.0f ops/s  %d failures  %d retries\n",
				p.Elapsed.Round(time.Second), p.Ops, p.Rate, p.Failures, p.Retries)
		},
	})
	for class, msg := range rep.Errors {
		rep.Errors[class] = red.clean(msg)
	}
	var reloads *reloadCounts
	if s.watch {
		st := f.ReloadStats()
		reloads = &reloadCounts{Applied: st.Applied, Rejected: st.Rejected, Failed: st.Failed}
	}
	var cacheStats *cache.Stats
	var pipeline *pipelineReport
	if built, err := f.Lookup(s.profile); err == nil {
		if cs, ok := built.CacheStats(); ok {
			cacheStats = &cs
		}
		if ps, ok := built.PipelineStats(); ok {
			pipeline = newPipelineReport(ps)
		}
	}

	if s.format == "json" {
		b, err := json.MarshalIndent(loadJSON{
			Profile: s.profile, Duration: s.duration.String(), Concurrency: s.concurrency,
			Ratio: fmt.Sprintf("%d:%d", s.reads, s.writes), Keys: s.keys,
			OpsPerSecond: rep.Rate(), Reloads: reloads, Cache: cacheStats, Pipeline: pipeline, Report: rep,
		}, "", "  ")
		if err != nil {
			fmt.Fprintf(c.stderr, "%s load: %v\n", programName, err)
			return exitFailed
		}
		fmt.Fprintf(c.stdout, "%s\n", b)
	} else {
		printLoadReport(c.stdout, s, rep, reloads, cacheStats, pipeline)
	}
	if rep.Failures > 0 {
		fmt.Fprintf(c.stderr, "load failed: %d of %s failed\n", rep.Failures, plural(int(rep.Ops), "operation", "operations"))
		return exitFailed
	}
	return exitOK
}

func printLoadReport(w io.Writer, s loadSpec, r loadgen.Report, reloads *reloadCounts, cs *cache.Stats, pl *pipelineReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	how := "duration elapsed"
	if r.Interrupted {
		how = "interrupted"
	}
	fmt.Fprintf(tw, "profile\t%s\n", s.profile)
	fmt.Fprintf(tw, "elapsed\t%s (%s)\n", roundDuration(r.Elapsed), how)
	fmt.Fprintf(tw, "operations\t%d (%.0f ops/s)\n", r.Ops, r.Rate())
	fmt.Fprintf(tw, "reads\t%d (hits %d, misses %d)\n", r.Reads, r.Hits, r.Misses)
	fmt.Fprintf(tw, "writes\t%d\n", r.Writes)
	fmt.Fprintf(tw, "failures\t%d\n", r.Failures)
	if reloads != nil {
		fmt.Fprintf(tw, "reloads\tapplied %d, rejected %d, failed %d\n", reloads.Applied, reloads.Rejected, reloads.Failed)
	}
	for _, class := range r.Classes() {
		fmt.Fprintf(tw, "  %s\t%d (first: %s)\n", class, r.FailuresByClass[class], r.Errors[class])
	}
	if r.Cut > 0 {
		fmt.Fprintf(tw, "cut short\t%d (in flight when interrupted; not counted)\n", r.Cut)
	}
	if cs != nil {
		fmt.Fprintf(tw, "cache\thits %d, misses %d (hit ratio %.2f), invalidations %d, evictions %d, flushes %d\n",
			cs.Hits, cs.Misses, cs.HitRatio(), cs.Invalidations, cs.Evictions, cs.Flushes)
	}
	if pl != nil {
		fmt.Fprintf(tw, "pipeline\tsockets %d, writes %d, commands %d (mean batch %.2f), direct %d\n", pl.Sockets, pl.Writes, pl.Commands, pl.MeanBatch, pl.Direct)
	}
	fmt.Fprintf(tw, "retries\tattempted %d, exhausted %d, throttled %d\n", r.Retries.Attempted, r.Retries.Exhausted, r.Retries.Throttled)
	l := r.Latency
	fmt.Fprintf(tw, "latency\tp50 %s, p90 %s, p99 %s, max %s (mean %s)\n",
		roundDuration(l.P50), roundDuration(l.P90), roundDuration(l.P99), roundDuration(l.Max), roundDuration(l.Mean))
	_ = tw.Flush()
}

// parseRatio parses READS:WRITES, two non-negative weights that are not
// both zero.
func parseRatio(s string) (reads, writes int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		reads, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			writes, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !ok || err != nil || reads < 0 || writes < 0 {
		return 0, 0, fmt.Errorf("want READS:WRITES, two non-negative integers such as 80:20 (got %q)", s)
	}
	if reads+writes == 0 {
		return 0, 0, fmt.Errorf("READS and WRITES must not both be 0")
	}
	return reads, writes, nil
}
