package raft

import (
	"fmt"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// With WithStorage the node reads its persisted log from the application's
// storage and keeps in memory only what is not yet persisted; replication,
// compaction, snapshots and restarts work as with its own storage.
func TestWithStorage(t *testing.T) {
	ids := []int64{1, 2, 3}
	d := newMCDriver(t, nil)
	for _, id := range ids {
		app := NewMemoryStorage()
		d.add(id, ids, WithStorage(app)).app = app
	}
	d.campaign(1)
	for i := range 20 {
		require.NoError(t, d.propose(1, fmt.Sprint("a", i)))
	}
	for _, id := range ids {
		n := d.nodes[id]
		require.Nil(t, n.rn.mem, "node %x keeps a log of its own", id)
		require.Empty(t, n.rn.raft.log.unstable.entries, "node %x holds persisted entries in memory", id)
		require.Equal(t, n.rn.raft.log.lastIndex(), n.app.LastIndex())
	}

	// Node 3 falls behind a compaction: the leader reads the snapshot the
	// application recorded, and node 3's application persists it.
	d.isolate(3)
	for i := range 5 {
		require.NoError(t, d.propose(1, fmt.Sprint("b", i)))
	}
	lead := d.nodes[1]
	require.NoError(t, d.compact(1))
	d.heal()
	d.tick(3)
	require.Equal(t, d.sms[1].data, d.sms[3].data)
	require.Equal(t, lead.disk.snap.Index, d.nodes[3].app.Snapshot().Index, "node 3 persisted the snapshot")

	// A restart reads the log from the storage.
	d.crash(2)
	d.restart(2)
	d.tick(3)
	require.NoError(t, d.propose(1, "c"))
	require.Equal(t, d.sms[1].data, d.sms[2].data)
	d.requireSameHistory()
}

// WithStorage on StartNode needs an empty storage, and RestartNode reads
// the entries from it, not from its argument.
func TestWithStorageMisuse(t *testing.T) {
	full := NewMemoryStorage()
	full.Append([]raftpb.Entry{{Index: 1, Term: 1}})
	require.Panics(t, func() { NewRawNode(1, []int64{2, 3}, 10, 1, WithStorage(full)) })
	require.Panics(t, func() {
		RestartRawNode(1, []int64{2, 3}, 10, 1, nil, raftpb.HardState{Term: 1}, []raftpb.Entry{{Index: 1, Term: 1}}, WithStorage(full))
	})
	require.Panics(t, func() {
		RestartRawNode(1, []int64{2, 3}, 10, 1, &raftpb.Snapshot{Index: 5, Term: 1, Nodes: []int64{1, 2, 3}}, raftpb.HardState{Term: 1}, nil, WithStorage(full))
	}, "the snapshot given is not the storage's")
	rn := RestartRawNode(1, []int64{2, 3}, 10, 1, nil, raftpb.HardState{Term: 1, Commit: 1}, nil, WithStorage(full))
	require.Equal(t, int64(1), rn.raft.log.lastIndex())
}
