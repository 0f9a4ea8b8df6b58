package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftly/raft/rafttest/lincheck"
)

// nemesis injects one fault at a time into a cluster, at random: it
// kills a node (SIGKILL) and restarts it, isolates a node from the
// others, cuts the link between two nodes, or kills every node at once
// and restarts them all. A victim is the leader half of the time. Each
// fault lasts a random while, and is undone before the next begins.
type nemesis struct {
	c      *Cluster
	client *Client
	h      *history // its clock
	r      *rand.Rand

	mu     sync.Mutex
	events []lincheck.Note
	counts map[string]int
}

func newNemesis(c *Cluster, h *history, seed uint64) *nemesis {
	return &nemesis{c: c, client: c.Client(), h: h, r: rand.New(rand.NewPCG(seed, 0x6e656d)), counts: map[string]int{}}
}

// readyTimeout bounds the wait for a restarted node to serve, and
// healTimeout the attempts to heal a node's transport.
const (
	readyTimeout = 20 * time.Second
	healTimeout  = 10 * time.Second
)

// run injects faults until stop is closed, and returns once the last one
// is undone: every node running, no message blocked. An error is a fault
// that could not be undone (a node that does not restart, a transport
// that does not heal).
func (nm *nemesis) run(stop <-chan struct{}) error {
	for {
		if !nm.wait(stop, 200*time.Millisecond, 800*time.Millisecond) {
			return nil
		}
		var err error
		switch p := nm.r.IntN(100); {
		case p < 40:
			err = nm.kill(stop)
		case p < 70:
			err = nm.isolate(stop)
		case p < 90:
			err = nm.cut(stop)
		default:
			err = nm.crash(stop)
		}
		if err != nil {
			return err
		}
	}
}

// wait waits a random time in [lo, hi), and reports false if stop was
// closed first. The times are those of faults, not a synchronisation:
// nothing waits for the nemesis's wait to be over.
func (nm *nemesis) wait(stop <-chan struct{}, lo, hi time.Duration) bool {
	t := time.NewTimer(lo + time.Duration(nm.r.Int64N(int64(hi-lo))))
	defer t.Stop()
	select {
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// victim picks a node: the leader half of the time, if there is one.
func (nm *nemesis) victim() (*Node, string) {
	nodes := nm.c.Nodes()
	if nm.r.IntN(2) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		if n, s, err := nm.c.Leader(ctx); err == nil {
			return n, fmt.Sprintf("node %d (leader, term %d)", n.ID, s.Term)
		}
	}
	n := nodes[nm.r.IntN(len(nodes))]
	return n, fmt.Sprintf("node %d", n.ID)
}

// record logs the fault what, from start to now.
func (nm *nemesis) record(kind string, start int64, what string) {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	nm.events = append(nm.events, lincheck.Note{Start: start, End: nm.h.now(), What: what})
	nm.counts[kind]++
}

func (nm *nemesis) kill(stop <-chan struct{}) error {
	n, who := nm.victim()
	start := nm.h.now()
	n.Kill()
	nm.wait(stop, 100*time.Millisecond, 1500*time.Millisecond)
	err := nm.restart(n)
	nm.record("kill", start, "kill -9 "+who+", restart")
	return err
}

func (nm *nemesis) crash(stop <-chan struct{}) error {
	start := nm.h.now()
	nm.c.Kill()
	nm.wait(stop, 100*time.Millisecond, 500*time.Millisecond)
	var errs []error
	for _, n := range nm.c.Nodes() {
		errs = append(errs, nm.restart(n))
	}
	nm.record("crash", start, "kill -9 every node, restart them")
	return errors.Join(errs...)
}

// restart starts n and waits until it serves.
func (nm *nemesis) restart(n *Node) error {
	if err := n.Start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	return n.WaitReady(ctx, nm.client)
}

// isolate blocks every message between a node and the others.
func (nm *nemesis) isolate(stop <-chan struct{}) error {
	n, who := nm.victim()
	start := nm.h.now()
	blocks := map[uint64][]uint64{}
	for _, m := range nm.c.Nodes() {
		if m != n {
			blocks[m.ID] = []uint64{n.ID}
			blocks[n.ID] = append(blocks[n.ID], m.ID)
		}
	}
	return nm.partition(stop, "isolate", start, "isolate "+who, blocks)
}

// cut blocks the messages between two nodes, which both still talk to
// the others.
func (nm *nemesis) cut(stop <-chan struct{}) error {
	a, who := nm.victim()
	others := slices.DeleteFunc(nm.c.Nodes(), func(m *Node) bool { return m == a })
	b := others[nm.r.IntN(len(others))]
	start := nm.h.now()
	blocks := map[uint64][]uint64{a.ID: {b.ID}, b.ID: {a.ID}}
	return nm.partition(stop, "cut", start, fmt.Sprintf("cut %s from node %d", who, b.ID), blocks)
}

// partition sets blocks (by node: the peers it drops), holds them a
// while, and heals every node.
func (nm *nemesis) partition(stop <-chan struct{}, kind string, start int64, what string, blocks map[uint64][]uint64) error {
	var errs []error
	for id, ids := range blocks {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := nm.client.Block(ctx, nm.c.Node(id).ClientAddr, ids); err != nil {
			errs = append(errs, fmt.Errorf("%s: blocking %v on node %d: %w", what, ids, id, err))
		}
		cancel()
	}
	nm.wait(stop, 300*time.Millisecond, 1500*time.Millisecond)
	errs = append(errs, nm.heal())
	nm.record(kind, start, what)
	return errors.Join(errs...)
}

// heal unblocks every message on every node, retrying each node for up
// to healTimeout.
func (nm *nemesis) heal() error {
	var errs []error
	for _, n := range nm.c.Nodes() {
		if !n.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), healTimeout)
		var err error
		for {
			rctx, rcancel := context.WithTimeout(ctx, time.Second)
			err = nm.client.Block(rctx, n.ClientAddr, nil)
			rcancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(pollEvery):
			}
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("healing node %d: %w", n.ID, err))
		}
	}
	return errors.Join(errs...)
}

// summary counts the faults, e.g. "12 faults: kill 5, isolate 4, ...".
func (nm *nemesis) summary() string {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	total := 0
	var parts []string
	for _, k := range []string{"kill", "isolate", "cut", "crash"} {
		total += nm.counts[k]
		parts = append(parts, fmt.Sprintf("%s %d", k, nm.counts[k]))
	}
	return fmt.Sprintf("%d faults: %s", total, strings.Join(parts, ", "))
}

// log returns the faults, one a line, with their times.
func (nm *nemesis) log() string {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	var b strings.Builder
	for _, e := range nm.events {
		fmt.Fprintf(&b, "[%s .. %s] %s\n", fmtTime(e.Start), fmtTime(e.End), e.What)
	}
	return b.String()
}

// notes returns the faults as spans to show beside the history.
func (nm *nemesis) notes() []lincheck.Note {
	nm.mu.Lock()
	defer nm.mu.Unlock()
	return append([]lincheck.Note(nil), nm.events...)
}
