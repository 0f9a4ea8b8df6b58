//go:build unix && !linux

package e2e

import "syscall"

// sysProcAttr puts a node in a process group of its own, so that a kill
// reaches whatever it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
