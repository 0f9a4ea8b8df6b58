package raft

import (
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// splitSeen records, for each Ready handed out, what SplitMessages lets
// go before persisting and after.
type splitSeen struct {
	id                  int64
	state               StateType
	termChanged         bool
	early, afterPersist []raftpb.Message
}

func watchSplits(nw *network) *[]splitSeen {
	var seen []splitSeen
	states := map[int64]StateType{}
	terms := map[int64]int64{}
	nw.observe = func(id int64, rd Ready) {
		if rd.SoftState != nil {
			states[id] = rd.RaftState
		}
		s := splitSeen{id: id, state: states[id]}
		if !IsEmptyHardState(rd.State) {
			s.termChanged = rd.State.Term != terms[id]
			terms[id] = rd.State.Term
		}
		s.early, s.afterPersist = rd.SplitMessages()
		require.Equal(nw.t, len(rd.Messages), len(s.early)+len(s.afterPersist))
		seen = append(seen, s)
	}
	return &seen
}

// Only a leader's appends, heartbeats, snapshots and read-index answers
// leave early; a follower's and a candidate's messages all wait.
func TestSplitMessagesLeaderAppendsOnly(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	seen := watchSplits(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "x"))
	nw.stabilize()
	leaderAppends := []raftpb.MessageType{raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap, raftpb.MsgReadIndexResp}
	var leaderEarly int
	for _, s := range *seen {
		for _, m := range s.early {
			require.Equal(t, StateLeader, s.state, "node %x sent %s early", s.id, m.Type)
			require.Contains(t, leaderAppends, m.Type, "node %x sent %s early", s.id, m.Type)
			leaderEarly++
		}
		if s.state == StateLeader {
			for _, m := range s.afterPersist {
				require.NotContains(t, leaderAppends, m.Type, "leader %x kept %s until persisted", s.id, m.Type)
			}
		}
	}
	require.Positive(t, leaderEarly)
}

// A Ready that changes the leader's term or vote keeps all its messages
// until persisted: a single voter elects itself and appends in one Ready,
// and only its next Ready's appends to its learner may leave early.
func TestSplitMessagesWaitForANewTerm(t *testing.T) {
	nw := newNetwork(t, nil)
	nw.addNode(1, []int64{1}, Learners(2))
	nw.addNode(2, []int64{1}, Learners(2))
	seen := watchSplits(nw)
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "x"))
	nw.stabilize()
	var newTerm, sameTerm int
	for _, s := range *seen {
		if s.id != 1 || s.state != StateLeader || len(s.early)+len(s.afterPersist) == 0 {
			continue
		}
		if s.termChanged {
			newTerm++
			require.Empty(t, s.early)
		} else {
			sameTerm++
			require.NotEmpty(t, s.early)
		}
	}
	require.Equal(t, 1, newTerm)
	require.Positive(t, sameTerm)
}

// Messages of both kinds keep their order within each part.
func TestSplitMessagesKeepsOrder(t *testing.T) {
	msgs := []raftpb.Message{
		{Type: raftpb.MsgApp, To: 2, Index: 1},
		{Type: raftpb.MsgVoteResp, To: 3, Reject: true},
		{Type: raftpb.MsgHeartbeat, To: 3},
		{Type: raftpb.MsgTimeoutNow, To: 2},
		{Type: raftpb.MsgApp, To: 2, Index: 2},
	}
	early, after := Ready{Messages: msgs, keepsTermAndVote: true}.SplitMessages()
	require.Equal(t, []raftpb.Message{msgs[0], msgs[2], msgs[4]}, early)
	require.Equal(t, []raftpb.Message{msgs[1], msgs[3]}, after)
	early, after = Ready{Messages: msgs}.SplitMessages()
	require.Empty(t, early)
	require.Equal(t, msgs, after)
}
