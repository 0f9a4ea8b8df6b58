//go:build !linux

package main

import "syscall"

// childAttr: without Pdeathsig, children outlive a kvbench that is killed
// with SIGKILL; every other exit path kills them.
func childAttr() *syscall.SysProcAttr { return nil }
