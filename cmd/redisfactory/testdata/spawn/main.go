// Command spawn runs a command and writes its exit code, wall and CPU
// time and peak RSS (from rusage) as JSON to the -report file.
// TestHostileCorpus runs every command of the CLI through it: Linux
// starts a subprocess of os/exec sharing its parent's memory until it
// execs (vfork) and counts the parent's peak RSS as the child's, so a
// command run straight from the test process would report the test
// process's peak (268 MiB under -race once). This small process peaks at a
// few MiB.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Report is what spawn writes.
type Report struct {
	Code     int
	Wall     time.Duration
	CPU      time.Duration // user + system
	MaxRSSKB int64
	Killed   bool // still running after -kill
}

func main() {
	report := flag.String("report", "", "file to write the report to")
	kill := flag.Duration("kill", 30*time.Second, "kill the command after this long")
	flag.Parse()
	if *report == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: spawn -report FILE [-kill D] -- COMMAND [ARG...]")
		os.Exit(2)
	}
	// The command is killed when this process dies (Pdeathsig), which
	// Linux ties to the thread that started it: keep it for good.
	runtime.LockOSThread()
	ctx, cancel := context.WithTimeout(context.Background(), *kill)
	defer cancel()
	cmd := exec.CommandContext(ctx, flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	rep := Report{Wall: time.Since(start)}
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(2)
	}
	rep.Code = cmd.ProcessState.ExitCode()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rep.MaxRSSKB = ru.Maxrss // kilobytes on Linux
		rep.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	rep.Killed = err != nil && rep.Code < 0
	data, _ := json.Marshal(rep)
	if err := os.WriteFile(*report, data, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "spawn:", err)
		os.Exit(2)
	}
}
