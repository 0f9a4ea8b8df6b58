package raft

import (
	"maps"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Tests of linearizable reads: ReadIndex, ReadStates, the confirmation
// round and the lease.

// readStates collects the ReadStates each node hands out.
func readStates(nw *network) map[int64][]ReadState {
	got := map[int64][]ReadState{}
	nw.observe = func(id int64, rd Ready) { got[id] = append(got[id], rd.ReadStates...) }
	return got
}

func readIndexes(states []ReadState) map[string]int64 {
	out := map[string]int64{}
	for _, s := range states {
		out[string(s.RequestCtx)] = s.Index
	}
	return out
}

// A read on the leader is answered only after a quorum acknowledged a
// round of heartbeats that went out after the read arrived, with the
// leader's commit index.
func TestReadIndexNeedsAConfirmedRound(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	commit := nw.nodes[1].rn.raft.log.committed

	require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("r1")))
	rd := nw.nodes[1].rn.Ready()
	require.Empty(t, rd.ReadStates, "answered before any heartbeat was acknowledged")
	var rounds int
	for _, m := range rd.Messages {
		if m.Type == raftpb.MsgHeartbeat {
			rounds++
		}
	}
	require.Equal(t, 2, rounds, "one heartbeat to each follower")
	nw.queue = append(nw.queue, rd.Messages...)
	nw.nodes[1].rn.Advance()
	nw.stabilize()
	require.Equal(t, map[string]int64{"r1": commit}, readIndexes(got[1]))
}

// With no quorum to confirm it, a read is never answered.
func TestReadIndexUnansweredWithoutQuorum(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	nw.isolate(1)
	require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("r")))
	nw.tick(5)
	require.Empty(t, got[1])
}

// A new leader answers reads only once it has committed an entry of its
// own term: its commit index may lag what the previous leader committed.
func TestReadIndexWaitsForTheLeadersFirstCommit(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3}, WithoutCheckQuorum())
	got := readStates(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.crash(1)
	require.NoError(t, nw.nodes[2].rn.Campaign())
	// Run nodes 2 and 3 until node 2 wins, before anybody acknowledged
	// its empty entry.
	r2 := nw.nodes[2].rn.raft
	for i := 0; r2.state != StateLeader; i++ {
		require.Less(t, i, 20, "node 2 never wins")
		nw.process(nw.nodes[2])
		nw.process(nw.nodes[3])
		nw.deliver()
	}
	require.NotEqual(t, r2.term, r2.log.termOrZero(r2.log.committed))
	require.NoError(t, nw.nodes[2].rn.ReadIndex([]byte("r")))
	nw.process(nw.nodes[2])
	require.Empty(t, got[2], "answered before committing an entry of its term")
	nw.stabilize()
	require.Len(t, got[2], 1)
	require.Equal(t, r2.term, r2.log.termOrZero(got[2][0].Index), "the read index covers the new leader's entry")
}

// A follower's read goes to the leader, and comes back with the leader's
// commit index.
func TestReadIndexOnFollowerIsForwarded(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	require.NoError(t, nw.nodes[3].rn.ReadIndex([]byte("f")))
	nw.stabilize()
	require.Equal(t, map[string]int64{"f": nw.nodes[1].rn.raft.log.committed}, readIndexes(got[3]))
	require.Empty(t, got[1])
}

// A second read with a request context still in flight is refused; once
// answered, the context may be used again. With no leader known, a read
// is refused.
func TestReadIndexRefusals(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	require.ErrorIs(t, nw.nodes[2].rn.ReadIndex([]byte("x")), ErrReadDropped, "no leader known")
	got := readStates(nw)
	nw.campaign(1)
	rn := nw.nodes[2].rn
	require.NoError(t, rn.ReadIndex([]byte("x")))
	require.ErrorIs(t, rn.ReadIndex([]byte("x")), ErrReadInFlight)
	require.NoError(t, rn.ReadIndex([]byte("y")), "another context")
	nw.stabilize()
	require.Len(t, got[2], 2)
	require.NoError(t, rn.ReadIndex([]byte("x")), "answered: the context is free again")
}

// Reads that arrive together share one round; a read that arrives while a
// round is in flight waits for the next one.
func TestReadsShareRounds(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	lead := nw.nodes[1]
	for _, rctx := range []string{"a", "b", "c"} {
		require.NoError(t, lead.rn.ReadIndex([]byte(rctx)))
	}
	first := lead.rn.Ready()
	lead.rn.Advance()
	require.NoError(t, lead.rn.ReadIndex([]byte("late")))
	nw.queue = append(nw.queue, first.Messages...)
	// Deliver the first round's heartbeats and their answers, and nothing
	// else yet.
	nw.deliver()
	for _, id := range []int64{2, 3} {
		nw.process(nw.nodes[id])
	}
	nw.deliver()
	rd := lead.rn.Ready()
	require.ElementsMatch(t, []string{"a", "b", "c"}, slices.Collect(maps.Keys(readIndexes(rd.ReadStates))), "the first round answers the reads before it")
	heartbeats := 0
	for _, m := range rd.Messages {
		if m.Type == raftpb.MsgHeartbeat {
			heartbeats++
		}
	}
	require.Equal(t, 2, heartbeats, "the next round starts at once for the late read")
	nw.queue = append(nw.queue, rd.Messages...)
	lead.rn.Advance()
	nw.stabilize()
	require.Contains(t, readIndexes(got[1]), "late")
}

// A read pending at a leader that is deposed is never answered, so that
// it cannot return an index older than what the new leader committed.
func TestReadAcrossLeaderChangeIsNeverStale(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	nw.isolate(1)
	require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("old")))
	nw.stabilize()
	nw.tick(25)
	newLeader := nw.leader()
	require.NotEqual(t, int64(1), newLeader)
	require.NoError(t, nw.propose(newLeader, "b"))
	nw.heal()
	nw.tick(3)
	require.Empty(t, got[1], "the deposed leader answered a read")
	require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("old")), "the read was given up, its context is free")
	nw.stabilize()
	require.Equal(t, nw.nodes[newLeader].rn.raft.log.committed, readIndexes(got[1])["old"])
}

// With LeaseReads, a leader that a quorum answered recently answers a read
// at once; without fresh answers (cut off), it falls back to a round and
// answers nothing; after asking a follower to campaign (a transfer), it
// holds no lease.
func TestLeaseReads(t *testing.T) {
	t.Run("no vote nor campaign in the first election timeout", func(t *testing.T) {
		nw := newNetwork(t, []int64{1, 2, 3}, LeaseReads())
		require.ErrorIs(t, nw.nodes[1].rn.Campaign(), ErrCannotCampaign)
		nw.nodes[1].rn.raft.campaign(campaignElection) // as if it had not started just now
		nw.stabilize()
		require.Equal(t, None, nw.leader(), "voters that just started granted votes")
	})
	t.Run("a follower keeps its promise whatever its role", func(t *testing.T) {
		// Node 3 loses its lease on leader 1; node 2 answered 1 a moment
		// ago. Cut off from 1, node 2 must not start an election that 3
		// would grant: 1 still answers reads from its lease.
		nw := leaseLeader(t)
		nw.cut[link{1, 3}], nw.cut[link{3, 1}] = true, true
		for range 10 {
			for _, id := range []int64{1, 2, 3} {
				nw.nodes[id].rn.Tick()
			}
			nw.stabilize()
		}
		nw.isolate(1)
		require.ErrorIs(t, nw.nodes[2].rn.Campaign(), ErrCannotCampaign)
		nw.stabilize()
		require.Equal(t, int64(1), nw.leader())
		nw.tick(30) // the promise runs out: 2 or 3 is elected
		require.NotEqual(t, int64(1), nw.nodes[2].rn.raft.lead)
	})
	t.Run("answered at once", func(t *testing.T) {
		nw := leaseLeader(t)
		nw.tick(2) // heartbeats answered: the lease starts
		lead := nw.nodes[1]
		require.NoError(t, lead.rn.ReadIndex([]byte("r")))
		rd := lead.rn.Ready()
		require.Equal(t, []ReadState{{Index: lead.rn.raft.log.committed, RequestCtx: []byte("r")}}, rd.ReadStates)
		lead.rn.Advance()
	})
	t.Run("lease runs out when cut off", func(t *testing.T) {
		nw := leaseLeader(t)
		got := readStates(nw)
		nw.tick(2)
		nw.isolate(1)
		nw.tick(9) // an election timeout less the drift margin
		require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("r")))
		nw.stabilize()
		require.Empty(t, got[1], "answered without a lease")
	})
	t.Run("no lease after a transfer began", func(t *testing.T) {
		nw := leaseLeader(t)
		got := readStates(nw)
		nw.tick(2)
		nw.drop = func(m raftpb.Message) bool { return m.Type == raftpb.MsgTimeoutNow }
		require.NoError(t, nw.nodes[1].rn.TransferLeadership(2))
		nw.stabilize()
		require.True(t, nw.nodes[1].rn.raft.leaseRevoked)
		nw.isolate(1)
		require.NoError(t, nw.nodes[1].rn.ReadIndex([]byte("r")))
		nw.stabilize()
		require.Empty(t, got[1])
	})
	t.Run("needs check-quorum", func(t *testing.T) {
		require.PanicsWithValue(t, "raft: LeaseReads needs check-quorum, which WithoutCheckQuorum turned off: the lease rests on it",
			func() { NewRawNode(1, nil, 10, 1, LeaseReads(), WithoutCheckQuorum()) })
	})
}

// leaseLeader returns a 3-node cluster with LeaseReads led by node 1: its
// nodes vote only once their first election timeout has passed.
func leaseLeader(t *testing.T) *network {
	nw := newNetwork(t, []int64{1, 2, 3}, LeaseReads())
	for i := 0; nw.leader() == None; i++ {
		require.Less(t, i, 40, "no leader elected")
		nw.tick(1)
	}
	if lead := nw.leader(); lead != 1 {
		require.NoError(t, nw.nodes[lead].rn.TransferLeadership(1))
		nw.stabilize()
	}
	require.Equal(t, int64(1), nw.leader())
	return nw
}

// A read given up (its answer was late) may be asked again with the same
// request context; the late answer to the first attempt is not taken for
// the second's: its index predates a write that completed since.
func TestReadLateAnswerToAnEarlierAttemptIsIgnored(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	var late []raftpb.Message
	nw.drop = func(m raftpb.Message) bool {
		if m.Type == raftpb.MsgReadIndexResp {
			late = append(late, m)
			return true
		}
		return false
	}
	require.NoError(t, nw.nodes[2].rn.ReadIndex([]byte("x")))
	nw.stabilize()
	require.Len(t, late, 1)
	nw.tick(2 * 10) // node 2 gives the read up
	require.NoError(t, nw.propose(1, "w"))
	nw.drop = nil
	require.NoError(t, nw.nodes[2].rn.ReadIndex([]byte("x")), "given up: the context is free")
	require.NoError(t, nw.nodes[2].rn.Step(late[0]))
	nw.process(nw.nodes[2])
	require.Empty(t, got[2], "the late answer was taken for the new attempt")
	nw.stabilize()
	require.Equal(t, map[string]int64{"x": nw.nodes[1].rn.raft.log.committed}, readIndexes(got[2]))
	require.GreaterOrEqual(t, got[2][0].Index, nw.nodes[1].appliedIndex, "the read sees the write")
}

// A read that arrives after its round started, but before the round's
// heartbeats were handed out, joins that round (a Node assembles its Ready
// before the application takes it).
func TestReadJoinsARoundNotYetHandedOut(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	got := readStates(nw)
	nw.campaign(1)
	lead := nw.nodes[1].rn
	require.NoError(t, lead.ReadIndex([]byte("a")))
	lead.readyWithoutAccept() // the round starts, as in a Node's loop
	require.NoError(t, lead.ReadIndex([]byte("b")))
	nw.stabilize()
	require.Len(t, got[1], 2)
	require.Equal(t, uint64(1), lead.raft.reads.sent, "one round for both")
}
