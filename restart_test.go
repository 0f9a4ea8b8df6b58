package raft

import (
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Restart per API.md (Restart), and the programming errors of construction.

// RestartRawNode hands out the committed entries after the snapshot again,
// config entries included; re-applying them brings the membership, which
// starts as the peers given, up to date.
func TestRestartRawNodeHandsOutCommittedEntriesAgain(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("remove", 3)))
	require.NoError(t, d.propose(1, "b"))
	d.crash(3)
	n2 := d.nodes[2]
	before := slices.Clone(n2.applied)
	require.Equal(t, []int64{1, 2}, n2.rn.Status().Voters)
	require.Equal(t, before[len(before)-1].Index, n2.disk.hs.Commit)

	d.crash(2)
	n2 = d.restart(2)
	require.Equal(t, []int64{1, 2, 3}, n2.rn.Status().Voters, "the membership at the start of the log")
	require.ErrorIs(t, n2.rn.Campaign(), ErrCannotCampaign, "committed config entries are not re-applied yet")
	n2.applied = nil
	d.stabilize()
	require.Equal(t, before, n2.applied, "the committed entries, handed out again in order")
	require.True(t, slices.ContainsFunc(n2.applied, func(e raftpb.Entry) bool { return e.Type == EntryConfig }))
	require.Equal(t, []int64{1, 2}, n2.rn.Status().Voters, "re-applying the config entries brought the membership up to date")
	require.Equal(t, []string{"a", "b"}, d.sms[2].data)

	// The restarted node works in the two-node cluster.
	require.NoError(t, d.propose(1, "c"))
	require.Equal(t, []string{"a", "b", "c"}, d.sms[1].data)
	require.Equal(t, []string{"a", "b", "c"}, d.sms[2].data)
}

func mcSnapAt(index, term int64) raftpb.Snapshot {
	return raftpb.Snapshot{Index: index, Term: term, Nodes: []int64{1, 2, 3}, Data: []byte("null")}
}

func mcEnts(first int64, terms ...int64) []raftpb.Entry {
	ents := make([]raftpb.Entry, len(terms))
	for i, term := range terms {
		ents[i] = raftpb.Entry{Index: first + int64(i), Term: term, Data: []byte{byte('a' + i)}}
	}
	return ents
}

// A crash can persist a snapshot without the HardState of its Ready: a
// commit below the snapshot index counts as the snapshot index.
func TestRestartRawNodeCommitBelowSnapshotCountsAsSnapshotIndex(t *testing.T) {
	snap := mcSnapAt(5, 2)
	for _, hs := range []raftpb.HardState{{Term: 2, Vote: 1, Commit: 3}, {}} {
		rn := RestartRawNode(1, []int64{2, 3}, 10, 1, &snap, hs, mcEnts(6, 2, 2))
		st := rn.Status()
		require.Equal(t, int64(5), st.Commit, "HardState %+v", hs)
		require.Equal(t, int64(5), st.Applied, "HardState %+v", hs)
		require.Equal(t, int64(2), st.Term, "HardState %+v", hs)
		for rn.HasReady() {
			rd := rn.Ready()
			require.Empty(t, rd.CommittedEntries, "nothing committed beyond the snapshot")
			require.True(t, IsEmptyHardState(rd.State) || rd.State.Commit >= 5, "HardState %+v", rd.State)
			rn.Advance()
		}
		// A leader's append committing entry 6 is taken from there.
		require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgApp, From: 2, To: 1, Term: 2, Index: 7, LogTerm: 2, Commit: 6}))
		rd := rn.Ready()
		require.Equal(t, mcEnts(6, 2), rd.CommittedEntries)
		rn.Advance()
	}
}

// A HardState term below the snapshot's term counts as the snapshot's term
// with no vote: the node may vote in that term.
func TestRestartRawNodeTermBelowSnapshotTerm(t *testing.T) {
	snap := mcSnapAt(5, 3)
	rn := RestartRawNode(1, []int64{2, 3}, 10, 1, &snap, raftpb.HardState{Term: 1, Vote: 3, Commit: 5}, nil)
	st := rn.Status()
	require.Equal(t, int64(3), st.Term)
	require.Equal(t, None, st.Vote, "the vote was given in term 1, not in term 3")

	require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgVote, From: 2, To: 1, Term: 3, Index: 5, LogTerm: 3}))
	rd := rn.Ready()
	require.Len(t, rd.Messages, 1)
	require.Equal(t, raftpb.MsgVoteResp, rd.Messages[0].Type)
	require.False(t, rd.Messages[0].Reject, "a node with no vote in term 3 grants one")
	require.Equal(t, raftpb.HardState{Term: 3, Vote: 2, Commit: 5}, rd.State)
}

// A crash can persist a Ready's entries but not its HardState. The node
// restarts in the term of its last entry, with no vote, and hands that
// HardState out at once so that the disk catches up with what it acts on.
func TestRestartRawNodeTermBelowLastEntryTerm(t *testing.T) {
	ents := []raftpb.Entry{{Term: 1, Index: 1}, {Term: 2, Index: 2}, {Term: 3, Index: 3}}
	rn := RestartRawNode(1, []int64{2, 3}, 10, 1, nil, raftpb.HardState{Term: 2, Vote: 2, Commit: 1}, ents)
	require.True(t, rn.HasReady())
	rd := rn.Ready()
	require.Equal(t, raftpb.HardState{Term: 3, Vote: None, Commit: 1}, rd.State)
	rn.Advance()
}

// A vote persisted before a crash holds after the restart: the node never
// votes for two candidates in one term.
func TestRestartRawNodeNeverVotesTwiceInATerm(t *testing.T) {
	var disk testDisk
	rn := NewRawNode(3, []int64{1, 2}, 10, 1)
	require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgVote, From: 2, To: 3, Term: 1}))
	rd := rn.Ready()
	require.Len(t, rd.Messages, 1)
	require.False(t, rd.Messages[0].Reject)
	require.Equal(t, int64(2), rd.State.Vote, "the vote is in the HardState of the Ready that carries it")
	disk.save(rd)
	// The crash: the vote is on disk (the response may or may not have left).

	vote := func(rn *RawNode, from int64) bool {
		t.Helper()
		require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgVote, From: from, To: 3, Term: 1}))
		rd := rn.Ready()
		disk.save(rd)
		rn.Advance()
		for _, m := range rd.Messages {
			if m.Type == raftpb.MsgVoteResp && m.To == from {
				return !m.Reject
			}
		}
		require.FailNow(t, "no vote response")
		return false
	}
	rn = RestartRawNode(3, []int64{1, 2}, 10, 1, nil, disk.hs, disk.ents)
	require.Equal(t, raftpb.HardState{Term: 1, Vote: 2}, rn.Status().HardState)
	require.False(t, vote(rn, 1), "node 3 voted for 2 in term 1 before the crash")
	require.True(t, vote(rn, 2), "the same candidate may ask again")

	// And again after a second restart.
	rn = RestartRawNode(3, []int64{1, 2}, 10, 1, nil, disk.hs, disk.ents)
	require.False(t, vote(rn, 1))
}

// Programming errors at construction panic at once, with a message that
// names the mistake.
func TestRawNodeConstructionErrorsPanic(t *testing.T) {
	snap := mcSnapAt(5, 2)
	restart := func(peers []int64, snap *raftpb.Snapshot, hs raftpb.HardState, ents []raftpb.Entry, opts ...Option) func() {
		return func() { RestartRawNode(1, peers, 10, 1, snap, hs, ents, opts...) }
	}
	for _, tc := range []struct {
		name string
		f    func()
		want []string
	}{
		{"id 0", func() { NewRawNode(0, []int64{2, 3}, 10, 1) }, []string{"id 0"}},
		{"id 0 at restart", func() { RestartRawNode(0, []int64{2, 3}, 10, 1, nil, raftpb.HardState{}, nil) }, []string{"id 0"}},
		{"peer id 0", func() { NewRawNode(1, []int64{0, 2}, 10, 1) }, []string{"id 0"}},
		{"heartbeat equal to election", func() { NewRawNode(1, nil, 10, 10) }, []string{"heartbeat", "election"}},
		{"heartbeat above election", func() { NewRawNode(1, nil, 1, 10) }, []string{"heartbeat", "election"}},
		{"voter and learner", func() { NewRawNode(1, []int64{2, 3}, 10, 1, Learners(3)) }, []string{"both", "Learners"}},
		{"own id voter and learner", func() { NewRawNode(1, []int64{1, 2}, 10, 1, Learners(1)) }, []string{"both"}},
		{"gap in ents", restart([]int64{2, 3}, nil, raftpb.HardState{Term: 1, Commit: 1},
			[]raftpb.Entry{{Index: 1, Term: 1}, {Index: 3, Term: 1}}), []string{"contiguous"}},
		{"ents not from index 1", restart([]int64{2, 3}, nil, raftpb.HardState{Term: 1},
			mcEnts(2, 1, 1)), []string{"contiguous"}},
		{"ents not right after the snapshot", restart([]int64{2, 3}, &snap, raftpb.HardState{Term: 2, Commit: 5},
			mcEnts(7, 2)), []string{"contiguous"}},
		{"commit beyond the last entry", restart([]int64{2, 3}, nil, raftpb.HardState{Term: 1, Commit: 3},
			mcEnts(1, 1, 1)), []string{"commit 3", "beyond", "HardState"}},
		{"commit beyond the snapshot with no entries", restart([]int64{2, 3}, &snap, raftpb.HardState{Term: 2, Commit: 6},
			nil), []string{"beyond", "HardState"}},
		{"voters fewer than the snapshot's", restart([]int64{2}, &snap, raftpb.HardState{Term: 2, Commit: 5},
			nil), []string{"differ", "snapshot"}},
		{"voters more than the snapshot's", restart([]int64{2, 3, 4}, &snap, raftpb.HardState{Term: 2, Commit: 5},
			nil), []string{"differ", "snapshot"}},
	} {
		t.Run(tc.name, func(t *testing.T) { mcRequirePanics(t, tc.f, tc.want...) })
	}

	// Not errors: the own id listed among the peers, or left out of the
	// snapshot's voters' list given as peers.
	require.NotPanics(t, func() { NewRawNode(1, []int64{1, 2, 3}, 10, 1) })
	require.NotPanics(t, restart([]int64{1, 2, 3}, &snap, raftpb.HardState{Term: 2, Commit: 5}, nil))
	require.NotPanics(t, restart([]int64{2, 3}, &snap, raftpb.HardState{Term: 2, Commit: 5}, nil))
	require.NotPanics(t, restart([]int64{2, 3}, &raftpb.Snapshot{}, raftpb.HardState{}, nil), "an empty snapshot means none")
}

// StartNode writes nothing to the log: every member of a new cluster
// starts empty, and the first leader's empty entry is entry 1.
func TestStartRawNodeWritesNothingAndFirstLeaderEntryIsOne(t *testing.T) {
	rn := NewRawNode(1, []int64{2, 3}, 10, 1)
	require.False(t, rn.HasReady(), "a new node has nothing to persist")
	require.Equal(t, int64(0), rn.storage.LastIndex())
	require.Equal(t, raftpb.HardState{}, rn.Status().HardState)

	d := newMCDriver(t, []int64{1, 2, 3})
	for _, id := range d.ids {
		require.False(t, d.nodes[id].rn.HasReady(), "node %x", id)
	}
	var first []raftpb.Entry
	d.beforeAdvance = func(n *testNode, rd Ready) {
		if n.id == 2 && first == nil && len(rd.Entries) > 0 {
			first = rd.Entries
		}
	}
	d.campaign(2)
	require.Equal(t, []raftpb.Entry{{Type: EntryNormal, Term: 1, Index: 1}}, first)
	for _, id := range d.ids {
		n := d.nodes[id]
		require.Equal(t, []raftpb.Entry{{Type: EntryNormal, Term: 1, Index: 1}}, n.disk.ents, "node %x", id)
	}

	// A one-node cluster (no peers) elects itself, and its entry is 1 too.
	one := newMCDriver(t, nil)
	n := one.add(1, nil)
	require.False(t, n.rn.HasReady())
	one.tick(30)
	require.Equal(t, int64(1), one.leader())
	require.Equal(t, []raftpb.Entry{{Type: EntryNormal, Term: 1, Index: 1}}, n.disk.ents)
	require.NoError(t, one.propose(1, "x"))
	require.Equal(t, []string{"x"}, one.sms[1].data)
}

// With Applied, a restarted node hands out only the committed entries
// after the index the application had applied, and starts from the
// membership at that index, given as peers.
func TestRestartWithAppliedIndex(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("add", 4)))
	d.add(4, []int64{1, 2, 3, 4}, Joining(d.indexOf(1, "add 4")))
	require.NoError(t, d.propose(1, "b"))
	n2 := d.nodes[2]
	applied := n2.appliedIndex
	d.crash(2)
	// The harness's state machine keeps what node 2 applied: as durable.
	n2.rn = RestartRawNode(2, []int64{1, 2, 3, 4}, 10, 1, nil, n2.disk.hs, slices.Clone(n2.disk.ents), Applied(applied), Seed(2))
	n2.down = false
	st := n2.rn.Status()
	require.Equal(t, applied, st.Applied)
	require.Equal(t, []int64{1, 2, 3, 4}, st.Voters)
	require.NoError(t, d.propose(1, "c"))
	// The harness checks each applied entry follows the last: nothing
	// up to applied was handed out again.
	require.Equal(t, d.sms[1].data, d.sms[2].data)
	require.Error(t, n2.rn.Compact(applied-1, []int64{1, 2, 3, 4}, nil), "no membership known below the applied index")
	d.requireSameHistory()

	require.Panics(t, func() {
		RestartRawNode(2, []int64{1, 2, 3, 4}, 10, 1, nil, n2.disk.hs, slices.Clone(n2.disk.ents), Applied(n2.disk.hs.Commit+1))
	}, "applied beyond the commit")
	require.Panics(t, func() { NewRawNode(1, []int64{2, 3}, 10, 1, Applied(3)) })
}
