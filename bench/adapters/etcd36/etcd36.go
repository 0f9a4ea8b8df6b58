// Package etcd36 adapts go.etcd.io/raft/v3 v3.6.0 to the benchmark driver
// in package workload.
//
// Each node runs its own loop goroutine in the order of etcd's documented
// usage: persist to a MemoryStorage, send, apply, Advance. Messages travel
// through a workload.Mesh without being marshalled. Node 1 is made leader
// before NewCluster returns and takes every proposal.
package etcd36

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftly/raft/bench/workload"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Library returns etcd raft v3.6 as a library under test, named "etcd-v3.6".
func Library() workload.Library {
	return workload.Library{
		Name:       "etcd-v3.6",
		NewCluster: newCluster,
		NewCodec:   newCodec,
	}
}

const (
	tickInterval  = 10 * time.Millisecond
	electionTicks = 10
	leaderID      = 1
	// startTimeout bounds how long newCluster waits for node 1 to lead.
	startTimeout = 10 * time.Second
	// campaignRetry is how long node 1 waits for an election it started
	// before it tries again; longer than the election timeout.
	campaignRetry = 2 * electionTicks * tickInterval
)

// member is one node of a cluster with the state its loop owns.
type member struct {
	id      uint64
	node    raft.Node
	storage *raft.MemoryStorage
	// applied is the index of the last committed entry the loop applied.
	applied atomic.Uint64
}

// cluster is a workload.Cluster of etcd nodes in this process.
type cluster struct {
	members   []*member // members[i] has id i+1
	mesh      *workload.Mesh[raftpb.Message]
	waiters   *workload.Waiters
	stop      chan struct{} // closed to end the loops
	loops     sync.WaitGroup
	closeOnce sync.Once
}

// newCluster starts n nodes with ids 1..n and returns once node 1 is
// leader and has applied the initial configuration entries.
func newCluster(n int) (workload.Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("etcd-v3.6: cluster of %d nodes", n)
	}
	peers := make([]raft.Peer, n)
	ids := make([]uint64, n)
	for i := range n {
		peers[i] = raft.Peer{ID: uint64(i + 1)}
		ids[i] = uint64(i + 1)
	}
	c := &cluster{
		members: make([]*member, n),
		waiters: workload.NewWaiters(),
		stop:    make(chan struct{}),
	}
	for i := range n {
		storage := raft.NewMemoryStorage()
		c.members[i] = &member{
			id:      ids[i],
			storage: storage,
			node: raft.StartNode(&raft.Config{
				ID:                        ids[i],
				ElectionTick:              electionTicks,
				HeartbeatTick:             1,
				Storage:                   storage,
				MaxSizePerMsg:             1 << 20,
				MaxInflightMsgs:           256,
				MaxUncommittedEntriesSize: 0,
				PreVote:                   true,
				CheckQuorum:               true,
				Logger:                    discardLogger{},
			}, peers),
		}
	}
	c.mesh = workload.NewMesh(ids, func(ctx context.Context, to uint64, m raftpb.Message) {
		_ = c.members[to-1].node.Step(ctx, m) // fails only once ctx ends or the node stopped
	})
	for _, m := range c.members {
		c.loops.Add(1)
		go c.run(m)
	}
	if err := c.elect(); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd-v3.6: %w", err)
	}
	return c, nil
}

// elect makes node 1 leader. etcd ignores a campaign while configuration
// entries are committed but not applied, so it first waits until node 1
// applied the bootstrap entries. Should another node win an election
// anyway, leadership is transferred to node 1.
func (c *cluster) elect() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	lead := c.members[leaderID-1]
	bootstrap := uint64(len(c.members)) // one ConfChange entry per peer
	for lead.applied.Load() < bootstrap {
		if err := pause(ctx); err != nil {
			return errors.New("node 1 did not apply the initial configuration")
		}
	}
	var lastTry time.Time
	for {
		st := lead.node.Status()
		switch {
		case st.RaftState == raft.StateLeader:
			return nil
		case time.Since(lastTry) < campaignRetry:
			// The last attempt may still succeed.
		case st.Lead != raft.None:
			c.members[st.Lead-1].node.TransferLeadership(ctx, st.Lead, leaderID)
			lastTry = time.Now()
		default:
			_ = lead.node.Campaign(ctx) // fails only when ctx ends, checked below
			lastTry = time.Now()
		}
		if err := pause(ctx); err != nil {
			return errors.New("node 1 did not become leader")
		}
	}
}

// pause sleeps a millisecond, or returns ctx's error once it ends.
func pause(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Millisecond):
		return nil
	}
}

// run is m's loop: it ticks the node and handles its Ready batches until
// the cluster closes.
func (c *cluster) run(m *member) {
	defer c.loops.Done()
	ticker := time.NewTicker(tickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-ticker.C:
			m.node.Tick()
		case rd := <-m.node.Ready():
			c.handle(m, rd)
		}
	}
}

// handle persists rd to m's storage, sends its messages, applies its
// committed entries and calls Advance, in that order. A storage error is
// a bug in the adapter and panics.
func (c *cluster) handle(m *member, rd raft.Ready) {
	if !raft.IsEmptySnap(rd.Snapshot) {
		must(m.storage.ApplySnapshot(rd.Snapshot))
	}
	must(m.storage.Append(rd.Entries))
	if !raft.IsEmptyHardState(rd.HardState) {
		must(m.storage.SetHardState(rd.HardState))
	}
	for _, msg := range rd.Messages {
		c.mesh.Send(msg.To, msg)
	}
	for i := range rd.CommittedEntries {
		c.apply(m, &rd.CommittedEntries[i])
	}
	if k := len(rd.CommittedEntries); k > 0 {
		m.applied.Store(rd.CommittedEntries[k-1].Index)
	}
	m.node.Advance()
}

// apply applies one committed entry on m: configuration changes go to the
// node; proposals wake their waiter when m is node 1, the node that takes
// the proposals.
func (c *cluster) apply(m *member, e *raftpb.Entry) {
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		must(cc.Unmarshal(e.Data))
		m.node.ApplyConfChange(cc)
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		must(cc.Unmarshal(e.Data))
		m.node.ApplyConfChange(cc)
	case raftpb.EntryNormal:
		if m.id == leaderID && len(e.Data) > 0 {
			c.waiters.Applied(e.Data)
		}
	}
}

// Propose proposes data on node 1 and waits until node 1 applied it.
func (c *cluster) Propose(ctx context.Context, data []byte) error {
	return c.waiters.ProposeAndWait(ctx, data, c.members[leaderID-1].node.Propose)
}

// Close stops the loops, then the nodes, then the mesh, and returns once
// all their goroutines ended. It may be called more than once.
func (c *cluster) Close() {
	c.closeOnce.Do(func() {
		close(c.stop)
		c.loops.Wait()
		for _, m := range c.members {
			m.node.Stop()
		}
		c.mesh.Close()
	})
}

func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("etcd-v3.6 adapter: %v", err))
	}
}

// newCodec builds the append message carrying one entry per element of
// entries; the entries' data is not copied.
func newCodec(entries [][]byte) workload.Codec {
	ents := make([]raftpb.Entry, len(entries))
	for i, data := range entries {
		ents[i] = raftpb.Entry{Type: raftpb.EntryNormal, Term: 5, Index: 1001 + uint64(i), Data: data}
	}
	return workload.GogoCodec(raftpb.Message{
		Type: raftpb.MsgApp, To: 2, From: 1,
		Term: 5, LogTerm: 5, Index: 1000, Commit: 990,
		Entries: ents,
	})
}

// discardLogger drops every log line. Fatal and Panic still panic: etcd
// calls them on broken invariants and does not expect them to return.
type discardLogger struct{}

func (discardLogger) Debug(...any)              {}
func (discardLogger) Debugf(string, ...any)     {}
func (discardLogger) Info(...any)               {}
func (discardLogger) Infof(string, ...any)      {}
func (discardLogger) Warning(...any)            {}
func (discardLogger) Warningf(string, ...any)   {}
func (discardLogger) Error(...any)              {}
func (discardLogger) Errorf(string, ...any)     {}
func (discardLogger) Fatal(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Fatalf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (discardLogger) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (discardLogger) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
