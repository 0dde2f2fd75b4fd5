//go:build unix && !linux

package redistest

import "syscall"

// sysProcAttr puts the server in its own process group so it can be killed
// together with its forked children.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
