package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/redisfactory/redisfactory/internal/redistest"
)

// The adversarial corpus: testdata/hostile/<case>/ holds a case's files and
// its expectations in case.txt, one "key: value" per line (# starts a
// comment; keys may repeat):
//
//	files: redis.yaml          the paths given to the commands (default redis.yaml)
//	env: NAME=VALUE            an environment variable; commands get --env-prefix APP_REDIS
//	setup: fifo NAME           make a named pipe (what git cannot hold)
//	setup: symlink NAME TARGET make a symbolic link
//	setup: big NAME BYTES      write a valid YAML file of BYTES bytes (comments)
//	setup: chmod MODE NAME     change a file's mode (octal)
//	setup: manyfiles DIR N     write N one-profile files into DIR
//	setup: manyprofiles NAME N write a file of N profiles
//	setup: unknownkeys NAME N  write profile a with N unknown keys
//	setup: flowlist NAME N     write a file whose x-list holds N items
//	profile: NAME              the profile explain shows (default a)
//	exit: N                    exit code of validate, print, explain and check (default 0)
//	exit.CMD: N                exit code of one command (validate, print, explain, check)
//	out: TEXT                  text every command prints (stdout or stderr)
//	out.CMD: TEXT              text one command prints (out.watch: the watch
//	                           prints instead of the out: texts)
//	never: TEXT                text no command prints, the running watch included
//	                           ("a Go string" for control characters)
//	watch: rejected|applied|failed|skip WHY
//	                           what a running watch does when the case's files
//	                           land in its directory (default: rejected when exit
//	                           is not 0, else applied); rejected also expects each
//	                           out: text in the watch's output
//
// Files may say ${REDIS_ADDR}: the address of a real redis-server the test
// starts, so that check and watch connect for real.
//
// Every command runs as a subprocess of a binary built once; its time and
// peak RSS, both from rusage, are bounded, and no output may show a panic.
// The time bound the issue sets (2 s) is on CPU time (user + system): CI
// machines are shared, and wall time there measures the neighbours too.
// Wall time has a bound of its own, caseMaxWall, 2.5 times the CPU bound:
// what it catches is a command that waits instead of working (on a FIFO,
// a lock, a slow peer), which uses no CPU. A command still running after
// caseKill (a hang) is killed, which fails the case.

const (
	caseMaxTime = 2 * time.Second
	caseMaxRSS  = 256 << 20
	// caseMaxWall is the wall-clock bound of each command and of each
	// watch report. The slowest take about 2 s on the shared 2-core CI
	// machine under a load of 6-8: a watch reporting a failed TLS
	// handshake (the case's 1 s connect timeout, then the 1 s pause that
	// ends the issue lines), and check with its 1 s timeout. 5 s leaves
	// room for that load to double; a command that waits on something
	// takes far longer (the TLS cases took 11 s with the default 10 s
	// connect timeout).
	caseMaxWall = 5 * time.Second
	caseKill    = 30 * time.Second // a hang, on however busy a machine
	envPrefix   = "APP_REDIS"
)

var corpusCommands = []string{"validate", "print", "explain", "check"}

type hostileCase struct {
	name    string
	dir     string
	files   []string
	env     []string
	setup   [][]string
	profile string
	exit    map[string]int
	out     map[string][]string // command ("" = all) -> texts
	never   []string
	watch   string
}

func parseCase(t *testing.T, dir string) hostileCase {
	c := hostileCase{name: filepath.Base(dir), dir: dir, profile: "a", exit: map[string]int{}, out: map[string][]string{}}
	f, err := os.Open(filepath.Join(dir, "case.txt"))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		require.True(t, ok, "%s/case.txt:%d: want key: value", c.name, n)
		val = strings.TrimSpace(val)
		cmd := ""
		if k, sub, ok := strings.Cut(key, "."); ok {
			key, cmd = k, sub
		}
		switch key {
		case "files":
			c.files = strings.Fields(val)
		case "env":
			c.env = append(c.env, val)
		case "setup":
			c.setup = append(c.setup, strings.Fields(val))
		case "profile":
			c.profile = val
		case "exit":
			code, err := strconv.Atoi(val)
			require.NoError(t, err, "%s/case.txt:%d", c.name, n)
			c.exit[cmd] = code
		case "out":
			c.out[cmd] = append(c.out[cmd], val)
		case "never":
			if strings.HasPrefix(val, `"`) { // a Go string, for control characters
				u, err := strconv.Unquote(val)
				require.NoError(t, err, "%s/case.txt:%d", c.name, n)
				val = u
			}
			c.never = append(c.never, val)
		case "watch":
			c.watch = val
		default:
			t.Fatalf("%s/case.txt:%d: unknown key %q", c.name, n, key)
		}
	}
	require.NoError(t, sc.Err())
	if len(c.files) == 0 {
		c.files = []string{"redis.yaml"}
	}
	if c.watch == "" {
		c.watch = "applied"
		if c.exit[""] != 0 {
			c.watch = "rejected"
		}
	}
	return c
}

func (c hostileCase) exitOf(cmd string) int {
	if code, ok := c.exit[cmd]; ok {
		return code
	}
	return c.exit[""]
}

// materialize copies the case into dir, with ${REDIS_ADDR} replaced, and
// runs its setup steps.
func (c hostileCase) materialize(t *testing.T, dir, redisAddr string) {
	entries, err := os.ReadDir(c.dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Name() == "case.txt" {
			continue
		}
		copyTree(t, filepath.Join(c.dir, e.Name()), filepath.Join(dir, e.Name()), redisAddr)
	}
	for _, s := range c.setup {
		switch {
		case s[0] == "fifo" && len(s) == 2:
			require.NoError(t, syscall.Mkfifo(filepath.Join(dir, s[1]), 0o600))
		case s[0] == "symlink" && len(s) == 3:
			require.NoError(t, os.Symlink(s[2], filepath.Join(dir, s[1])))
		case s[0] == "big" && len(s) == 3:
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, s[1])), 0o700))
			n, err := strconv.Atoi(s[2])
			require.NoError(t, err)
			line := "# " + strings.Repeat("x", 61) + "\n"
			body := "profiles:\n  a:\n    addr: " + redisAddr + "\n" + strings.Repeat(line, n/len(line)+1)
			require.NoError(t, os.WriteFile(filepath.Join(dir, s[1]), []byte(body[:max(n, 40)]), 0o600))
		case s[0] == "manyfiles" && len(s) == 3: // manyfiles DIR N: N one-profile files
			// The profiles point at a closed port: check then fails each at
			// once (connection refused), whatever the machine's load.
			n, err := strconv.Atoi(s[2])
			require.NoError(t, err)
			d := filepath.Join(dir, s[1])
			require.NoError(t, os.MkdirAll(d, 0o700))
			for i := range n {
				body := fmt.Sprintf("profiles:\n  p%05d:\n    addr: 127.0.0.1:1\n", i)
				require.NoError(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d.yaml", i)), []byte(body), 0o600))
			}
		case s[0] == "manyprofiles" && len(s) == 3: // manyprofiles NAME N
			n, err := strconv.Atoi(s[2])
			require.NoError(t, err)
			var b strings.Builder
			fmt.Fprintf(&b, "defaults:\n  addr: %s\nprofiles:\n", redisAddr)
			for i := range n {
				fmt.Fprintf(&b, "  p%05d: {}\n", i)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, s[1]), []byte(b.String()), 0o600))
		case s[0] == "unknownkeys" && len(s) == 3: // unknownkeys NAME N: profile a with N unknown keys
			n, err := strconv.Atoi(s[2])
			require.NoError(t, err)
			var b strings.Builder
			fmt.Fprintf(&b, "profiles:\n  a:\n    addr: %s\n", redisAddr)
			for i := range n {
				fmt.Fprintf(&b, "    unknown_%05d: {x: 1}\n", i)
			}
			require.NoError(t, os.WriteFile(filepath.Join(dir, s[1]), []byte(b.String()), 0o600))
		case s[0] == "flowlist" && len(s) == 3: // flowlist NAME N: x-list: [1,1,…]
			n, err := strconv.Atoi(s[2])
			require.NoError(t, err)
			require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, s[1])), 0o700))
			body := "x-list: [" + strings.Repeat("1,", n-1) + "1]\n"
			require.NoError(t, os.WriteFile(filepath.Join(dir, s[1]), []byte(body), 0o600))
		case s[0] == "chmod" && len(s) == 3:
			mode, err := strconv.ParseUint(s[1], 8, 32)
			require.NoError(t, err)
			require.NoError(t, os.Chmod(filepath.Join(dir, s[2]), os.FileMode(mode)))
		default:
			t.Fatalf("%s: unknown setup %q", c.name, s)
		}
	}
}

func copyTree(t *testing.T, from, to, redisAddr string) {
	st, err := os.Lstat(from)
	require.NoError(t, err)
	if st.IsDir() {
		require.NoError(t, os.MkdirAll(to, 0o700))
		entries, err := os.ReadDir(from)
		require.NoError(t, err)
		for _, e := range entries {
			copyTree(t, filepath.Join(from, e.Name()), filepath.Join(to, e.Name()), redisAddr)
		}
		return
	}
	data, err := os.ReadFile(from)
	require.NoError(t, err)
	data = bytes.ReplaceAll(data, []byte("${REDIS_ADDR}"), []byte(redisAddr))
	require.NoError(t, os.WriteFile(to, data, 0o600))
}

// run is one finished subprocess.
type ran struct {
	code     int
	out      string // stdout and stderr
	wall     time.Duration
	cpu      time.Duration // user + system time, from rusage
	maxRSSKB int64
}

// runBinary runs bin through the spawn helper (testdata/spawn), which
// reports the command's rusage. Run from this process, its peak RSS would
// include this process's: Linux starts a subprocess of os/exec sharing
// its parent's memory until it execs (vfork), and counts the parent's
// peak RSS as the child's. This test process, with the package's other
// tests behind it, peaked above the bound by itself (268 MiB under -race
// once); the helper peaks at a few MiB.
func runBinary(t *testing.T, bin, dir string, env []string, args ...string) ran {
	spawn, err := buildSpawn()
	require.NoError(t, err)
	report := filepath.Join(t.TempDir(), "rusage")
	ctx, cancel := context.WithTimeout(context.Background(), caseKill+10*time.Second)
	defer cancel()
	argv := append([]string{"-report", report, "-kill", caseKill.String(), "--", bin}, args...)
	cmd := exec.CommandContext(ctx, spawn, argv...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: the spawn helper failed: %v\n%s", bin, args, err, out.String())
	}
	data, err := os.ReadFile(report)
	require.NoError(t, err, "the spawn helper's report; output:\n%s", out.String())
	var rep struct {
		Code     int
		Wall     time.Duration
		CPU      time.Duration
		MaxRSSKB int64
		Killed   bool
	}
	require.NoError(t, json.Unmarshal(data, &rep))
	r := ran{code: rep.Code, out: out.String(), wall: rep.Wall, cpu: rep.CPU, maxRSSKB: rep.MaxRSSKB}
	if rep.Killed {
		t.Fatalf("%s %v: killed after %s", bin, args, r.wall)
	}
	return r
}

// buildSpawn builds the spawn helper once per test binary.
var buildSpawn = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "redisfactory-spawn-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "spawn")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/spawn").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// buildCLI builds the command once per test binary.
var buildCLI = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "redisfactory-cli-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "redisfactory")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func loadCorpus(t *testing.T) []hostileCase {
	dirs, err := filepath.Glob(filepath.Join("testdata", "hostile", "*"))
	require.NoError(t, err)
	var cases []hostileCase
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			cases = append(cases, parseCase(t, d))
		}
	}
	return cases
}

func assertNoPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, sign := range []string{"panic:", "goroutine ", "runtime error", "fatal error:"} {
		if strings.Contains(out, sign) {
			t.Errorf("%s: output shows a crash (%q):\n%s", what, sign, out)
		}
	}
}

func assertBounds(t *testing.T, what string, r ran) {
	t.Helper()
	if r.cpu >= caseMaxTime {
		t.Errorf("%s used %s of CPU (bound %s; %s wall)", what, r.cpu, caseMaxTime, r.wall)
	}
	if r.wall >= caseMaxWall {
		t.Errorf("%s took %s of wall time (bound %s; %s CPU)", what, r.wall, caseMaxWall, r.cpu)
	}
	if r.maxRSSKB*1024 >= caseMaxRSS {
		t.Errorf("%s peaked at %d MiB RSS (bound %d MiB)", what, r.maxRSSKB>>10, caseMaxRSS>>20)
	}
}

func TestHostileCorpus(t *testing.T) {
	bin, err := buildCLI()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(bin)) })
	spawn, err := buildSpawn()
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(filepath.Dir(spawn)) })
	srv := redistest.Start(t, redistest.Options{})
	cases := loadCorpus(t)
	require.GreaterOrEqual(t, len(cases), 60, "the corpus holds at least 60 cases")

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			c.materialize(t, dir, srv.Addr())
			var env []string
			var flags []string
			if len(c.env) > 0 {
				for _, kv := range c.env {
					env = append(env, strings.ReplaceAll(kv, "${REDIS_ADDR}", srv.Addr()))
				}
				flags = []string{"--env-prefix", envPrefix}
			}
			for _, cmd := range corpusCommands {
				args := append([]string{cmd}, flags...)
				if cmd == "check" {
					args = append(args, "--timeout", "1s")
				}
				args = append(args, c.files...)
				if cmd == "explain" {
					args = append(args, c.profile)
				}
				r := runBinary(t, bin, dir, env, args...)
				what := strings.Join(args, " ")
				require.Equal(t, c.exitOf(cmd), r.code, "%s: exit code; output:\n%s", what, r.out)
				for _, want := range append(append([]string(nil), c.out[""]...), c.out[cmd]...) {
					require.Contains(t, r.out, want, "%s", what)
				}
				for _, bad := range c.never {
					require.NotContains(t, r.out, bad, "%s", what)
				}
				assertNoPanic(t, what, r.out)
				assertBounds(t, what, r)
			}
		})
	}

	t.Run("watch", func(t *testing.T) { hostileWatch(t, bin, srv.Addr(), cases) })
}

// hostileWatch runs one watch over a directory holding a valid base file
// and drops each case's files into it in turn: an invalid case must be
// rejected with its error text, a valid one applied, the watch must stay
// alive and responsive (it reports each change within the bound) and its
// peak RSS must stay under the bound; after each case the directory goes
// back to the base file, which must be applied again.
func hostileWatch(t *testing.T, bin, redisAddr string, cases []hostileCase) {
	dir := t.TempDir()
	wdir := filepath.Join(dir, "watched.d")
	require.NoError(t, os.Mkdir(wdir, 0o700))
	base := fmt.Sprintf("profiles:\n  zz_base:\n    addr: %s\n", redisAddr)
	require.NoError(t, os.WriteFile(filepath.Join(wdir, "0base.yaml"), []byte(base), 0o600))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "watch", "--debounce", "20ms", "--probe", "0", "--stats", "0", "--sighup=false", wdir)
	cmd.Dir = dir
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	require.NoError(t, cmd.Start())
	lines := make(chan string, 1024)
	var all redistest.SyncBuffer
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			_, _ = all.Write([]byte(sc.Text() + "\n"))
			lines <- sc.Text()
		}
		close(lines)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = pw.Close()
	}
	defer stop()

	// await collects lines until one contains want; a watch that says
	// nothing for caseKill is hung. (The bounds per case are on the CPU the
	// watch spends, measured from /proc, and on the wall time from the
	// files' arrival to the watch's report.)
	await := func(t *testing.T, what string, want ...string) string {
		t.Helper()
		var got strings.Builder
		deadline := time.After(caseKill)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("%s: watch exited:\n%s", what, all.String())
				}
				got.WriteString(l + "\n")
				for _, w := range want {
					if strings.Contains(l, w) {
						// Take the indented issue lines that follow.
						for {
							select {
							case l, ok := <-lines:
								if !ok {
									return got.String()
								}
								got.WriteString(l + "\n")
								if !strings.HasPrefix(l, "    ") {
									return got.String()
								}
							// A pause this long ends the issue lines; a
							// shorter one can fall inside a 20,000-line
							// rejection on a loaded machine (seen in CI).
							case <-time.After(time.Second):
								return got.String()
							}
						}
					}
				}
			case <-deadline:
				t.Fatalf("%s: no %q from watch within %s; output:\n%s", what, want, caseKill, got.String())
			}
		}
	}
	await(t, "start", "watching ")

	for _, c := range cases {
		mode, why, _ := strings.Cut(c.watch, " ")
		if mode == "skip" {
			t.Logf("%s: not run under watch: %s", c.name, why)
			continue
		}
		if len(c.env) > 0 {
			t.Fatalf("%s: a case with env: must say watch: skip (the watch's environment is fixed)", c.name)
		}
		t.Run(c.name, func(t *testing.T) {
			// The case is laid out in the watch's working directory, so
			// that the relative paths its files hold (password_file: pw)
			// resolve as they do for the other commands; its configuration
			// files are then renamed into the watched directory at once,
			// as editors and ConfigMap updates do.
			c.materialize(t, dir, redisAddr)
			defer func() {
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if e.Name() != "watched.d" {
						_ = os.RemoveAll(filepath.Join(dir, e.Name()))
					}
				}
			}()
			var moved []string
			for _, f := range c.files {
				src := filepath.Join(dir, f)
				st, err := os.Stat(src)
				require.NoError(t, err)
				if st.IsDir() {
					entries, err := os.ReadDir(src)
					require.NoError(t, err)
					for _, e := range entries {
						dst := filepath.Join(wdir, "case-"+e.Name())
						require.NoError(t, os.Rename(filepath.Join(src, e.Name()), dst))
						moved = append(moved, dst)
					}
					continue
				}
				dst := filepath.Join(wdir, "case-"+filepath.Base(f))
				require.NoError(t, os.Rename(src, dst))
				moved = append(moved, dst)
			}
			defer func() {
				for _, m := range moved {
					_ = os.RemoveAll(m)
				}
				if t.Failed() {
					// Let the watch settle on the base file again, so
					// that one failed case does not spill into the next.
					drain(lines, 3*time.Second, "reload.applied", "nothing to apply")
				}
			}()
			cpu0 := procCPU(t, cmd.Process.Pid)
			arrived := time.Now()
			var got string
			switch mode {
			case "rejected":
				got = await(t, "rejected", "reload.rejected")
				wants := c.out["watch"]
				if len(wants) == 0 {
					wants = c.out[""]
				}
				for _, want := range wants {
					require.Contains(t, got, want)
				}
			case "applied":
				got = await(t, "applied", "reload.applied")
			case "failed": // valid, but a new client cannot connect
				got = await(t, "failed", "reload.failed")
			default:
				t.Fatalf("unknown watch mode %q", mode)
			}
			took := time.Since(arrived)
			for _, bad := range c.never {
				require.NotContains(t, got, bad)
			}
			assertNoPanic(t, "watch", got)
			require.Less(t, took, caseMaxWall, "wall time from the files' arrival to the watch's report of %s", c.name)

			// Back to the base file alone: applied again (the watch is
			// not stuck).
			for _, m := range moved {
				require.NoError(t, os.RemoveAll(m))
			}
			if mode != "failed" {
				// (After a failed reload the base is still in use, so its
				// return is no change and reports nothing.)
				got = await(t, "restore", "reload.applied", "nothing to apply")
				assertNoPanic(t, "watch", got)
			}
			cpu := procCPU(t, cmd.Process.Pid) - cpu0
			require.Less(t, cpu, caseMaxTime, "CPU the watch spent on %s", c.name)
			rss := vmHWM(t, cmd.Process.Pid)
			require.Less(t, rss, int64(caseMaxRSS), "watch's peak RSS after %s", c.name)
		})
	}
	stop()
	assertNoPanic(t, "watch", all.String())
	require.Contains(t, all.String(), "stopped:", "watch stops on SIGTERM")
}

// drain reads lines until one contains any of want, or for at most d.
func drain(lines <-chan string, d time.Duration, want ...string) {
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return
			}
			for _, w := range want {
				if strings.Contains(l, w) {
					return
				}
			}
		case <-deadline:
			return
		}
	}
}

// procCPU returns the user and system time a live process has used, from
// /proc/PID/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func procCPU(t *testing.T, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(t, err)
	// The command name (field 2) is in parentheses and may hold spaces.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	f := strings.Fields(rest) // f[0] is field 3 (state)
	utime, err := strconv.ParseInt(f[11], 10, 64)
	require.NoError(t, err)
	stime, err := strconv.ParseInt(f[12], 10, 64)
	require.NoError(t, err)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// vmHWM returns a live process's peak resident set size, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(t, err)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			require.NoError(t, err)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
