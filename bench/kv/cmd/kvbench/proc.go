package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// A proc is a server process started by kvbench, its output going to a log
// file. Every proc is in the registry from start until it has been waited
// for, so that killAll reaches it whatever path kvbench leaves by.
type proc struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited and been waited for
	waitErr error         // valid once done is closed
}

var registry struct {
	sync.Mutex
	procs map[*proc]struct{}
}

// startProc starts bin with args, stdout and stderr appended to logPath.
func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr()
	p := &proc{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}

	registry.Lock()
	defer registry.Unlock()
	if registry.procs == nil {
		registry.procs = make(map[*proc]struct{})
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	registry.procs[p] = struct{}{}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		registry.Lock()
		delete(registry.procs, p)
		registry.Unlock()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// kill kills the process and waits until it has ended. The data of a
// benchmark cluster is thrown away, so nothing is gained by a graceful stop
// (an etcd member told to stop while its peers stop too waits seconds for
// them).
func (p *proc) kill() {
	if ok, _ := p.exited(); ok {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the last n lines of the process's log, indented, for an
// error message.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "last lines of %s:\n", p.logPath)
	for _, l := range lines {
		buf.WriteString("    " + l + "\n")
	}
	return buf.String()
}

// killAll kills every process kvbench started that has not been waited for
// yet, and waits (briefly) for them to go.
func killAll() {
	registry.Lock()
	var ps []*proc
	for p := range registry.procs {
		ps = append(ps, p)
		_ = p.cmd.Process.Kill()
	}
	registry.Unlock()
	for _, p := range ps {
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// killProcs kills ps and waits for them.
func killProcs(ps []*proc) {
	for _, p := range ps {
		p.kill()
	}
}

// firstExited returns an error naming the first of ps that has ended, with
// the end of its log, or nil when all are running.
func firstExited(ps []*proc) error {
	for _, p := range ps {
		if ok, err := p.exited(); ok {
			return fmt.Errorf("%s exited (%v)\n%s", p.name, err, p.logTail(15))
		}
	}
	return nil
}
