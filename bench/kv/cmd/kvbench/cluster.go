package main

import (
	"context"
	"fmt"
	"time"
)

// nodes is the size of every cluster kvbench starts.
const nodes = 3

// A system is one of the two stores measured.
type system struct {
	name string
	// start starts a fresh cluster with its data and logs under dir and
	// returns once every node knows the same leader.
	start func(ctx context.Context, dir string) (cluster, error)
}

// A cluster is the three running server processes of one system.
type cluster interface {
	// client returns a new client of node i (0 <= i < nodes). It is not
	// safe for concurrent use, but clients may share a connection.
	client(i int) (kvClient, error)
	// leader is the node that led when the cluster became ready.
	leader() int
	// stop kills the processes and waits for them.
	stop()
}

// Client placement (-target).
const (
	targetSpread = "spread" // client i on node (leader+i) mod 3
	targetLeader = "leader" // every client on the leader
)

// openClients returns n clients of cl placed according to target.
func openClients(cl cluster, n int, target string) ([]kvClient, error) {
	cs := make([]kvClient, 0, n)
	for i := range n {
		node := cl.leader()
		if target == targetSpread {
			node = (node + i) % nodes
		}
		c, err := cl.client(node)
		if err != nil {
			closeClients(cs)
			return nil, fmt.Errorf("client %d on node %d: %w", i, node, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func closeClients(cs []kvClient) {
	for _, c := range cs {
		c.close()
	}
}

// readyTimeout bounds the wait for a fresh cluster to elect a leader.
const readyTimeout = 60 * time.Second

// waitReady calls probe every 50 ms until it returns the leader's index, a
// process has exited, or readyTimeout has passed. probe returns -1 while
// the cluster is not ready, with the reason.
func waitReady(ctx context.Context, procs []*proc, probe func(ctx context.Context) (int, error)) (int, error) {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		if err := firstExited(procs); err != nil {
			return -1, err
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		lead, err := probe(pctx)
		cancel()
		if err == nil && lead >= 0 {
			return lead, nil
		}
		last = err
		if err := ctx.Err(); err != nil {
			return -1, err
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no common leader after %v: %v", readyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
