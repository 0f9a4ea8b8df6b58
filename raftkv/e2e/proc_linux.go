package e2e

import "syscall"

// sysProcAttr puts a node in a process group of its own, so that a kill
// reaches whatever it started, and has it killed when the thread that
// started it dies (the caller crashed or was killed).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
