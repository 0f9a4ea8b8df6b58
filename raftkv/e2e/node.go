package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Node is one raftkv node of a Cluster. Its identity, addresses, data
// directory, log file and flags stay the same across restarts; the
// process changes. Its methods may be called from several goroutines.
type Node struct {
	ID         uint64
	ClientAddr string // -listen: host:port of the client API
	PeerAddr   string // -peer-listen: host:port for the other nodes
	DataDir    string // -data
	LogPath    string // the process's stdout and stderr, every run appended

	bin  string
	args []string

	mu         sync.Mutex
	proc       *process // the last process started; nil before the first
	starts     int
	unexpected []string // exits the harness did not ask for
}

// process is one run of a node.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been waited for
	err  error         // cmd.Wait's result; read only after done is closed
	// asked is set (under Node.mu) before the harness signals the process,
	// so that its exit is not reported as unexpected.
	asked bool
}

// Args returns the flags the node is started with.
func (n *Node) Args() []string { return append([]string(nil), n.args...) }

// Start starts the node's process, appending its output to LogPath after
// a line that says which start it is. It returns once the process is
// started, not once it serves (see WaitReady). It is an error to start a
// node that is running.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil && !n.proc.exited() {
		return fmt.Errorf("e2e: node %d is already running (pid %d)", n.ID, n.proc.cmd.Process.Pid)
	}
	log, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("e2e: node %d: %w", n.ID, err)
	}
	defer log.Close() // the child has its own copy
	n.starts++
	fmt.Fprintf(log, "=== e2e: start %d of node %d at %s: %s %s\n",
		n.starts, n.ID, time.Now().Format("15:04:05.000"), n.bin, strings.Join(n.args, " "))
	cmd := exec.Command(n.bin, n.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("e2e: start node %d: %w", n.ID, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	n.proc = p
	go n.wait(p)
	return nil
}

// wait reaps p and records its exit if the harness did not ask for it.
func (n *Node) wait(p *process) {
	err := p.cmd.Wait()
	n.mu.Lock()
	p.err = err
	if !p.asked {
		state := "exited with status 0"
		if err != nil {
			state = err.Error()
		}
		n.unexpected = append(n.unexpected, fmt.Sprintf("node %d (pid %d) %s at %s without being asked",
			n.ID, p.cmd.Process.Pid, state, time.Now().Format("15:04:05.000")))
	}
	n.mu.Unlock()
	close(p.done)
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc != nil && !n.proc.exited()
}

// Exited returns a channel closed when the current process exits (one
// already closed when none runs).
func (n *Node) Exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return n.proc.done
}

// Unexpected returns a description of each exit of the node's processes
// that the harness did not cause (a crash, a refusal to start, an exit of
// its own).
func (n *Node) Unexpected() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.unexpected...)
}

// ExpectExit marks the running process's exit, whenever it comes, as
// expected: for a node removed from the cluster, which may stop of its
// own accord.
func (n *Node) ExpectExit() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.proc.asked = true
	}
}

// signal sends sig to the running process's group and returns the
// process, nil if none runs.
func (n *Node) signal(sig syscall.Signal) *process {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.proc
	if p == nil || p.exited() {
		return nil
	}
	p.asked = true
	// The process leads a group of its own (sysProcAttr): signal it all.
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		_ = p.cmd.Process.Signal(sig)
	}
	return p
}

// Kill kills the node's process with SIGKILL and returns once it has
// exited. It does nothing when none runs.
func (n *Node) Kill() {
	if p := n.signal(syscall.SIGKILL); p != nil {
		<-p.done
	}
}

// Stop asks the node's process to stop with SIGTERM and kills it with
// SIGKILL if it has not exited within timeout. It returns once the
// process has exited, with an error if it had to be killed or exited
// with a status other than 0. It does nothing when none runs.
func (n *Node) Stop(timeout time.Duration) error {
	p := n.signal(syscall.SIGTERM)
	if p == nil {
		return nil
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("e2e: node %d after SIGTERM: %w", n.ID, p.err)
		}
		return nil
	case <-t.C:
		n.Kill()
		return fmt.Errorf("e2e: node %d: %w (%v): killed", n.ID, ErrStopTimeout, timeout)
	}
}

// ErrStopTimeout is the error of Stop when the process had to be killed.
var ErrStopTimeout = errors.New("e2e: the process did not exit within the timeout of SIGTERM")

// WaitReady polls the node's /status until it answers, and fails early
// if the process exits first.
func (n *Node) WaitReady(ctx context.Context, c *Client) error {
	exited := n.Exited()
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := c.Status(rctx, n.ClientAddr)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("e2e: node %d exited before serving: %v", n.ID, n.Unexpected())
		case <-ctx.Done():
			return fmt.Errorf("e2e: node %d not serving /status on %s: %w (last: %v)", n.ID, n.ClientAddr, ctx.Err(), err)
		case <-time.After(pollEvery):
		}
	}
}

// pollEvery is how often the harness polls a condition.
const pollEvery = 20 * time.Millisecond

// LogTail returns at most the last lines lines of the node's log.
func (n *Node) LogTail(lines int) string {
	f, err := os.Open(n.LogPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	const window = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	b = bytes.TrimRight(b, "\n")
	all := strings.Split(string(b), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
