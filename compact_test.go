package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Compaction and snapshots per API.md (Compaction), against RawNode
// clusters whose state machines snapshot and restore their applied data.

type mcStorageView struct {
	snap        raftpb.Snapshot
	first, last int64
}

func mcViewStorage(rn *RawNode) mcStorageView {
	return mcStorageView{snap: rn.storage.Snapshot(), first: rn.storage.FirstIndex(), last: rn.storage.LastIndex()}
}

// Compact refuses an index beyond the last entry handed out in
// CommittedEntries, an index not above the last snapshot, and nodes that
// differ from the voters at the index; a refused Compact changes nothing.
func TestCompactErrorsChangeNothing(t *testing.T) {
	t.Run("index, snapshot and voters", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		for _, data := range []string{"a", "b", "c", "d", "e"} {
			require.NoError(t, d.propose(1, data))
		}
		rn := d.nodes[2].rn
		require.Equal(t, int64(6), rn.Status().Applied)
		refuse := func(index int64, nodes []int64, why string) {
			t.Helper()
			before := mcViewStorage(rn)
			require.Error(t, rn.Compact(index, nodes, []byte("refused")), why)
			require.Equal(t, before, mcViewStorage(rn), "%s: a refused Compact changed the log", why)
		}

		refuse(7, []int64{1, 2, 3}, "beyond the last entry handed out")
		refuse(3, []int64{1, 2, 3, 4}, "a node that is not a voter")
		refuse(3, []int64{1}, "a voter missing")
		require.NoError(t, rn.Compact(3, []int64{1, 3}, []byte("s3")), "the node's own id is implied")
		snap := rn.storage.Snapshot()
		require.Equal(t, int64(3), snap.Index)
		require.Equal(t, int64(1), snap.Term)
		require.Equal(t, []int64{1, 2, 3}, snap.Nodes)
		require.Equal(t, []byte("s3"), snap.Data)
		require.Equal(t, int64(4), rn.storage.FirstIndex())
		refuse(3, []int64{1, 2, 3}, "at the last snapshot")
		refuse(2, []int64{1, 2, 3}, "below the last snapshot")
		refuse(0, []int64{1, 2, 3}, "index 0")

		// The voters recorded at each index: {1,2,3} up to 6, {1,2} from 7.
		require.NoError(t, d.configure(1, configData("remove", 3)))
		require.NoError(t, d.propose(1, "f"))
		require.Equal(t, int64(8), rn.Status().Applied)
		refuse(8, []int64{1, 2, 3}, "the voters at 8 are {1,2}")
		refuse(7, []int64{1, 2, 3}, "the change at 7 is in force at 7")
		refuse(6, []int64{1, 2}, "the voters at 6 were {1,2,3}")
		require.NoError(t, rn.Compact(6, []int64{1, 2, 3}, []byte("s6")), "the refusals left the record at 6 in place")
		require.NoError(t, rn.Compact(8, []int64{1, 2}, []byte("s8")))
		require.Equal(t, []int64{1, 2}, rn.storage.Snapshot().Nodes)

		require.NoError(t, d.propose(1, "g"))
		require.Equal(t, []string{"a", "b", "c", "d", "e", "f", "g"}, d.sms[2].data)
	})

	t.Run("joining node before it applied its join entry", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		require.NoError(t, d.configure(1, []byte("noop")))
		require.NoError(t, d.propose(1, "a"))
		require.NoError(t, d.configure(1, configData("add", 4)))
		j := d.indexOf(1, "add 4")
		refused := 0
		d.beforeAdvance = func(n *testNode, rd Ready) {
			if n.id != 4 || len(rd.CommittedEntries) == 0 || d.sms[4].index >= j {
				return
			}
			refused++
			before := mcViewStorage(n.rn)
			for _, nodes := range [][]int64{{1, 2, 3}, {1, 2, 3, 4}} {
				require.Error(t, n.rn.Compact(d.sms[4].index, nodes, d.sms[4].encode()),
					"node 4 applied %d of its join entry %d", d.sms[4].index, j)
			}
			require.Equal(t, before, mcViewStorage(n.rn))
		}
		n4 := d.add(4, []int64{1, 2, 3, 4}, Joining(j))
		d.tick(3)
		require.Equal(t, 1, refused)
		require.Equal(t, d.sms[1].index, d.sms[4].index)
		require.Error(t, n4.rn.Compact(j-1, []int64{1, 2, 3}, nil), "the node knows no voters before its join entry")
		require.NoError(t, d.compact(4), "once it applied its join entry it compacts")
		require.NoError(t, d.propose(1, "b"))
		require.Equal(t, []string{"a", "b"}, d.sms[4].data)
	})
}

// A leader sends a snapshot to a follower whose next entry was compacted;
// the follower gets it in rd.Snapshot, restores its state machine from it,
// and replication resumes after it.
func TestCompactLeaderSendsSnapshotToLaggingFollower(t *testing.T) {
	for _, tc := range []struct {
		name string
		// lose and regain cut node 3 off and bring it back.
		lose, regain func(d *mcDriver)
		// poke is what happens after node 3 is back, before the snapshot
		// is expected.
		poke func(t *testing.T, d *mcDriver)
	}{
		{
			name:   "partition heals, no new proposal",
			lose:   func(d *mcDriver) { d.isolate(3) },
			regain: func(d *mcDriver) { d.heal() },
			poke:   func(t *testing.T, d *mcDriver) { d.tick(3) },
		},
		{
			name:   "partition heals, new proposal",
			lose:   func(d *mcDriver) { d.isolate(3) },
			regain: func(d *mcDriver) { d.heal() },
			poke:   func(t *testing.T, d *mcDriver) { require.NoError(t, d.propose(1, "poke")); d.tick(3) },
		},
		{
			name:   "follower restarts",
			lose:   func(d *mcDriver) { d.crash(3) },
			regain: func(d *mcDriver) { d.restart(3) },
			poke:   func(t *testing.T, d *mcDriver) { d.tick(3) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newMCDriver(t, []int64{1, 2, 3})
			d.campaign(1)
			require.NoError(t, d.propose(1, "a"))
			tc.lose(d)
			// While node 3 is away the membership changes: the snapshot
			// brings it the new one.
			require.NoError(t, d.configure(1, configData("add", 4)))
			d.add(4, []int64{1, 2, 3, 4}, Joining(d.indexOf(1, "add 4")))
			tc.lose(d)
			d.tick(2)
			for _, data := range []string{"b", "c", "d", "e", "f"} {
				require.NoError(t, d.propose(1, data))
			}
			require.Equal(t, []string{"a", "b", "c", "d", "e", "f"}, d.sms[1].data, "1, 2 and 4 commit")
			require.Equal(t, d.sms[1].data, d.sms[4].data)
			require.NoError(t, d.compact(1))
			snapIndex := d.sms[1].index
			require.Equal(t, int64(2), d.sms[3].index)
			require.Equal(t, []int64{1, 2, 3}, d.nodes[3].rn.Status().Voters)
			tc.regain(d)
			mark := len(d.sent)
			tc.poke(t, d)

			var sent []raftpb.Message
			for _, m := range d.sent[mark:] {
				if m.Type == raftpb.MsgSnap {
					sent = append(sent, m)
				}
			}
			require.Len(t, sent, 1, "one snapshot sent")
			require.Equal(t, int64(1), sent[0].From)
			require.Equal(t, int64(3), sent[0].To)
			require.Equal(t, snapIndex, sent[0].Snapshot.Index)
			require.Len(t, d.snaps[3], 1, "node 3 got the snapshot in rd.Snapshot")
			require.Equal(t, snapIndex, d.snaps[3][0].Index)
			require.Equal(t, d.sms[1].data, d.sms[3].data, "node 3's state machine restored from the snapshot")
			require.Equal(t, d.sms[1].index, d.sms[3].index)
			n3 := d.nodes[3]
			require.Equal(t, snapIndex, n3.disk.snap.Index)
			require.Equal(t, snapIndex+1, n3.rn.storage.FirstIndex())
			require.Equal(t, []int64{1, 2, 3, 4}, n3.rn.Status().Voters, "the snapshot's membership replaces node 3's")

			// Replication resumes, with entries.
			require.NoError(t, d.propose(1, "after"))
			require.Equal(t, d.sms[1].data, d.sms[3].data)
			require.Equal(t, []byte("after"), n3.applied[len(n3.applied)-1].Data)
			require.Len(t, d.snaps[3], 1)
			d.requireSameHistory()
		})
	}
}

// A snapshot carries the learners from the library's record; a learner
// that restores one stays a learner.
func TestCompactSnapshotCarriesLearners(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3}, Learners(4))
	n4 := d.add(4, []int64{1, 2, 3}, Learners(4))
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	d.isolate(4)
	require.NoError(t, d.propose(1, "b"))
	require.NoError(t, d.propose(1, "c"))
	require.NoError(t, d.compact(1))
	require.Equal(t, []int64{4}, d.nodes[1].rn.storage.Snapshot().Learners)
	d.heal()
	require.NoError(t, d.propose(1, "d"))
	d.tick(2)
	require.Len(t, d.snaps[4], 1)
	require.Equal(t, []int64{1, 2, 3}, d.snaps[4][0].Nodes)
	require.Equal(t, []int64{4}, d.snaps[4][0].Learners)
	st := n4.rn.Status()
	require.Equal(t, []int64{1, 2, 3}, st.Voters)
	require.Equal(t, []int64{4}, st.Learners)
	require.ErrorIs(t, n4.rn.Campaign(), ErrCannotCampaign)
	require.Equal(t, []string{"a", "b", "c", "d"}, d.sms[4].data)

	// The learner compacts with the voters (it is not one of them)...
	require.Error(t, n4.rn.Compact(d.sms[4].index, []int64{1, 2, 3, 4}, d.sms[4].encode()), "4 is no voter")
	require.NoError(t, d.compact(4))
	require.Equal(t, []int64{4}, n4.rn.storage.Snapshot().Learners)
	// ... and restarts from its snapshot, with the learners option.
	d.crash(4)
	n4 = d.restart(4)
	require.Equal(t, []int64{4}, n4.rn.Status().Learners)
	require.NoError(t, d.propose(1, "e"))
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, d.sms[4].data)
	require.ErrorIs(t, n4.rn.Campaign(), ErrCannotCampaign)
}

// A joining node that is sent a snapshot restores it; the snapshot ends
// the joining rules: its membership is the snapshot's.
func TestCompactJoiningNodeRestoresSnapshot(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("add", 4)))
	j := d.indexOf(1, "add 4")
	require.NoError(t, d.propose(1, "b"))
	require.NoError(t, d.compact(1))
	n4 := d.add(4, []int64{1, 2, 3, 4}, Joining(j))
	d.tick(3)
	require.Len(t, d.snaps[4], 1)
	require.Greater(t, d.snaps[4][0].Index, j)
	require.Equal(t, []string{"a", "b"}, d.sms[4].data)
	require.Equal(t, []int64{1, 2, 3, 4}, n4.rn.Status().Voters)
	require.NoError(t, d.propose(1, "c"))
	require.Equal(t, []string{"a", "b", "c"}, d.sms[4].data)
	require.NoError(t, d.compact(4))
}

// A joining node may be sent a snapshot from before its join entry, which
// does not list it: the snapshot ends the joining rules, and applying the
// entries after it, its join entry among them, adds it. Once it persisted
// that snapshot it restarts like any node: the snapshot's voters as peers,
// no Joining.
func TestCompactJoiningNodeRestoresSnapshotFromBeforeItJoined(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.propose(1, "b"))
	require.NoError(t, d.compact(1))
	snapIndex := d.sms[1].index
	require.NoError(t, d.configure(1, configData("add", 4)))
	j := d.indexOf(1, "add 4")
	require.NoError(t, d.propose(1, "c"))

	n4 := d.add(4, []int64{1, 2, 3, 4}, Joining(j))
	d.tick(3)
	require.Len(t, d.snaps[4], 1)
	require.Equal(t, snapIndex, d.snaps[4][0].Index)
	require.Equal(t, []int64{1, 2, 3}, d.snaps[4][0].Nodes)
	require.Equal(t, []string{"a", "b", "c"}, d.sms[4].data)
	require.Equal(t, []int64{1, 2, 3, 4}, n4.rn.Status().Voters, "applying its join entry after the snapshot added it")

	d.crash(4)
	snap := n4.disk.snap
	require.Equal(t, snapIndex, snap.Index)
	n4.rn = RestartRawNode(4, snap.Nodes, 10, 1, &snap, n4.disk.hs, slices.Clone(n4.disk.ents), Seed(4))
	n4.appliedIndex, n4.down = snap.Index, false
	d.sms[4] = &mcSM{}
	d.sms[4].restore(t, snap)
	require.Equal(t, []int64{1, 2, 3}, n4.rn.Status().Voters, "the membership at the start of its log")
	d.stabilize()
	require.Equal(t, []int64{1, 2, 3, 4}, n4.rn.Status().Voters)
	require.NoError(t, d.propose(1, "d"))
	require.Equal(t, []string{"a", "b", "c", "d"}, d.sms[4].data)
	require.NoError(t, d.compact(4))
	d.requireSameHistory()
}

// A follower restores a snapshot only when it is beyond its commit index
// and its log does not already hold the snapshot's index with its term.
func TestCompactFollowerRestoresSnapshotOnlyWhenNeeded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		term     int64 // of the message
		snap     raftpb.Snapshot
		restored bool
		commit   int64 // after the message
	}{
		{"below the commit index", 2, mcSnapAt(2, 1), false, 3},
		{"at the commit index", 2, mcSnapAt(3, 1), false, 3},
		{"below the commit index, with another term", 2, mcSnapAt(2, 2), false, 3},
		{"at the commit index, with another term", 2, mcSnapAt(3, 2), false, 3},
		{"held with its term", 2, mcSnapAt(5, 2), false, 5},
		{"held with another term", 3, mcSnapAt(5, 3), true, 5},
		{"beyond the log", 2, mcSnapAt(9, 2), true, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Follower 2 holds 1..6 (terms 1,1,1,2,2,2), committed up to 3.
			rn := RestartRawNode(2, []int64{1, 3}, 10, 1, nil, raftpb.HardState{Term: 2, Vote: 1, Commit: 3}, mcEnts(1, 1, 1, 1, 2, 2, 2))
			for rn.HasReady() {
				rn.Ready()
				rn.Advance()
			}
			require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 2, Term: tc.term, Snapshot: tc.snap}))
			rd := rn.Ready()
			rn.Advance()
			require.Equal(t, tc.commit, rn.Status().Commit)
			var resp []raftpb.Message
			for _, m := range rd.Messages {
				if m.Type == raftpb.MsgAppResp && m.To == 1 {
					resp = append(resp, m)
				}
			}
			require.Len(t, resp, 1, "the follower answers the leader")
			require.False(t, resp[0].Reject)
			if !tc.restored {
				require.True(t, IsEmptySnap(rd.Snapshot), "snapshot restored")
				require.Equal(t, int64(6), rn.storage.LastIndex(), "the log is kept")
				require.True(t, IsEmptySnap(rn.storage.Snapshot()))
				return
			}
			require.Equal(t, tc.snap, rd.Snapshot)
			require.Empty(t, rd.CommittedEntries)
			require.Equal(t, tc.snap.Index, resp[0].Index)
			require.Equal(t, tc.snap.Index, rn.storage.Snapshot().Index)
			require.Equal(t, tc.snap.Index, rn.storage.LastIndex(), "the log is replaced")
			require.Equal(t, tc.snap.Index, rn.Status().Applied)
		})
	}
}

// RestartRawNode from a snapshot: the state machine comes from the
// snapshot, the membership from its voters, and the committed entries
// after it are handed out again.
func TestCompactRestartFromSnapshot(t *testing.T) {
	t.Run("voter", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		require.NoError(t, d.propose(1, "a"))
		require.NoError(t, d.propose(1, "b"))
		require.NoError(t, d.configure(1, configData("remove", 3)))
		d.crash(3)
		require.NoError(t, d.propose(1, "c"))
		require.NoError(t, d.compact(2))
		snapIndex := d.sms[2].index
		require.NoError(t, d.propose(1, "d"))
		require.NoError(t, d.propose(1, "e"))
		require.NotEmpty(t, d.nodes[2].disk.ents)

		d.crash(2)
		n2 := d.restart(2) // with the snapshot's voters as peers
		require.Equal(t, []string{"a", "b", "c"}, d.sms[2].data)
		st := n2.rn.Status()
		require.Equal(t, []int64{1, 2}, st.Voters)
		require.Equal(t, snapIndex, st.Applied)
		require.Error(t, n2.rn.Compact(snapIndex+1, st.Voters, nil), "entry %d is committed but not yet handed out again", snapIndex+1)
		var first int64
		d.beforeAdvance = func(n *testNode, rd Ready) {
			if n.id == 2 && first == 0 && len(rd.CommittedEntries) > 0 {
				first = rd.CommittedEntries[0].Index
			}
		}
		d.stabilize()
		require.Equal(t, snapIndex+1, first, "committed entries after the snapshot are handed out again")
		require.Equal(t, []string{"a", "b", "c", "d", "e"}, d.sms[2].data)
		require.NoError(t, d.propose(1, "f"))
		require.Equal(t, []string{"a", "b", "c", "d", "e", "f"}, d.sms[1].data, "node 2 is needed for a quorum")
		require.Equal(t, d.sms[1].data, d.sms[2].data)
		d.requireSameHistory()
	})

	t.Run("joined node, like any node once it has a snapshot", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		require.NoError(t, d.propose(1, "a"))
		require.NoError(t, d.configure(1, configData("add", 4)))
		j := d.indexOf(1, "add 4")
		n4 := d.add(4, []int64{1, 2, 3, 4}, Joining(j))
		d.tick(3)
		require.NoError(t, d.propose(1, "b"))
		require.NoError(t, d.compact(4))
		require.NoError(t, d.propose(1, "c"))
		d.crash(4)

		snap := n4.disk.snap
		require.Equal(t, []int64{1, 2, 3, 4}, snap.Nodes)
		n4.rn = RestartRawNode(4, snap.Nodes, 10, 1, &snap, n4.disk.hs, slices.Clone(n4.disk.ents), Seed(4))
		n4.appliedIndex, n4.down = snap.Index, false
		d.sms[4] = &mcSM{}
		d.sms[4].restore(t, snap)
		d.stabilize()
		require.Equal(t, []string{"a", "b", "c"}, d.sms[4].data)
		require.NoError(t, d.propose(1, "d"))
		require.Equal(t, []string{"a", "b", "c", "d"}, d.sms[4].data)
		require.Equal(t, []int64{1, 2, 3, 4}, n4.rn.Status().Voters)
		require.NoError(t, d.compact(4))
	})
}

// Compact may be called from inside the loop, after the Ready is saved and
// before Advance, for the entries it just handed out, including entries
// that are in the same Ready's Entries.
func TestCompactInsideLoop(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	compactions, sameReady := 0, 0
	d.beforeAdvance = func(n *testNode, rd Ready) {
		if len(rd.CommittedEntries) == 0 {
			return
		}
		last := rd.CommittedEntries[len(rd.CommittedEntries)-1].Index
		if slices.ContainsFunc(rd.Entries, func(e raftpb.Entry) bool { return e.Index == last }) {
			sameReady++
		}
		require.NoError(t, d.compact(n.id), "node %x compacting to %d inside the loop", n.id, last)
		compactions++
	}
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.propose(2, "b"))
	// Membership changes, so that the voters at the compaction index vary.
	require.NoError(t, d.configure(1, configData("add", 4)))
	require.NoError(t, d.propose(1, "c"))
	require.NoError(t, d.configure(1, configData("remove", 4)))
	require.NoError(t, d.propose(1, "d"))

	// Node 3's application stalls; it then gets entries and their commit
	// in one Ready.
	d.frozen[3] = true
	require.NoError(t, d.propose(1, "e"))
	require.NoError(t, d.propose(1, "f"))
	d.frozen[3] = false
	d.stabilize()
	require.Greater(t, sameReady, 0, "a Ready whose committed entries are also in its Entries")
	require.Greater(t, compactions, 10)

	require.NoError(t, d.propose(3, "g"))
	want := []string{"a", "b", "c", "d", "e", "f", "g"}
	for _, id := range d.ids {
		n := d.nodes[id]
		require.Equal(t, want, d.sms[id].data, "node %x", id)
		require.Equal(t, d.sms[id].index, n.rn.storage.Snapshot().Index, "node %x compacted to what it applied", id)
		require.Equal(t, d.sms[id].index, n.rn.storage.LastIndex(), "node %x", id)
	}

	// A node restarts from its compacted disk.
	d.crash(2)
	d.restart(2)
	require.NoError(t, d.propose(1, "h"))
	require.Equal(t, append(want, "h"), d.sms[2].data)
	d.requireSameHistory()
}

// Compaction releases what it covers: the stored entries up to the index,
// the membership history before it and the config entry indexes before
// it (but the last, which may still be pending).
func TestCompactReleasesTheCompactedPrefix(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	for i := range 3 {
		require.NoError(t, d.propose(1, fmt.Sprint("a", i)))
		require.NoError(t, d.configure(1, configData("add", int64(4+i))))
		d.add(int64(4+i), nil, Joining(d.indexOf(1, fmt.Sprint("add ", 4+i))))
	}
	require.NoError(t, d.propose(1, "b"))
	r := d.nodes[1].rn.raft
	require.Len(t, r.log.confIndexes, 3)
	require.Len(t, r.members, 4, "the initial membership and one per change")
	last := r.log.lastIndex()
	require.Equal(t, last, d.nodes[1].rn.storage.LastIndex())

	require.NoError(t, d.compact(1))
	ms := d.nodes[1].rn.mem
	require.Zero(t, ms.count, "no entry kept up to the compaction index")
	require.Empty(t, ms.chunks)
	require.Len(t, r.log.confIndexes, 1, "the last config entry is kept")
	require.Len(t, r.members, 1, "only the membership in force at the index")
	require.Equal(t, []int64{1, 2, 3, 4, 5, 6}, r.members.current().voters)

	// The cluster goes on: a new change and entries after the compaction.
	require.NoError(t, d.propose(1, "c"))
	require.NoError(t, d.configure(1, configData("remove", 6)))
	require.NoError(t, d.propose(1, "d"))
	require.Equal(t, []int64{1, 2, 3, 4, 5}, r.members.current().voters)
	require.Len(t, r.log.confIndexes, 2)
	d.requireSameHistory()
}
