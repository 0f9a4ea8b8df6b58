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

// recordingStorage is an application storage that records the snapshots
// Compact hands it, or refuses them.
type recordingStorage struct {
	*MemoryStorage
	refuse error
	got    []raftpb.Snapshot
}

func (s *recordingStorage) Compact(snap raftpb.Snapshot) error {
	if s.refuse != nil {
		return s.refuse
	}
	s.got = append(s.got, snap)
	s.MemoryStorage.Compact(snap)
	return nil
}

// With a CompactingStorage, Compact hands the storage the whole snapshot
// (term, voters, learners at the index, data); when the storage refuses
// it, Compact fails and changes nothing.
func TestCompactHandsTheSnapshotToTheStorage(t *testing.T) {
	app := &recordingStorage{MemoryStorage: NewMemoryStorage()}
	rn := NewRawNode(1, nil, 10, 1, WithStorage(app), Learners(4))
	require.NoError(t, rn.Campaign())
	var applied int64
	for rn.HasReady() {
		rd := rn.Ready()
		app.Append(rd.Entries)
		if n := len(rd.CommittedEntries); n > 0 {
			applied = rd.CommittedEntries[n-1].Index
		}
		rn.Advance()
	}
	require.Positive(t, applied)

	app.refuse = fmt.Errorf("disk full")
	require.ErrorContains(t, rn.Compact(applied, nil, []byte("state")), "disk full")
	require.Len(t, rn.raft.members, 1)
	require.Empty(t, app.got)

	app.refuse = nil
	require.NoError(t, rn.Compact(applied, nil, []byte("state")))
	require.Equal(t, []raftpb.Snapshot{{Data: []byte("state"), Nodes: []int64{1}, Learners: []int64{4}, Index: applied, Term: 1}}, app.got)
	require.Equal(t, applied, app.Snapshot().Index)
}
