package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config describes a cluster to run.
type Config struct {
	// Bin is the raftkv binary.
	Bin string
	// Dir holds each node's data directory (n<id>/) and log (n<id>.log).
	// It must exist.
	Dir string
	// Size is the number of first members, given ids 1 to Size.
	Size int
	// Flags are more flags for every node, such as -test-faults.
	Flags []string
}

// Cluster is a set of raftkv nodes on 127.0.0.1. Its methods may be
// called from several goroutines.
type Cluster struct {
	cfg    Config
	client *Client

	mu    sync.Mutex
	nodes map[uint64]*Node
}

// New lays out a cluster of cfg.Size nodes, each on two free ports, and
// starts none.
func New(cfg Config) (*Cluster, error) {
	if cfg.Size < 1 {
		return nil, errors.New("e2e: a cluster needs at least one node")
	}
	ports, err := FreePorts(2 * cfg.Size)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, client: NewClient(), nodes: map[uint64]*Node{}}
	var members []string
	for i := range cfg.Size {
		id := uint64(i + 1)
		n := c.layout(id, ports[2*i], ports[2*i+1])
		c.nodes[id] = n
		members = append(members, fmt.Sprintf("%d=%s", id, n.PeerAddr))
	}
	for _, n := range c.nodes {
		n.args = append(n.args, "-cluster", strings.Join(members, ","))
		n.args = append(n.args, cfg.Flags...)
	}
	return c, nil
}

// layout returns node id on the given ports, with its common flags.
func (c *Cluster) layout(id uint64, clientPort, peerPort int) *Node {
	n := &Node{
		ID:         id,
		ClientAddr: "127.0.0.1:" + strconv.Itoa(clientPort),
		PeerAddr:   "127.0.0.1:" + strconv.Itoa(peerPort),
		DataDir:    filepath.Join(c.cfg.Dir, fmt.Sprintf("n%d", id)),
		LogPath:    filepath.Join(c.cfg.Dir, fmt.Sprintf("n%d.log", id)),
		bin:        c.cfg.Bin,
	}
	n.args = []string{"-id", strconv.FormatUint(id, 10), "-listen", n.ClientAddr,
		"-peer-listen", n.PeerAddr, "-data", n.DataDir}
	return n
}

// FreePorts returns n distinct TCP ports free on 127.0.0.1 a moment ago:
// they are held open together, so that none is returned twice.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("e2e: finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Client returns the cluster's client.
func (c *Cluster) Client() *Client { return c.client }

// Dir returns the directory of the nodes' data and logs.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Nodes returns every node ever part of the cluster, by id.
func (c *Cluster) Nodes() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Node, 0, len(c.nodes))
	for _, n := range c.nodes {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Node) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Node returns node id, nil if there is none.
func (c *Cluster) Node(id uint64) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// Start starts every node and waits until each serves /status.
func (c *Cluster) Start(ctx context.Context) error {
	nodes := c.Nodes()
	for _, n := range nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx, c.client); err != nil {
			return err
		}
	}
	return nil
}

// Join starts a new node id that joins the running cluster through the
// member via (-join with via's client address), and waits until it
// serves /status.
func (c *Cluster) Join(ctx context.Context, id uint64, via *Node) (*Node, error) {
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if _, ok := c.nodes[id]; ok {
		c.mu.Unlock()
		return nil, fmt.Errorf("e2e: node %d exists", id)
	}
	n := c.layout(id, ports[0], ports[1])
	n.args = append(n.args, "-join", via.ClientAddr)
	n.args = append(n.args, c.cfg.Flags...)
	c.nodes[id] = n
	c.mu.Unlock()
	if err := n.Start(); err != nil {
		return n, err
	}
	return n, n.WaitReady(ctx, c.client)
}

// Leader polls the running nodes' /status until one says it is the
// leader and no node reports a later term, and returns it with its
// status.
func (c *Cluster) Leader(ctx context.Context) (*Node, Status, error) {
	var last string
	for {
		n, s, why := c.leader(ctx)
		if n != nil {
			return n, s, nil
		}
		last = why
		select {
		case <-ctx.Done():
			return nil, Status{}, fmt.Errorf("e2e: no leader: %w (%s)", ctx.Err(), last)
		case <-time.After(pollEvery):
		}
	}
}

// leader asks every running node once; it returns the leader, or why
// there is none.
func (c *Cluster) leader(ctx context.Context) (*Node, Status, string) {
	var leader *Node
	var ls Status
	var maxTerm uint64
	var seen []string
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := c.client.Status(rctx, n.ClientAddr)
		cancel()
		if err != nil {
			seen = append(seen, fmt.Sprintf("%d: %v", n.ID, err))
			continue
		}
		seen = append(seen, fmt.Sprintf("%d: term %d leader %d", n.ID, s.Term, s.Leader))
		maxTerm = max(maxTerm, s.Term)
		if s.IsLeader() && (leader == nil || s.Term > ls.Term) {
			leader, ls = n, s
		}
	}
	if leader == nil || ls.Term < maxTerm {
		return nil, Status{}, strings.Join(seen, "; ")
	}
	return leader, ls, ""
}

// Close stops every running node (SIGTERM, then SIGKILL after timeout),
// all at once, and returns the errors of those that did not stop
// cleanly.
func (c *Cluster) Close(timeout time.Duration) error {
	nodes := c.Nodes()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Stop(timeout) })
	}
	wg.Wait()
	c.client.CloseIdle()
	return errors.Join(errs...)
}

// Kill kills every running node with SIGKILL.
func (c *Cluster) Kill() {
	for _, n := range c.Nodes() {
		n.Kill()
	}
}

// Unexpected returns the unexpected exits of every node.
func (c *Cluster) Unexpected() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.Unexpected()...)
	}
	return out
}

// Logs returns the last lines lines of each node's log, each under a
// header that names the node and the file.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, n := range c.Nodes() {
		fmt.Fprintf(&b, "--- last %d lines of node %d's log %s:\n%s\n", lines, n.ID, n.LogPath, n.LogTail(lines))
	}
	return b.String()
}
