package redistest

import "syscall"

// sysProcAttr puts the server in its own process group (so signals aimed at
// the test's process group, e.g. Ctrl-C, do not hit it first and so it can be
// killed together with its forked children) and asks the kernel to SIGKILL
// it if the test binary dies without running its cleanups.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
