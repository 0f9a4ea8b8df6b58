package raft

import (
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Tests of leadership transfer.

// The leader hands over to an up-to-date follower: it is told to campaign
// at once and wins, although pre-vote is on and the other follower heard
// from the leader a moment ago (its lease does not block the election the
// leader asked for).
func TestTransferToUpToDateFollower(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	term := nw.nodes[1].rn.raft.term
	require.True(t, nw.nodes[3].rn.raft.inLease())
	require.NoError(t, nw.nodes[1].rn.TransferLeadership(2))
	nw.stabilize()
	require.Equal(t, int64(2), nw.leader())
	require.Equal(t, term+1, nw.nodes[2].rn.raft.term)
	require.NoError(t, nw.propose(2, "b"))
	for _, id := range nw.ids {
		require.Equal(t, []string{"a", "b"}, nw.nodes[id].appliedData(), "node %x", id)
	}
}

// A transferee that lags is brought up to date first, then campaigns.
func TestTransferToLaggingFollower(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	nw.isolate(3)
	for _, d := range []string{"a", "b", "c"} {
		require.NoError(t, nw.propose(1, d))
	}
	nw.heal()
	require.NoError(t, nw.nodes[1].rn.TransferLeadership(3))
	nw.stabilize()
	require.Equal(t, int64(3), nw.leader())
	require.Equal(t, []string{"a", "b", "c"}, nw.nodes[3].appliedData())
}

// While a transfer is under way the leader refuses proposals; a transfer
// that does not complete within an election timeout is abandoned and the
// leader takes proposals again.
func TestTransferRefusesProposalsThenTimesOut(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	nw.isolate(2)
	require.NoError(t, nw.nodes[1].rn.TransferLeadership(2))
	require.ErrorIs(t, nw.propose(1, "refused"), ErrProposalDropped)
	ticks := 0
	for nw.nodes[1].rn.raft.leadTransferee != None {
		require.Less(t, ticks, 10, "the transfer outlived an election timeout")
		nw.tick(1)
		ticks++
	}
	require.Equal(t, 10, ticks, "abandoned after an election timeout")
	require.Equal(t, int64(1), nw.leader())
	require.NoError(t, nw.propose(1, "accepted"))
	require.Equal(t, []string{"accepted"}, nw.nodes[1].appliedData())
}

// A transfer is refused on a follower, to a learner and to a non-member;
// to the leader itself it is done at once.
func TestTransferRefusals(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.addNode(4, []int64{1, 2, 3}, Learners(4))
	for _, id := range []int64{1, 2, 3} {
		nw.nodes[id].rn = NewRawNode(id, []int64{1, 2, 3}, 10, 1, Learners(4), Seed(uint64(id)))
	}
	nw.campaign(1)
	require.ErrorIs(t, nw.nodes[2].rn.TransferLeadership(3), ErrNotLeader)
	require.ErrorIs(t, nw.nodes[1].rn.TransferLeadership(4), ErrTransferRefused, "a learner")
	require.ErrorIs(t, nw.nodes[1].rn.TransferLeadership(9), ErrTransferRefused, "not a member")
	require.NoError(t, nw.nodes[1].rn.TransferLeadership(1))
	require.Equal(t, None, nw.nodes[1].rn.raft.leadTransferee)
	require.NoError(t, nw.propose(1, "still leading"))
}

// The transferee campaigns only once it has applied its committed config
// entries (no campaign on a stale membership, even when asked to).
func TestTransfereeWaitsForUnappliedConfig(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	d.frozen[2] = true // node 2's application takes no Ready
	require.NoError(t, d.configure(1, configData("reject", 0)))
	d.frozen[2] = false
	n2 := d.nodes[2]
	require.True(t, n2.rn.HasReady())
	// Node 2's application takes the Ready that hands out the committed
	// config entry, and has not finished with it yet.
	rd := n2.rn.Ready()
	require.Equal(t, EntryConfig, rd.CommittedEntries[len(rd.CommittedEntries)-1].Type)
	n2.disk.save(rd)
	for _, e := range rd.CommittedEntries {
		d.apply(n2, e)
		d.sms[2].apply(e)
	}
	d.queue = append(d.queue, rd.Messages...)
	require.NoError(t, d.nodes[1].rn.TransferLeadership(2))
	for d.nodes[1].rn.raft.leadTransferee == 2 && !n2.rn.raft.campaignRequested {
		require.True(t, d.deliver() || d.process(d.nodes[1]) || d.process(d.nodes[3]), "no MsgTimeoutNow reached node 2")
	}
	require.True(t, n2.rn.raft.campaignRequested)
	require.Equal(t, StateFollower, n2.rn.raft.state, "campaigned with a config entry not applied")
	n2.rn.Advance() // the rejected change is settled
	require.Equal(t, StateCandidate, n2.rn.raft.state, "campaigns once the entry is applied")
	d.stabilize()
	require.Equal(t, int64(2), d.leader())
}

// Vote requests of an election the leader asked for carry the mark that
// lets followers in their lease answer them; ordinary ones do not.
func TestForcedCampaignMark(t *testing.T) {
	require.True(t, forcedCampaign(raftpb.Message{Type: raftpb.MsgVote, Context: campaignTransfer}))
	require.False(t, forcedCampaign(raftpb.Message{Type: raftpb.MsgVote}))
	require.False(t, forcedCampaign(raftpb.Message{Type: raftpb.MsgPreVote, Context: campaignTransfer}))
}

// Once a transferee was told to campaign, a transfer to another node is
// refused (two forced elections would compete); and a transferee that
// could not campaign within an election timeout forgets the request.
func TestTransferNoOverlapAndRequestExpires(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	nw.drop = func(m raftpb.Message) bool { return m.Type == raftpb.MsgTimeoutNow }
	require.NoError(t, nw.nodes[1].rn.TransferLeadership(2))
	nw.stabilize()
	require.True(t, nw.nodes[1].rn.raft.timeoutNowSent)
	require.ErrorIs(t, nw.nodes[1].rn.TransferLeadership(3), ErrTransferRefused)

	// Node 2 got the request but may not campaign: as if a committed
	// config entry were not applied yet.
	r2 := nw.nodes[2].rn.raft
	r2.campaignRequested, r2.campaignRequestedAt = true, r2.ticks
	r2.confApplied = -1
	r2.log.confIndexes = append(r2.log.confIndexes, 1)
	require.ErrorIs(t, r2.campaignBlocker(), ErrCannotCampaign)
	term := r2.term
	for range 10 {
		nw.nodes[2].rn.Tick()
	}
	require.False(t, r2.campaignRequested, "the request outlived an election timeout")
	require.Equal(t, term, r2.term, "node 2 campaigned")
}
