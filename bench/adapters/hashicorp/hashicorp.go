// Package hashicorp adapts github.com/hashicorp/raft to the benchmark
// driver in package workload. Every node runs in this process on the
// library's own in-memory pieces: InmemStore for the log and stable store,
// InmemSnapshotStore, and InmemTransport connected all-to-all.
package hashicorp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/raftly/raft/bench/workload"
)

// Library returns the hashicorp/raft library under test. It has no codec
// workload: its wire format is msgpack, which no other library shares.
func Library() workload.Library {
	return workload.Library{Name: "hashicorp", NewCluster: NewCluster}
}

// leaderWait bounds how long NewCluster waits for the first leader.
const leaderWait = 10 * time.Second

// config returns the configuration of node id: the library's defaults with
// the timeouts shortened to match a 10-tick election at 10 ms ticks in the
// other libraries, and snapshots pushed out of reach, as the other
// libraries do not compact either.
func config(id raft.ServerID) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = id
	c.HeartbeatTimeout = 100 * time.Millisecond
	c.ElectionTimeout = 100 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond // may not exceed HeartbeatTimeout
	c.SnapshotThreshold = math.MaxUint64
	c.SnapshotInterval = 24 * time.Hour
	c.Logger = hclog.NewNullLogger()
	return c
}

// cluster is n nodes of one bootstrapped cluster and the one that was
// leader once NewCluster returned.
type cluster struct {
	nodes  []*raft.Raft
	leader *raft.Raft
}

// NewCluster starts n nodes with ids "1".."n", bootstraps every node's
// storage with the same configuration listing all n as voters (as the
// library's own test clusters do), and returns once one of them is leader
// and has applied everything before its term's first entry.
func NewCluster(n int) (workload.Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("hashicorp: cluster of %d nodes", n)
	}
	var servers []raft.Server
	transports := make([]*raft.InmemTransport, n)
	for i := range n {
		addr, trans := raft.NewInmemTransport(raft.ServerAddress(strconv.Itoa(i + 1)))
		transports[i] = trans
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(addr), Address: addr})
	}
	for i, a := range transports {
		for j, b := range transports {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}

	c := &cluster{}
	for i, s := range servers {
		conf := config(s.ID)
		logs := raft.NewInmemStore() // both the log and the stable store
		snaps := raft.NewInmemSnapshotStore()
		err := raft.BootstrapCluster(conf, logs, logs, snaps, transports[i], raft.Configuration{Servers: servers})
		if err == nil {
			var r *raft.Raft
			r, err = raft.NewRaft(conf, fsm{}, logs, logs, snaps, transports[i])
			if err == nil {
				c.nodes = append(c.nodes, r)
			}
		}
		if err != nil {
			c.Close()
			for _, t := range transports[i:] {
				_ = t.Close()
			}
			return nil, fmt.Errorf("hashicorp: starting node %s: %w", s.ID, err)
		}
	}

	c.leader = waitLeader(c.nodes, leaderWait)
	if c.leader == nil {
		c.Close()
		return nil, fmt.Errorf("hashicorp: no leader among %d nodes after %v", n, leaderWait)
	}
	// The barrier returns once the leader has applied its no-op entry, so
	// the first measured proposal does not pay for the election's tail.
	if err := c.leader.Barrier(leaderWait).Error(); err != nil {
		c.Close()
		return nil, fmt.Errorf("hashicorp: barrier on the new leader: %w", err)
	}
	return c, nil
}

// waitLeader polls nodes until one of them is leader and returns it, or
// returns nil once timeout has passed.
func waitLeader(nodes []*raft.Raft, timeout time.Duration) *raft.Raft {
	deadline := time.Now().Add(timeout)
	for {
		for _, r := range nodes {
			if r.State() == raft.Leader {
				return r
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
}

// Propose applies data through the leader found by NewCluster and returns
// once the leader's FSM has applied it. The library's Apply takes no
// context, so ctx is only checked before proposing; a proposal in flight
// runs to completion, which is bounded because the nodes keep running until
// Close. A change of leader is reported as an error, not retried.
func (c *cluster) Propose(ctx context.Context, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.leader.Apply(data, 0).Error()
}

// Close shuts every node down at once, then waits for each node's
// goroutines and closes its transport.
func (c *cluster) Close() {
	futures := make([]raft.Future, len(c.nodes))
	for i, r := range c.nodes {
		futures[i] = r.Shutdown()
	}
	for _, f := range futures {
		_ = f.Error() // always nil for a shutdown
	}
}

// fsm is a state machine without state: applying an entry does nothing,
// so its snapshot is empty and restoring one only drains it.
type fsm struct{}

// Apply does nothing; the leader's future completes once it returns.
func (fsm) Apply(*raft.Log) any { return nil }

// Snapshot returns an empty snapshot.
func (fsm) Snapshot() (raft.FSMSnapshot, error) { return snapshot{}, nil }

// Restore reads and discards the snapshot, which is always empty.
func (fsm) Restore(rc io.ReadCloser) error {
	_, err := io.Copy(io.Discard, rc)
	return errors.Join(err, rc.Close())
}

// snapshot is the empty snapshot of fsm.
type snapshot struct{}

// Persist writes nothing and closes the sink.
func (snapshot) Persist(sink raft.SnapshotSink) error { return sink.Close() }

// Release has nothing to release.
func (snapshot) Release() {}
