package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GoRedisModule is the module whose specs the harness runs; its version is
// the one this module's go.mod requires.
const GoRedisModule = "github.com/redis/go-redis/v9"

// SpecFiles are the spec files whose specs every standalone run executes
// (Ginkgo's -focus-file); ClusterSpecFiles those of the cluster runs, which
// cannot run the files whose specs hold a *redis.Client.
var (
	SpecFiles = []string{"commands_test.go", "iterator_test.go", "bitmap_commands_test.go",
		"pipeline_test.go", "tx_test.go", "tx_unwatch_test.go", "pubsub_test.go", "race_test.go", "redis_test.go"}
	ClusterSpecFiles = []string{"commands_test.go", "iterator_test.go", "bitmap_commands_test.go"}
)

// supportFiles are further test files of the suite that the spec files need
// to compile (main_test.go's BeforeSuite and helpers, the cluster scenario
// type, the RE endpoint loader, the package-level ctx in example_test.go,
// the export_test.go internals, the command recorder of the Client specs). Their own specs are not focused.
var supportFiles = []string{"main_test.go", "osscluster_test.go", "re_endpoints_test.go", "example_test.go", "export_test.go", "command_recorder_test.go"}

// patch is a textual change to one file of the suite; it must match exactly
// Count times, so a go-redis upgrade that moves the code fails the harness
// instead of silently running something else.
type patch struct {
	File, Old, New string
	Count          int
	Why            string
}

var patches = []patch{
	{
		File:  "main_test.go",
		Old:   `RunSpecs(t, "` + SuiteDescription + `")`,
		New:   `RunSpecs(t, "` + SuiteDescription + `")`,
		Count: 1,
		Why:   "exclusions are matched against the suite's description (SuiteDescription) and the spec's text",
	},
	{
		File:  "main_test.go",
		Old:   "func newUniversalSubject(c *redis.Client)",
		New:   "func goRedisUniversalSubject(c *redis.Client)",
		Count: 1,
		Why:   "subject_factory_test.go defines newUniversalSubject and falls back to the suite's own",
	},
	{
		File:  "main_test.go",
		Old:   "\tif !RECluster {\n\t\tringShard1, err = connectTo(ringShard1Port)",
		New:   "\tif !RECluster && !rfStandaloneOnly {\n\t\tringShard1, err = connectTo(ringShard1Port)",
		Count: 1,
		Why:   "the ring, sentinel and six-node cluster of the suite's docker setup are not started; their specs are not run",
	},
	{
		File:  "pipeline_test.go",
		Old:   "redis.NewClient(redisOptions())",
		New:   "newSubjectClient(redisOptions())",
		Count: 2,
		Why:   "the pipeline specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
	{
		File:  "tx_unwatch_test.go",
		Old:   "client = redis.NewClient(redisOptions())",
		New:   "client = newSubjectClient(redisOptions())",
		Count: 1,
		Why:   "the UNWATCH specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
	{
		File:  "tx_unwatch_test.go",
		Old:   "c := redis.NewClient(opt)",
		New:   "c := newSubjectClient(opt)",
		Count: 1,
		Why:   "the pool-safety spec's one-connection client is the factory's too",
	},
	{
		File:  "pubsub_test.go",
		Old:   "client = redis.NewClient(opt)",
		New:   "client = newSubjectClient(opt)",
		Count: 1,
		Why:   "the PubSub specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
	{
		File:  "race_test.go",
		Old:   "client = redis.NewClient(redisOptions())",
		New:   "client = newSubjectClient(redisOptions())",
		Count: 2,
		Why:   "the race specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
	{
		File:  "redis_test.go",
		Old:   "client = redis.NewClient(redisOptions())",
		New:   "client = newSubjectClient(redisOptions())",
		Count: 4,
		Why:   "the Client, Conn and Hook specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
	{
		File:  "tx_test.go",
		Old:   "redis.NewClient(redisOptions())",
		New:   "newSubjectClient(redisOptions())",
		Count: 1,
		Why:   "the tx specs hold a *redis.Client: they run on the factory's client (Handle.Current)",
	},
}

//go:embed subject.go.txt
var subjectSource []byte

// goModule is what `go mod download -json` and `go mod edit -json` print.
type goModule struct {
	Path    string
	Version string
	Dir     string
	Error   string
}

// goCmd runs the go tool in dir and returns its standard output; the error
// carries standard error.
func goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// GoRedisSource returns the directory of go-redis in the module cache, at the
// version repoRoot's go.mod requires, downloading it if needed.
func GoRedisSource(ctx context.Context, repoRoot string) (goModule, error) {
	out, err := goCmd(ctx, repoRoot, nil, "mod", "download", "-json", GoRedisModule)
	if err != nil {
		return goModule{}, err
	}
	var m goModule
	if err := json.Unmarshal(out, &m); err != nil {
		return goModule{}, fmt.Errorf("go mod download output: %w", err)
	}
	if m.Error != "" || m.Dir == "" {
		return goModule{}, fmt.Errorf("go mod download %s: %q (dir %q)", GoRedisModule, m.Error, m.Dir)
	}
	return m, nil
}

// ModuleDir returns where the harness prepares the suite: a directory under
// the user's cache directory, the same for every run of one working tree and
// go-redis version, so the go build cache (keyed by file contents and
// directory) compiles only what changed since the last run.
func ModuleDir(repoRoot, version string) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(repoRoot))
	return filepath.Join(cache, "redisfactory-conformance", fmt.Sprintf("go-redis@%s-%x", version, sum[:6])), nil
}

// PrepareModule writes into dst (emptied first) a copy of the go-redis module at src whose
// test package holds only SpecFiles and supportFiles, patched, plus
// subject_factory_test.go, and whose go.mod also requires this module
// (repoRoot) through a replace directive.
func PrepareModule(ctx context.Context, dst, src, repoRoot string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, f := range append(append([]string{}, SpecFiles...), supportFiles...) {
		keep[f] = true
	}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		// Only the root package's tests are compiled; of those, only the
		// chosen files are kept.
		if filepath.Dir(rel) == "." && strings.HasSuffix(rel, "_test.go") && !keep[rel] {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	for _, p := range patches {
		if err := applyPatch(dst, p); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "subject_factory_test.go"), subjectSource, 0o644); err != nil {
		return err
	}
	return writeGoMod(ctx, dst, repoRoot)
}

func applyPatch(dir string, p patch) error {
	path := filepath.Join(dir, p.File)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("patch %s: %w", p.File, err)
	}
	if n := bytes.Count(data, []byte(p.Old)); n != p.Count {
		return fmt.Errorf("patch %s (%s): %q found %d times, want %d: the suite changed, update the patch",
			p.File, p.Why, p.Old, n, p.Count)
	}
	return os.WriteFile(path, bytes.ReplaceAll(data, []byte(p.Old), []byte(p.New)), 0o644)
}

// writeGoMod makes the copy require this module, replaced by the working
// tree, with this module's go.sum entries beside go-redis's own, so the
// build uses exactly the versions go.sum pins (no network when they are in
// the module cache, as after `go mod download`).
func writeGoMod(ctx context.Context, dir, repoRoot string) error {
	out, err := goCmd(ctx, repoRoot, nil, "mod", "edit", "-json")
	if err != nil {
		return err
	}
	var ours struct {
		Module  goModule
		Require []goModule
	}
	if err := json.Unmarshal(out, &ours); err != nil {
		return fmt.Errorf("go mod edit -json: %w", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		return err
	}
	args := []string{"mod", "edit",
		"-require=" + ours.Module.Path + "@v0.0.0-00010101000000-000000000000",
		"-replace=" + ours.Module.Path + "=" + root,
	}
	if _, err := goCmd(ctx, dir, nil, args...); err != nil {
		return err
	}
	ourSum, err := os.ReadFile(filepath.Join(repoRoot, "go.sum"))
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "go.sum"), os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(ourSum)
	return errors.Join(werr, f.Close())
}

// buildEnv is the environment of every go command run in the copy: no
// workspace, and go.mod may gain the indirect requirements this module
// brings (taken from its go.mod, not from the network).
var buildEnv = []string{"GOWORK=off", "GOFLAGS=-mod=mod"}

// Build compiles the spec suite in dir into the test binary out.
func Build(ctx context.Context, dir, out string, race bool) error {
	args := []string{"test", "-c", "-o", out}
	if race {
		args = append(args, "-race")
	}
	_, err := goCmd(ctx, dir, buildEnv, append(args, ".")...)
	return err
}
