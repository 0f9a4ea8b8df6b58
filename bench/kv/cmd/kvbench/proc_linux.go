package main

import "syscall"

// childAttr puts a child in its own process group, so that a terminal's
// Ctrl-C reaches only kvbench, which then stops the child itself, and has
// the kernel kill the child if kvbench dies without doing so.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
