package raft

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Tests of AddLearner and PromoteLearner: the recommended way to add a
// node (as a learner, caught up, then promoted).

// A node added as a learner receives the log but never counts toward a
// quorum and never campaigns; promoted, it is a voter like any other.
func TestAddLearnerThenPromote(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("learner", 4)))
	join := d.indexOf(1, "learner 4")
	for _, id := range []int64{1, 2, 3} {
		st := d.nodes[id].rn.Status()
		require.Equal(t, []int64{1, 2, 3}, st.Voters, "node %x", id)
		require.Equal(t, []int64{4}, st.Learners, "node %x", id)
	}
	n4 := d.add(4, []int64{1, 2, 3}, Learners(4), Joining(join))
	require.NoError(t, d.propose(1, "b"))
	require.Equal(t, []string{"a", "b"}, d.sms[4].data, "the learner receives the log")
	require.ErrorIs(t, n4.rn.Campaign(), ErrCannotCampaign)

	// The learner does not count: with two voters down, nothing commits.
	d.crash(2)
	d.crash(3)
	commit := d.nodes[1].rn.raft.log.committed
	require.NoError(t, d.propose(1, "c"))
	require.Equal(t, commit, d.nodes[1].rn.raft.log.committed, "committed with a learner's help")
	d.restart(2)
	d.restart(3)
	d.tick(3)
	require.Equal(t, []string{"a", "b", "c"}, d.sms[4].data)

	require.NoError(t, d.configure(1, configData("promote", 4)))
	for _, id := range []int64{1, 2, 3, 4} {
		st := d.nodes[id].rn.Status()
		require.Equal(t, []int64{1, 2, 3, 4}, st.Voters, "node %x", id)
		require.Empty(t, st.Learners, "node %x", id)
	}
	// Now it counts: with nodes 2 and 3 down, 1 and 4 are not a quorum of
	// four, and with 3 down, 1, 2 and 4 are.
	d.crash(3)
	require.NoError(t, d.propose(1, "d"))
	require.Equal(t, []string{"a", "b", "c", "d"}, d.sms[4].data)
	require.NoError(t, n4.rn.raft.campaignBlocker(), "a voter may campaign")
	require.NoError(t, d.nodes[1].rn.TransferLeadership(4))
	d.stabilize()
	require.Equal(t, int64(4), d.leader())
	d.requireSameHistory()
}

// The membership calls leave alone what they do not apply to: AddNode of
// a learner (only promotion makes it a voter), AddLearner of a voter and
// PromoteLearner of anything but a learner.
func TestLearnerCallsThatChangeNothing(t *testing.T) {
	m := newMembership([]int64{1, 2}, []int64{3})
	require.Equal(t, m, m.withVoter(3), "AddNode of a learner")
	require.Equal(t, m, m.withLearner(2), "AddLearner of a voter")
	require.Equal(t, m, m.withLearner(3), "AddLearner of a learner")
	require.Equal(t, m, m.promoted(2), "PromoteLearner of a voter")
	require.Equal(t, m, m.promoted(9), "PromoteLearner of a non-member")
	require.Equal(t, "voters=[1 2 3] learners=[]", m.promoted(3).String())
	require.Equal(t, "voters=[1 2] learners=[3 4]", m.withLearner(4).String())
}
