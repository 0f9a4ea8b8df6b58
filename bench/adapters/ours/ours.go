// Package ours is the benchmark adapter for this repository's library.
package ours

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/bench/workload"
	"github.com/raftly/raft/raftpb"
)

// Library returns the adapter.
func Library() workload.Library {
	return workload.Library{Name: "ours", NewCluster: newCluster, NewCodec: newCodec}
}

// The settings every adapter shares: an election of 10 ticks, a heartbeat
// every tick, a tick every 10 ms.
const (
	electionTicks  = 10
	heartbeatTicks = 1
	tickEvery      = 10 * time.Millisecond
	startTimeout   = 10 * time.Second
)

type cluster struct {
	nodes   map[int64]raft.Node
	leader  raft.Node
	mesh    *workload.Mesh[raftpb.Message]
	waiters *workload.Waiters
	stop    chan struct{}
	loops   sync.WaitGroup
	elected chan struct{} // closed once node 1 leads and has applied an entry of its term
	voters  []int64
	// compactEvery: each node compacts its log every compactEvery applied
	// entries (0: never).
	compactEvery int64
}

func newCluster(n int) (workload.Cluster, error) { return startCluster(n, 0) }

// startCluster starts n nodes that compact every compactEvery applied
// entries (0: never) and elects node 1.
func startCluster(n int, compactEvery int64) (*cluster, error) {
	c := &cluster{
		nodes:        make(map[int64]raft.Node, n),
		waiters:      workload.NewWaiters(),
		stop:         make(chan struct{}),
		elected:      make(chan struct{}),
		compactEvery: compactEvery,
	}
	var ids []int64
	var meshIDs []uint64
	for id := int64(1); id <= int64(n); id++ {
		ids = append(ids, id)
		meshIDs = append(meshIDs, uint64(id))
	}
	c.voters = ids
	for _, id := range ids {
		c.nodes[id] = raft.StartNode(id, ids, electionTicks, heartbeatTicks)
	}
	c.leader = c.nodes[1]
	c.mesh = workload.NewMesh(meshIDs, func(ctx context.Context, to uint64, m raftpb.Message) {
		_ = c.nodes[int64(to)].Step(ctx, m)
	})
	for id, nd := range c.nodes {
		c.loops.Add(1)
		go c.loop(id, nd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.leader.Campaign(ctx); err != nil {
		c.Close()
		return nil, err
	}
	select {
	case <-c.elected:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("node 1 was not elected within %v", startTimeout)
	}
}

// loop is the documented loop; the node keeps its own in-memory log, so
// persisting is nothing. Messages go out before the entries are applied,
// as in every adapter.
func (c *cluster) loop(id int64, nd raft.Node) {
	defer c.loops.Done()
	ticker := time.NewTicker(tickEvery)
	defer ticker.Stop()
	isLeader := false
	var applied, compacted int64
	for {
		select {
		case <-ticker.C:
			nd.Tick()
		case rd := <-nd.Ready():
			for _, m := range rd.Messages {
				c.mesh.Send(uint64(m.To), m)
			}
			if rd.SoftState != nil {
				isLeader = rd.RaftState == raft.StateLeader && id == 1
			}
			for _, e := range rd.CommittedEntries {
				if !isLeader {
					continue
				}
				if len(e.Data) == 0 {
					// The leader's own empty entry: proposals are carried from now on.
					c.markElected()
					continue
				}
				c.waiters.Applied(e.Data)
			}
			if !raft.IsEmptySnap(rd.Snapshot) {
				applied, compacted = rd.Snapshot.Index, rd.Snapshot.Index
			}
			if n := len(rd.CommittedEntries); n > 0 {
				applied = rd.CommittedEntries[n-1].Index
			}
			if c.compactEvery > 0 && applied-compacted >= c.compactEvery {
				c.compact(nd, applied)
				compacted = applied
			}
		case <-c.stop:
			return
		}
	}
}

// compact compacts nd's log up to index, with a small snapshot: the
// benchmark's state machine keeps nothing but its applied index.
func (c *cluster) compact(nd raft.Node, index int64) {
	state := binary.LittleEndian.AppendUint64(nil, uint64(index))
	if err := nd.Compact(index, c.voters, state); err != nil {
		panic(fmt.Sprintf("ours adapter: compacting at %d: %v", index, err))
	}
}

func (c *cluster) markElected() {
	select {
	case <-c.elected:
	default:
		close(c.elected)
	}
}

func (c *cluster) Propose(ctx context.Context, data []byte) error {
	return c.waiters.ProposeAndWait(ctx, data, c.leader.Propose)
}

func (c *cluster) Close() {
	close(c.stop)
	c.loops.Wait()
	for _, nd := range c.nodes {
		nd.Stop()
	}
	c.mesh.Close()
}

func newCodec(entries [][]byte) workload.Codec {
	m := raftpb.Message{Type: raftpb.MsgApp, To: 2, From: 1, Term: 5, LogTerm: 5, Index: 1000, Commit: 990}
	for i, data := range entries {
		m.Entries = append(m.Entries, raftpb.Entry{Type: raftpb.EntryNormal, Term: 5, Index: 1001 + int64(i), Data: data})
	}
	return workload.GogoCodec(m)
}
