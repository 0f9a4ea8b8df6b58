package raft

import (
	"bytes"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

func cloneEntries(ents []raftpb.Entry) []raftpb.Entry {
	if ents == nil {
		return nil
	}
	out := slices.Clone(ents)
	for i := range out {
		out[i].Data = bytes.Clone(out[i].Data)
	}
	return out
}

// deepCopy copies everything rd refers to.
func deepCopy(rd Ready) Ready {
	c := rd
	if rd.SoftState != nil {
		soft := *rd.SoftState
		c.SoftState = &soft
	}
	c.Entries = cloneEntries(rd.Entries)
	c.CommittedEntries = cloneEntries(rd.CommittedEntries)
	c.Snapshot.Data = bytes.Clone(rd.Snapshot.Data)
	c.Snapshot.Nodes = slices.Clone(rd.Snapshot.Nodes)
	c.Snapshot.Learners = slices.Clone(rd.Snapshot.Learners)
	if rd.Messages != nil {
		c.Messages = slices.Clone(rd.Messages)
		for i := range c.Messages {
			c.Messages[i].Entries = cloneEntries(rd.Messages[i].Entries)
		}
	}
	return c
}

// A Ready belongs to the application: whatever the library does afterwards
// (more proposals appended after spare room in its arrays, a conflicting
// suffix truncated, a snapshot sent), nothing a Ready handed out changes.
func TestReadyContentsNeverChangeAfterHandOut(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	type kept struct{ handedOut, copied Ready }
	var readys []kept
	nw.observe = func(_ int64, rd Ready) { readys = append(readys, kept{rd, deepCopy(rd)}) }

	nw.campaign(1)
	proposeBatches := func(leader int64, batches, size int, tag string) {
		for b := range batches {
			for i := range size {
				_ = nw.nodes[leader].rn.Propose([]byte{tag[0], byte(b), byte(i)})
			}
			nw.stabilize()
		}
	}
	proposeBatches(1, 40, 5, "a")
	proposeBatches(1, 40, 1, "b")

	// Node 1, cut off, appends entries that never commit; a new leader
	// replaces them, so node 1 truncates its uncommitted suffix.
	nw.isolate(1)
	proposeBatches(1, 5, 3, "c")
	nw.tick(30)
	newLeader := nw.leader()
	require.NotEqual(t, int64(1), newLeader)
	proposeBatches(newLeader, 5, 3, "d")
	nw.heal()
	nw.tick(30)
	proposeBatches(nw.leader(), 20, 7, "e")

	// A compacted log makes the leader send a snapshot to a node that
	// fell behind.
	lead := nw.nodes[nw.leader()]
	behind := nw.ids[0]
	if behind == lead.id {
		behind = nw.ids[1]
	}
	nw.crash(behind)
	proposeBatches(lead.id, 10, 4, "f")
	require.NoError(t, lead.rn.Compact(lead.appliedIndex, []int64{1, 2, 3}, []byte("state")))
	nw.restart(behind)
	nw.tick(30)
	require.Equal(t, lead.appliedIndex, nw.nodes[behind].appliedIndex, "the node that fell behind caught up")
	proposeBatches(nw.leader(), 10, 4, "g")

	require.Greater(t, len(readys), 200)
	require.True(t, slices.ContainsFunc(readys, func(r kept) bool { return !IsEmptySnap(r.handedOut.Snapshot) }),
		"a snapshot was handed out")
	for i, r := range readys {
		require.Equal(t, r.copied, r.handedOut, "Ready %d changed after it was handed out", i)
	}
}
