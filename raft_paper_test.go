package raft

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// One test per rule of the Raft paper ("In Search of an Understandable
// Consensus Algorithm", extended version), named after the rule, driving the
// pure core (RawNode and the raft state machine under it) one message or
// tick at a time. Section numbers refer to the paper; "thesis" refers to
// Ongaro's dissertation where a rule (pre-vote, check-quorum) comes from it.

// Helpers.

// paperEnts returns entries at indexes 1, 2, ... with the given terms.
func paperEnts(terms ...int64) []raftpb.Entry {
	ents := make([]raftpb.Entry, len(terms))
	for i, term := range terms {
		ents[i] = raftpb.Entry{Term: term, Index: int64(i + 1)}
	}
	return ents
}

// paperNode restarts node id of a cluster of voters from a persisted log
// with the given entry terms, at term, with nothing committed.
func paperNode(id int64, voters []int64, term int64, terms []int64, opts ...Option) *RawNode {
	opts = append([]Option{Seed(uint64(id))}, opts...)
	return RestartRawNode(id, voters, 10, 1, nil, raftpb.HardState{Term: term}, paperEnts(terms...), opts...)
}

// paperTake runs the documented loop on rn until it has no Ready (the
// storage is the RawNode's own) and returns every message to send.
func paperTake(rn *RawNode) []raftpb.Message {
	var msgs []raftpb.Message
	for rn.HasReady() {
		rd := rn.Ready()
		msgs = append(msgs, rd.Messages...)
		rn.Advance()
	}
	return msgs
}

// paperLeader makes node 1 of voters, restarted from a log with the given
// entry terms at term, the leader of term+1 (an election without pre-vote,
// won with the votes of the other voters in order), and takes its Readys.
func paperLeader(t *testing.T, voters []int64, term int64, terms []int64, opts ...Option) *RawNode {
	t.Helper()
	rn := paperNode(1, voters, term, terms, append([]Option{WithoutPreVote()}, opts...)...)
	require.NoError(t, rn.Campaign())
	for _, id := range voters {
		if id != 1 && rn.raft.state != StateLeader {
			require.NoError(t, rn.Step(raftpb.Message{From: id, To: 1, Type: raftpb.MsgVoteResp, Term: rn.raft.term}))
		}
	}
	require.Equal(t, StateLeader, rn.raft.state)
	require.Equal(t, term+1, rn.raft.term)
	paperTake(rn)
	return rn
}

// paperLogTerms returns the terms of the entries of rn's log, from its
// first index on.
func paperLogTerms(t *testing.T, rn *RawNode) []int64 {
	t.Helper()
	l := rn.raft.log
	ents, err := l.slice(l.firstIndex(), l.lastIndex()+1, 0)
	require.NoError(t, err)
	terms := make([]int64, len(ents))
	for i, e := range ents {
		require.Equal(t, l.firstIndex()+int64(i), e.Index, "log index")
		terms[i] = e.Term
	}
	return terms
}

// paperSelect returns the messages of type typ (to is None for any recipient).
func paperSelect(msgs []raftpb.Message, typ raftpb.MessageType, to int64) []raftpb.Message {
	var out []raftpb.Message
	for _, m := range msgs {
		if m.Type == typ && (to == None || m.To == to) {
			out = append(out, m)
		}
	}
	return out
}

// paperNetwork is a cluster (the harness of cluster_test.go) whose nodes
// restart from persisted logs with the given entry terms, all at term, with
// nothing committed.
func paperNetwork(t *testing.T, term int64, logs map[int64][]int64, opts ...Option) *network {
	ids := slices.Sorted(maps.Keys(logs))
	nw := newNetwork(t, ids, opts...)
	for _, id := range ids {
		n := nw.nodes[id]
		hs := raftpb.HardState{Term: term}
		ents := paperEnts(logs[id]...)
		n.rn = RestartRawNode(id, ids, 10, 1, nil, hs, slices.Clone(ents), n.opts...)
		n.disk = testDisk{hs: hs, ents: ents}
	}
	return nw
}

// §5.1 Terms.

// §5.1: "If a server's current term is smaller than the other's, it updates
// its current term to the larger value. If a candidate or leader discovers
// that its term is out of date, it immediately reverts to follower state."
// The new term reaches the HardState of the next Ready.
func TestHigherTermMakesFollowerOfAnyState(t *testing.T) {
	states := []struct {
		name  string
		setup func(r *raft)
	}{
		{"follower", func(r *raft) {}},
		{"pre-candidate", func(r *raft) { r.becomePreCandidate() }},
		{"candidate", func(r *raft) { r.becomeCandidate() }},
		{"leader", func(r *raft) { r.becomeCandidate(); r.becomeLeader() }},
	}
	const higher = 5
	msgs := []struct {
		m        raftpb.Message
		wantLead int64 // a message only a leader sends names the leader
		wantVote int64
	}{
		{m: raftpb.Message{Type: raftpb.MsgApp, Index: 2, LogTerm: 2}, wantLead: 2},
		{m: raftpb.Message{Type: raftpb.MsgHeartbeat}, wantLead: 2},
		{m: raftpb.Message{Type: raftpb.MsgVote, Index: 10, LogTerm: 4}, wantVote: 2},
		{m: raftpb.Message{Type: raftpb.MsgAppResp, Index: 2}},
		{m: raftpb.Message{Type: raftpb.MsgHeartbeatResp}},
		{m: raftpb.Message{Type: raftpb.MsgVoteResp, Reject: true}},
		{m: raftpb.Message{Type: raftpb.MsgPreVoteResp, Reject: true}},
	}
	for _, st := range states {
		for _, tc := range msgs {
			t.Run(st.name+"/"+tc.m.Type.String(), func(t *testing.T) {
				// Check-quorum's lease (tested on its own below) would make a
				// leader ignore a vote request; it is off so that the term
				// rule is seen alone.
				rn := paperNode(1, []int64{1, 2, 3}, 2, []int64{1, 2}, WithoutCheckQuorum())
				st.setup(rn.raft)
				paperTake(rn)
				require.Less(t, rn.raft.term, int64(higher))

				m := tc.m
				m.From, m.To, m.Term = 2, 1, higher
				require.NoError(t, rn.Step(m))

				r := rn.raft
				require.Equal(t, StateFollower, r.state)
				require.Equal(t, int64(higher), r.term)
				require.Equal(t, tc.wantLead, r.lead)
				require.Equal(t, tc.wantVote, r.vote)
				require.True(t, rn.HasReady())
				rd := rn.Ready()
				require.Equal(t, int64(higher), rd.State.Term, "the new term is handed out to be persisted")
				require.Equal(t, tc.wantVote, rd.State.Vote)
				rn.Advance()
			})
		}
	}
}

// §5.1: "If a server receives a request with a stale term number, it
// rejects the request." A stale request changes nothing; a stale leader's
// append is answered with the current term so that it steps down, and a
// stale response is not counted.
func TestStaleTermMessageIsIgnored(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(r *raft)
		m        raftpb.Message
		wantResp raftpb.MessageType // answered with the current term; MsgHup: not answered
	}{
		{"follower/MsgApp", func(r *raft) {},
			raftpb.Message{Type: raftpb.MsgApp, Index: 3, LogTerm: 2, Commit: 4, Entries: []raftpb.Entry{{Index: 4, Term: 2}}},
			raftpb.MsgAppResp},
		{"follower/MsgHeartbeat", func(r *raft) {},
			raftpb.Message{Type: raftpb.MsgHeartbeat, Commit: 3}, raftpb.MsgAppResp},
		{"follower/MsgVote", func(r *raft) {},
			raftpb.Message{Type: raftpb.MsgVote, Index: 9, LogTerm: 2}, raftpb.MsgVoteResp},
		{"follower/MsgPreVote", func(r *raft) {},
			raftpb.Message{Type: raftpb.MsgPreVote, Index: 9, LogTerm: 2}, raftpb.MsgPreVoteResp},
		// With three voters one more grant would win: a stale one must not.
		{"candidate/MsgVoteResp", func(r *raft) { r.becomeCandidate() },
			raftpb.Message{Type: raftpb.MsgVoteResp}, raftpb.MsgHup},
		{"leader/MsgAppResp", func(r *raft) { r.becomeCandidate(); r.becomeLeader() },
			raftpb.Message{Type: raftpb.MsgAppResp, Index: 4}, raftpb.MsgHup},
		{"leader/MsgHeartbeat", func(r *raft) { r.becomeCandidate(); r.becomeLeader() },
			raftpb.Message{Type: raftpb.MsgHeartbeat}, raftpb.MsgAppResp},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := paperNode(1, []int64{1, 2, 3}, 3, []int64{1, 1, 2})
			rn.raft.log.commitTo(1)
			tc.setup(rn.raft)
			paperTake(rn)
			r := rn.raft
			term, state, vote, commit := r.term, r.state, r.vote, r.log.committed
			logTerms := paperLogTerms(t, rn)
			var match2 int64
			if state == StateLeader {
				match2 = r.prs[2].Match
			}

			m := tc.m
			m.From, m.To, m.Term = 2, 1, term-1
			require.NoError(t, rn.Step(m))

			require.Equal(t, term, r.term)
			require.Equal(t, state, r.state)
			require.Equal(t, vote, r.vote)
			require.Equal(t, commit, r.log.committed)
			require.Equal(t, logTerms, paperLogTerms(t, rn))
			if state == StateLeader {
				require.Equal(t, match2, r.prs[2].Match, "a stale acknowledgement is not counted")
			}
			out := paperTake(rn)
			for _, o := range out {
				require.False(t, (o.Type == raftpb.MsgVoteResp || o.Type == raftpb.MsgPreVoteResp) && !o.Reject,
					"a stale request is granted: %s", DescribeMessage(o))
			}
			if tc.wantResp == raftpb.MsgHup {
				require.Empty(t, out)
				return
			}
			require.Len(t, out, 1)
			require.Equal(t, tc.wantResp, out[0].Type)
			require.Equal(t, int64(2), out[0].To)
			require.Equal(t, term, out[0].Term, "the answer carries the current term")
		})
	}
}

// §5.1 holds without pre-vote and check-quorum too: a node whose term rose
// where the leader could not hear of it (its campaigns reach only the
// members of a stale membership) answers the leader's stale messages with
// its term, and a stale candidate learns the term as well. Otherwise
// neither ever learns of the other (found by rafttest, plain-Raft seeds).
func TestStaleTermIsAnsweredWithoutPreVoteAndCheckQuorum(t *testing.T) {
	for _, m := range []raftpb.Message{
		{Type: raftpb.MsgApp, Index: 3, LogTerm: 2, Commit: 4, Entries: []raftpb.Entry{{Index: 4, Term: 2}}},
		{Type: raftpb.MsgHeartbeat, Commit: 3},
		{Type: raftpb.MsgVote, Index: 9, LogTerm: 2},
	} {
		rn := paperNode(1, []int64{1, 2, 3}, 3, []int64{1, 1, 2}, WithoutPreVote(), WithoutCheckQuorum())
		paperTake(rn)
		m.From, m.To, m.Term = 2, 1, 2
		require.NoError(t, rn.Step(m))
		out := paperTake(rn)
		require.Len(t, out, 1, "%s", m.Type)
		require.Equal(t, int64(3), out[0].Term, "%s: the answer carries the current term", m.Type)
		require.False(t, out[0].Type == raftpb.MsgVoteResp && !out[0].Reject)
	}
}

// §5.1: a leader cut off while the others elect a new leader learns the
// higher term as soon as it hears from them again, and steps down.
// Check-quorum is off so that only the term rule can make it step down.
func TestStaleLeaderStepsDownOnHigherTerm(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3}, WithoutCheckQuorum())
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "before"))
	oldTerm := nw.nodes[1].rn.raft.term

	nw.isolate(1)
	nw.tick(40)
	r1 := nw.nodes[1].rn.raft
	require.Equal(t, StateLeader, r1.state, "without check-quorum the cut-off leader keeps leading")
	var newLead int64
	for _, id := range []int64{2, 3} {
		if nw.nodes[id].rn.raft.state == StateLeader {
			newLead = id
		}
	}
	require.NotZero(t, newLead)
	newTerm := nw.nodes[newLead].rn.raft.term
	require.Greater(t, newTerm, oldTerm)

	nw.heal()
	nw.tick(1)
	require.Equal(t, StateFollower, r1.state)
	require.Equal(t, newTerm, r1.term)
	require.Equal(t, newLead, nw.leader())
	require.NoError(t, nw.propose(newLead, "after"))
	require.Equal(t, []string{"before", "after"}, nw.nodes[1].appliedData())
}

// §5.2 Leader election.

// §5.2: "If a follower receives no communication over a period of time
// called the election timeout, then it ... begins an election", with the
// timeout "chosen randomly from a fixed interval": here [election,
// 2*election) ticks. Over many seeds the timeout never leaves the interval
// and takes every value in it.
func TestFollowerCampaignsAfterRandomizedTimeout(t *testing.T) {
	for _, election := range []int{2, 10} {
		t.Run(fmt.Sprint(election), func(t *testing.T) {
			seen := map[int]int{}
			for seed := uint64(0); seed < 400; seed++ {
				rn := NewRawNode(1, []int64{2, 3}, election, 1, Seed(seed))
				ticks := 0
				for rn.raft.state == StateFollower {
					require.Less(t, ticks, 2*election, "seed %d: no campaign within 2*election ticks", seed)
					rn.Tick()
					ticks++
				}
				require.Less(t, ticks, 2*election, "seed %d: campaigned after 2*election ticks", seed)
				require.GreaterOrEqual(t, ticks, election, "seed %d: campaigned before the election timeout", seed)
				require.Equal(t, StatePreCandidate, rn.raft.state)
				require.Len(t, paperSelect(paperTake(rn), raftpb.MsgPreVote, None), 2)
				seen[ticks]++
			}
			for ticks := election; ticks < 2*election; ticks++ {
				require.NotZero(t, seen[ticks], "no seed times out after %d ticks: %v", ticks, seen)
			}
		})
	}
}

// §5.2: "each candidate restarts its randomized election timeout at the
// start of an election, and it waits for that timeout to elapse before
// starting the next election". A candidate that hears nothing starts a new
// election of the next term after a fresh random timeout each time.
func TestCandidateStartsNewElectionAfterRandomizedTimeout(t *testing.T) {
	const election = 10
	rn := NewRawNode(1, []int64{2, 3}, election, 1, Seed(7), WithoutPreVote())
	require.NoError(t, rn.Campaign())
	paperTake(rn)
	seen := map[int]int{}
	for round := 0; round < 300; round++ {
		term := rn.raft.term
		ticks := 0
		for rn.raft.term == term {
			require.Less(t, ticks, 2*election, "round %d: no new election within 2*election ticks", round)
			rn.Tick()
			ticks++
		}
		require.Less(t, ticks, 2*election, "round %d: new election after 2*election ticks", round)
		require.GreaterOrEqual(t, ticks, election, "round %d: new election before the election timeout", round)
		require.Equal(t, StateCandidate, rn.raft.state)
		require.Equal(t, term+1, rn.raft.term)
		votes := paperSelect(paperTake(rn), raftpb.MsgVote, None)
		require.Len(t, votes, 2)
		require.Equal(t, term+1, votes[0].Term)
		seen[ticks]++
	}
	for ticks := election; ticks < 2*election; ticks++ {
		require.NotZero(t, seen[ticks], "no round times out after %d ticks: %v", ticks, seen)
	}
}

// §5.2: "A server remains in follower state as long as it receives valid
// RPCs from a leader or candidate."
func TestFollowerHearingFromLeaderDoesNotCampaign(t *testing.T) {
	rn := NewRawNode(2, []int64{1, 3}, 10, 1, Seed(2))
	for tick := 1; tick <= 200; tick++ {
		if tick%9 == 0 {
			require.NoError(t, rn.Step(raftpb.Message{From: 1, To: 2, Type: raftpb.MsgHeartbeat, Term: 1}))
		}
		rn.Tick()
		require.Equal(t, StateFollower, rn.raft.state, "tick %d", tick)
	}
	require.Equal(t, int64(1), rn.raft.term)
	require.Empty(t, paperSelect(paperTake(rn), raftpb.MsgPreVote, None))
}

// §5.2: a candidate "wins an election if it receives votes from a majority
// of the servers in the full cluster for the same term"; it returns to
// follower once a majority rejected it (it cannot win any more); one vote
// per voter counts, and a learner's does not. With pre-vote (thesis §9.6) a
// won pre-vote round starts the real election at term+1, a lost one
// returns to follower with the term unchanged.
func TestCandidateElectionOutcome(t *testing.T) {
	tests := []struct {
		name      string
		voters    []int64
		learners  []int64
		pre       bool
		grants    []int64 // in order, before the rejections
		rejects   []int64
		wantState StateType
		wantTerm  int64 // relative to the term before campaigning
	}{
		{"1 voter", []int64{1}, nil, false, nil, nil, StateLeader, 1},
		{"1 voter/pre", []int64{1}, nil, true, nil, nil, StateLeader, 1},
		{"3/no answer", []int64{1, 2, 3}, nil, false, nil, nil, StateCandidate, 1},
		{"3/1 grant", []int64{1, 2, 3}, nil, false, []int64{2}, nil, StateLeader, 1},
		{"3/1 reject", []int64{1, 2, 3}, nil, false, nil, []int64{2}, StateCandidate, 1},
		{"3/2 rejects", []int64{1, 2, 3}, nil, false, nil, []int64{2, 3}, StateFollower, 1},
		{"5/1 grant", []int64{1, 2, 3, 4, 5}, nil, false, []int64{2}, nil, StateCandidate, 1},
		{"5/2 grants", []int64{1, 2, 3, 4, 5}, nil, false, []int64{2, 3}, nil, StateLeader, 1},
		{"5/same voter twice", []int64{1, 2, 3, 4, 5}, nil, false, []int64{2, 2}, nil, StateCandidate, 1},
		{"5/learner's grant", []int64{1, 2, 3, 4, 5}, []int64{6}, false, []int64{2, 6}, nil, StateCandidate, 1},
		{"2/learners' grants", []int64{1, 2}, []int64{3, 4}, false, []int64{3, 4}, nil, StateCandidate, 1},
		{"5/2 rejects", []int64{1, 2, 3, 4, 5}, nil, false, nil, []int64{2, 3}, StateCandidate, 1},
		{"5/3 rejects", []int64{1, 2, 3, 4, 5}, nil, false, nil, []int64{2, 3, 4}, StateFollower, 1},
		{"5/2 grants 2 rejects", []int64{1, 2, 3, 4, 5}, nil, false, []int64{2, 3}, []int64{4, 5}, StateLeader, 1},
		{"3/pre/1 grant", []int64{1, 2, 3}, nil, true, []int64{2}, nil, StateCandidate, 1},
		{"3/pre/no answer", []int64{1, 2, 3}, nil, true, nil, nil, StatePreCandidate, 0},
		{"3/pre/2 rejects", []int64{1, 2, 3}, nil, true, nil, []int64{2, 3}, StateFollower, 0},
		{"5/pre/2 grants", []int64{1, 2, 3, 4, 5}, nil, true, []int64{2, 3}, nil, StateCandidate, 1},
		{"5/pre/3 rejects", []int64{1, 2, 3, 4, 5}, nil, true, nil, []int64{2, 3, 4}, StateFollower, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []Option{Seed(1), Learners(tc.learners...)}
			if !tc.pre {
				opts = append(opts, WithoutPreVote())
			}
			rn := RestartRawNode(1, tc.voters, 10, 1, nil, raftpb.HardState{Term: 3}, paperEnts(1, 2, 3), opts...)
			require.NoError(t, rn.Campaign())
			typ, term := raftpb.MsgVoteResp, rn.raft.term
			if tc.pre {
				typ, term = raftpb.MsgPreVoteResp, rn.raft.term+1
			}
			for _, id := range tc.grants {
				require.NoError(t, rn.Step(raftpb.Message{From: id, To: 1, Type: typ, Term: term}))
			}
			for _, id := range tc.rejects {
				require.NoError(t, rn.Step(raftpb.Message{From: id, To: 1, Type: typ, Term: rn.raft.term, Reject: true}))
			}
			require.Equal(t, tc.wantState, rn.raft.state)
			require.Equal(t, 3+tc.wantTerm, rn.raft.term)
		})
	}
}

// §5.2: a candidate that receives an append or heartbeat from a leader of
// its own term "recognizes the leader as legitimate and returns to follower
// state"; the vote it gave itself stays.
func TestCandidateRecognizesLeaderOfSameTerm(t *testing.T) {
	for _, pre := range []bool{false, true} {
		for _, typ := range []raftpb.MessageType{raftpb.MsgApp, raftpb.MsgHeartbeat} {
			t.Run(fmt.Sprintf("pre=%v/%s", pre, typ), func(t *testing.T) {
				var opts []Option
				if !pre {
					opts = append(opts, WithoutPreVote())
				}
				rn := paperNode(1, []int64{1, 2, 3}, 2, []int64{1, 2}, opts...)
				require.NoError(t, rn.Campaign())
				paperTake(rn)
				term, vote := rn.raft.term, rn.raft.vote
				require.Equal(t, !pre, vote == 1)
				m := raftpb.Message{From: 2, To: 1, Type: typ, Term: term}
				if typ == raftpb.MsgApp {
					m.Index, m.LogTerm = 2, 2
				}
				require.NoError(t, rn.Step(m))
				require.Equal(t, StateFollower, rn.raft.state)
				require.Equal(t, int64(2), rn.raft.lead)
				require.Equal(t, term, rn.raft.term)
				require.Equal(t, vote, rn.raft.vote, "the vote of the term is kept")
			})
		}
	}
}

// §5.2: "Each server will vote for at most one candidate in a given term,
// on a first-come-first-served basis." The vote is handed out in the
// HardState of the very Ready whose messages carry the grant, so it is
// persisted before the grant leaves, and a restart keeps it.
func TestOneVotePerTerm(t *testing.T) {
	rn := NewRawNode(1, []int64{2, 3}, 10, 1, Seed(1))
	vote := func(rn *RawNode, from, term int64) (Ready, raftpb.Message) {
		t.Helper()
		require.NoError(t, rn.Step(raftpb.Message{From: from, To: 1, Type: raftpb.MsgVote, Term: term}))
		require.True(t, rn.HasReady())
		rd := rn.Ready()
		rn.Advance()
		resps := paperSelect(rd.Messages, raftpb.MsgVoteResp, from)
		require.Len(t, resps, 1)
		return rd, resps[0]
	}

	rd, resp := vote(rn, 2, 1)
	require.False(t, resp.Reject, "first come, first served")
	require.Equal(t, raftpb.HardState{Term: 1, Vote: 2}, rd.State, "the vote travels with the grant")
	persisted := rd.State

	rd, resp = vote(rn, 3, 1)
	require.True(t, resp.Reject, "a second candidate of the same term")
	require.True(t, IsEmptyHardState(rd.State))
	require.Equal(t, int64(2), rn.raft.vote)

	_, resp = vote(rn, 2, 1)
	require.False(t, resp.Reject, "a repeated request from the same candidate is granted again")

	// After a restart from what was persisted, the vote of term 1 is kept.
	rn = RestartRawNode(1, []int64{2, 3}, 10, 1, nil, persisted, nil, Seed(1))
	_, resp = vote(rn, 3, 1)
	require.True(t, resp.Reject, "a restarted node votes twice in term 1")

	// A new term brings a new vote.
	rd, resp = vote(rn, 3, 2)
	require.False(t, resp.Reject)
	require.Equal(t, raftpb.HardState{Term: 2, Vote: 3}, rd.State)
}

// §5.2: a candidate votes for itself, and that vote is persisted with the
// vote requests it sends.
func TestCandidateVoteForItselfTravelsWithRequests(t *testing.T) {
	rn := NewRawNode(1, []int64{2, 3}, 10, 1, Seed(1), WithoutPreVote())
	require.NoError(t, rn.Campaign())
	rd := rn.Ready()
	require.Equal(t, raftpb.HardState{Term: 1, Vote: 1}, rd.State)
	require.Len(t, paperSelect(rd.Messages, raftpb.MsgVote, None), 2)
	rn.Advance()
}

// §5.4.1: "the voter denies its vote if its own log is more up-to-date than
// that of the candidate": logs compare by the term of the last entry, then
// by length. The same rule decides a pre-vote (thesis §9.6), which changes
// neither term nor vote.
func TestVoteOnlyForUpToDateLog(t *testing.T) {
	voterLog := []int64{1, 1, 2} // last entry 3, term 2
	tests := []struct {
		index, logTerm int64
		grant          bool
	}{
		{3, 2, true},   // same last entry
		{4, 2, true},   // same last term, longer
		{2, 2, false},  // same last term, shorter
		{1, 3, true},   // later last term, shorter
		{2, 3, true},   // later last term
		{10, 1, false}, // earlier last term, longer
		{3, 1, false},  // earlier last term, same length
		{0, 0, false},  // empty log
	}
	for _, typ := range []raftpb.MessageType{raftpb.MsgVote, raftpb.MsgPreVote} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/%d-%d", typ, tc.logTerm, tc.index), func(t *testing.T) {
				rn := paperNode(1, []int64{1, 2, 3}, 2, voterLog)
				paperTake(rn)
				require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: typ, Term: 3, Index: tc.index, LogTerm: tc.logTerm}))
				msgs := paperTake(rn)
				require.Len(t, msgs, 1)
				require.Equal(t, int64(2), msgs[0].To)
				require.Equal(t, tc.grant, !msgs[0].Reject)
				if typ == raftpb.MsgVote {
					require.Equal(t, raftpb.MsgVoteResp, msgs[0].Type)
					require.Equal(t, int64(3), rn.raft.term)
					require.Equal(t, map[bool]int64{true: 2, false: None}[tc.grant], rn.raft.vote)
				} else {
					require.Equal(t, raftpb.MsgPreVoteResp, msgs[0].Type)
					require.Equal(t, int64(2), rn.raft.term, "a pre-vote does not move the voter's term")
					require.Equal(t, None, rn.raft.vote, "a pre-vote is not a vote")
				}
			})
		}
	}
}

// Thesis §9.6: pre-vote keeps a node that cannot win from raising its term.
// The pre-candidate asks with term+1 but stays at its term, and persists
// nothing; a node cut off from the cluster keeps its term however long it
// tries, so it does not depose the leader when it comes back. Without
// pre-vote (and without check-quorum's lease) it does.
func TestPreVoteDoesNotRaiseTerm(t *testing.T) {
	t.Run("pre-candidate", func(t *testing.T) {
		rn := paperNode(1, []int64{1, 2, 3}, 4, []int64{1, 2})
		paperTake(rn)
		require.NoError(t, rn.Campaign())
		require.Equal(t, StatePreCandidate, rn.raft.state)
		require.Equal(t, int64(4), rn.raft.term)
		rd := rn.Ready()
		require.True(t, IsEmptyHardState(rd.State), "a pre-vote persists nothing")
		reqs := paperSelect(rd.Messages, raftpb.MsgPreVote, None)
		require.Len(t, reqs, 2)
		for _, m := range reqs {
			require.Equal(t, int64(5), m.Term, "asks with the term it would campaign in")
			require.Equal(t, int64(2), m.Index)
			require.Equal(t, int64(2), m.LogTerm)
		}
		rn.Advance()
	})

	for _, pre := range []bool{true, false} {
		t.Run(fmt.Sprintf("partitioned/pre=%v", pre), func(t *testing.T) {
			opts := []Option{WithoutCheckQuorum()}
			if !pre {
				opts = append(opts, WithoutPreVote())
			}
			nw := newNetwork(t, []int64{1, 2, 3}, opts...)
			nw.campaign(1)
			term := nw.nodes[1].rn.raft.term
			nw.isolate(3)
			for i := 0; i < 10; i++ {
				nw.tick(10)
				// Keep the leader's followers from timing out meanwhile.
				require.NoError(t, nw.propose(1, fmt.Sprint(i)))
			}
			nw.heal()
			nw.tick(20)
			r3 := nw.nodes[3].rn.raft
			if pre {
				require.Equal(t, term, r3.term, "the cut-off node kept its term")
				require.Equal(t, int64(1), nw.leader(), "the leader was not disturbed")
				require.Equal(t, term, nw.nodes[1].rn.raft.term)
			} else {
				require.Greater(t, r3.term, term, "without pre-vote the cut-off node raises its term")
				require.Greater(t, nw.nodes[1].rn.raft.term, term, "and deposes the leader when it comes back")
			}
		})
	}
}

// Thesis §6.2 (check-quorum): a leader that has not heard from a quorum
// for an election timeout steps down, within two election timeouts of
// losing contact. A leader that hears from a quorum keeps leading; without
// check-quorum a cut-off leader leads forever.
func TestCheckQuorumLeaderStepsDown(t *testing.T) {
	const election = 10
	tests := []struct {
		name     string
		opts     []Option
		isolate  int64
		stepDown bool
	}{
		{"leader cut off", nil, 1, true},
		{"one follower cut off", nil, 3, false},
		{"leader cut off/without check-quorum", []Option{WithoutCheckQuorum()}, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetwork(t, []int64{1, 2, 3}, tc.opts...)
			nw.campaign(1)
			// Somewhere in the middle of the leader's check period.
			nw.tick(3)
			require.Equal(t, int64(1), nw.leader())
			nw.isolate(tc.isolate)
			r1 := nw.nodes[1].rn.raft
			ticks := 0
			for r1.state == StateLeader && ticks < 5*election {
				nw.tick(1)
				ticks++
			}
			if !tc.stepDown {
				require.Equal(t, StateLeader, r1.state)
				return
			}
			require.NotEqual(t, StateLeader, r1.state, "the leader never stepped down")
			require.LessOrEqual(t, ticks, 2*election, "stepped down after %d ticks", ticks)
			require.GreaterOrEqual(t, ticks, election-3, "stepped down after %d ticks, before an election timeout", ticks)
		})
	}
}

// §6 (last paragraph) and thesis §4.2.3: "servers disregard RequestVote
// RPCs when they believe a current leader exists", that is, when they heard
// from a leader within the election timeout: the request changes nothing
// and gets no answer. Once the timeout passes with no word from the leader,
// the same request is granted.
func TestVoteRequestIgnoredWhileLeaderRecentlyHeard(t *testing.T) {
	for _, typ := range []raftpb.MessageType{raftpb.MsgVote, raftpb.MsgPreVote} {
		t.Run(typ.String(), func(t *testing.T) {
			rn := NewRawNode(2, []int64{1, 3}, 10, 1, Seed(2))
			require.NoError(t, rn.Step(raftpb.Message{From: 1, To: 2, Type: raftpb.MsgHeartbeat, Term: 1}))
			paperTake(rn)
			for i := 0; i < 9; i++ {
				rn.Tick()
			}
			paperTake(rn)
			require.Equal(t, StateFollower, rn.raft.state)

			req := raftpb.Message{From: 3, To: 2, Type: typ, Term: 2}
			require.NoError(t, rn.Step(req))
			require.Equal(t, int64(1), rn.raft.term)
			require.Equal(t, None, rn.raft.vote)
			require.Equal(t, int64(1), rn.raft.lead)
			require.Empty(t, paperTake(rn), "a disregarded request is not answered")

			rn.Tick() // an election timeout since the leader was heard from
			paperTake(rn)
			require.NoError(t, rn.Step(req))
			respType := map[raftpb.MessageType]raftpb.MessageType{
				raftpb.MsgVote: raftpb.MsgVoteResp, raftpb.MsgPreVote: raftpb.MsgPreVoteResp}[typ]
			resps := paperSelect(paperTake(rn), respType, 3)
			require.Len(t, resps, 1)
			require.False(t, resps[0].Reject)
		})
	}
}

// §5.3 Log replication.

// §5.4.2 and §8: a new leader appends an entry of its own term (empty)
// right away, and sends it to every follower after its last entry.
func TestLeaderAppendsEmptyEntryOnElection(t *testing.T) {
	rn := paperNode(1, []int64{1, 2, 3}, 2, []int64{1, 2}, WithoutPreVote())
	require.NoError(t, rn.Campaign())
	paperTake(rn)
	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgVoteResp, Term: 3}))
	require.Equal(t, StateLeader, rn.raft.state)
	rd := rn.Ready()
	want := raftpb.Entry{Type: EntryNormal, Term: 3, Index: 3}
	require.Equal(t, []raftpb.Entry{want}, rd.Entries)
	apps := paperSelect(rd.Messages, raftpb.MsgApp, None)
	require.Len(t, apps, 2)
	for _, m := range apps {
		require.Equal(t, int64(2), m.Index)
		require.Equal(t, int64(2), m.LogTerm)
		require.Equal(t, []raftpb.Entry{want}, m.Entries)
	}
	rn.Advance()
}

// §5.2: the leader "sends periodic heartbeats ... to all followers": one
// per follower every heartbeat ticks, and no other message meanwhile.
func TestLeaderHeartbeatsEveryHeartbeatTicks(t *testing.T) {
	for _, heartbeat := range []int{1, 2, 3, 7} {
		t.Run(fmt.Sprint(heartbeat), func(t *testing.T) {
			rn := RestartRawNode(1, []int64{2, 3}, 10, heartbeat, nil, raftpb.HardState{}, nil, Seed(1), WithoutPreVote())
			require.NoError(t, rn.Campaign())
			require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgVoteResp, Term: 1}))
			paperTake(rn)
			// Two election timeouts less one: check-quorum looks once, while
			// every follower still counts as recently active.
			for tick := 1; tick < 20; tick++ {
				rn.Tick()
				msgs := paperTake(rn)
				if tick%heartbeat != 0 {
					require.Empty(t, msgs, "tick %d", tick)
					continue
				}
				require.Len(t, msgs, 2, "tick %d", tick)
				for _, m := range msgs {
					require.Equal(t, raftpb.MsgHeartbeat, m.Type)
					require.Equal(t, int64(1), m.Term)
				}
				require.ElementsMatch(t, []int64{2, 3}, []int64{msgs[0].To, msgs[1].To})
			}
			require.Equal(t, StateLeader, rn.raft.state)
		})
	}
}

// §5.3: "If the follower does not find an entry in its log with the same
// index and term [as the one preceding the new entries], then it refuses
// the new entries"; otherwise it deletes a conflicting entry "and all that
// follow it" and appends what it lacks, and an append that matches keeps
// the entries after it.
func TestFollowerAppendConsistencyCheck(t *testing.T) {
	followerLog := []int64{1, 1, 2}
	e := func(index, term int64) raftpb.Entry { return raftpb.Entry{Index: index, Term: term} }
	tests := []struct {
		name           string
		index, logTerm int64
		ents           []raftpb.Entry
		wantReject     bool
		wantIndex      int64 // of the response: last matching index, or the rejected index
		wantLog        []int64
	}{
		{"appends after the last entry", 3, 2, []raftpb.Entry{e(4, 2)}, false, 4, []int64{1, 1, 2, 2}},
		{"matching entry", 2, 1, []raftpb.Entry{e(3, 2)}, false, 3, []int64{1, 1, 2}},
		{"matching prefix keeps the rest", 1, 1, []raftpb.Entry{e(2, 1)}, false, 2, []int64{1, 1, 2}},
		{"heartbeat-like append", 3, 2, nil, false, 3, []int64{1, 1, 2}},
		{"from the start", 0, 0, []raftpb.Entry{e(1, 1)}, false, 1, []int64{1, 1, 2}},
		{"conflict truncates", 1, 1, []raftpb.Entry{e(2, 3)}, false, 2, []int64{1, 3}},
		{"conflict after a match", 2, 1, []raftpb.Entry{e(3, 3), e(4, 3)}, false, 4, []int64{1, 1, 3, 3}},
		{"previous term differs", 3, 1, []raftpb.Entry{e(4, 3)}, true, 3, []int64{1, 1, 2}},
		{"previous entry missing", 4, 2, []raftpb.Entry{e(5, 3)}, true, 4, []int64{1, 1, 2}},
		{"far beyond", 9, 3, nil, true, 9, []int64{1, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := paperNode(1, []int64{1, 2, 3}, 3, followerLog)
			paperTake(rn)
			require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgApp, Term: 3,
				Index: tc.index, LogTerm: tc.logTerm, Entries: tc.ents}))
			msgs := paperTake(rn)
			require.Len(t, msgs, 1)
			resp := msgs[0]
			require.Equal(t, raftpb.MsgAppResp, resp.Type)
			require.Equal(t, tc.wantReject, resp.Reject)
			require.Equal(t, tc.wantIndex, resp.Index)
			require.Equal(t, tc.wantLog, paperLogTerms(t, rn))
			if tc.wantReject {
				require.LessOrEqual(t, resp.RejectHint, min(tc.index, int64(len(followerLog))),
					"the hint points at or below the last entry the follower has")
			}
		})
	}
}

// §5.3, figure 7: when a leader of term 8 comes to power, followers may
// miss entries (a, b), have extra uncommitted entries (c, d), or both (e,
// f). The leader forces every log to duplicate its own.
//
// §5.3 also proposes the optimization that a rejection names the
// conflicting term and its first index, so that the leader skips a whole
// conflicting term per round trip. Here every follower needs at most one
// rejection; decrementing one entry per round trip would take 1, 6, 0, 0,
// 3 and 7 for (a) to (f).
func TestFigure7FollowerLogsConvergeToLeader(t *testing.T) {
	leaderLog := []int64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6}
	followers := []struct {
		name       string
		log        []int64
		rejections int
	}{
		{"a", []int64{1, 1, 1, 4, 4, 5, 5, 6, 6}, 1},
		{"b", []int64{1, 1, 1, 4}, 1},
		{"c", []int64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 0},
		{"d", []int64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 0},
		{"e", []int64{1, 1, 1, 4, 4, 4, 4}, 1},
		{"f", []int64{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 1},
	}
	logs := map[int64][]int64{1: leaderLog}
	for i, f := range followers {
		logs[int64(i+2)] = f.log
	}
	nw := paperNetwork(t, 7, logs)
	// (c) and (d) refuse their votes (their logs are more up to date); the
	// four others elect the leader, as in the figure.
	nw.campaign(1)
	require.Equal(t, int64(1), nw.leader())
	require.Equal(t, int64(8), nw.nodes[1].rn.raft.term)

	want := append(slices.Clone(leaderLog), 8)
	require.Equal(t, want, paperLogTerms(t, nw.nodes[1].rn))
	require.Equal(t, int64(len(want)), nw.nodes[1].rn.raft.log.committed)
	// The commit index reaches every follower at the latest with the next
	// heartbeat (TestLeaderTellsPausedFollowerTheCommitIndex wants sooner).
	nw.tick(1)
	for i, f := range followers {
		id := int64(i + 2)
		n := nw.nodes[id]
		require.Equal(t, want, paperLogTerms(t, n.rn), "follower (%s)", f.name)
		require.Equal(t, int64(len(want)), n.rn.raft.log.committed, "follower (%s)", f.name)
		require.Len(t, n.applied, len(want), "follower (%s)", f.name)
		rejections := 0
		for _, m := range paperSelect(nw.sent, raftpb.MsgAppResp, 1) {
			if m.From == id && m.Reject {
				rejections++
			}
		}
		require.Equal(t, f.rejections, rejections, "round trips rejected for follower (%s)", f.name)
	}
}

// §5.3: the leader "includes [the highest index it knows to be committed]
// in future AppendEntries RPCs". A follower that was paused (its probe
// unanswered) when the commit index advanced is skipped by that broadcast;
// when its acknowledgement unpauses it, the leader's answer tells it the
// commit index, instead of leaving it to the next heartbeat.
func TestLeaderTellsPausedFollowerTheCommitIndex(t *testing.T) {
	rn := paperLeader(t, []int64{1, 2, 3}, 1, []int64{1}) // entry 2 is the leader's empty entry
	require.True(t, rn.raft.prs[3].paused(), "the probe to 3 is unanswered")

	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	require.Equal(t, int64(2), rn.raft.log.committed)
	msgs := paperTake(rn)
	require.Empty(t, paperSelect(msgs, raftpb.MsgApp, 3), "3 is paused")
	apps := paperSelect(msgs, raftpb.MsgApp, 2)
	require.Len(t, apps, 1)
	require.Equal(t, int64(2), apps[0].Commit)

	require.NoError(t, rn.Step(raftpb.Message{From: 3, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	apps = paperSelect(paperTake(rn), raftpb.MsgApp, 3)
	require.Len(t, apps, 1, "3 is not told that entry 2 committed")
	require.Equal(t, int64(2), apps[0].Commit)
}

// §5.3: "If followers crash or run slowly, or if network packets are lost,
// the leader retries AppendEntries RPCs indefinitely until all followers
// eventually store all log entries." An append to a streaming (replicate)
// follower, or the follower's answer, is lost while the cluster is idle:
// the heartbeats that follow must get the follower its entries and the
// commit index, with no new proposal to help.
func TestLeaderRetriesLostAppends(t *testing.T) {
	for _, lost := range []link{{1, 2}, {2, 1}} {
		t.Run(fmt.Sprintf("%x->%x lost", lost.from, lost.to), func(t *testing.T) {
			nw := newNetwork(t, []int64{1, 2, 3})
			nw.campaign(1)
			require.NoError(t, nw.propose(1, "x"))
			require.Equal(t, ProgressReplicate, nw.nodes[1].rn.raft.prs[2].State)

			nw.cut[lost] = true
			require.NoError(t, nw.propose(1, "y"))
			require.Equal(t, []string{"x", "y"}, nw.nodes[3].appliedData(), "committed with 3")
			nw.heal()
			nw.tick(5)
			require.Equal(t, int64(1), nw.leader())
			last := nw.nodes[1].rn.raft.log.lastIndex()
			require.Equal(t, last, nw.nodes[1].rn.raft.prs[2].Match, "the leader knows what 2 holds")
			require.Equal(t, []string{"x", "y"}, nw.nodes[2].appliedData(), "2 has and applies every entry")
		})
	}
}

// §5.3 (the optimization): on a rejection that names the follower's
// conflicting term, the leader's next probe skips every entry of that term
// at once, to the last entry of its own log whose term is not above it.
func TestLeaderSkipsConflictingTermOnRejectHint(t *testing.T) {
	leaderLog := []int64{1, 1, 1, 4, 4, 5, 5, 6, 6, 6} // then 11 of term 8
	tests := []struct {
		name                string
		hintIndex, hintTerm int64
		wantPrev            int64
	}{
		{"(a) one entry short", 9, 6, 9},
		{"(b) many entries short", 4, 4, 4},
		{"(e) term 4 runs longer", 7, 4, 5},
		{"(f) terms 2 and 3 unknown to the leader", 10, 3, 3},
		{"empty follower", 0, 0, 0},
		{"no term: the hint index itself", 6, 0, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := paperLeader(t, []int64{1, 2, 3}, 7, leaderLog)
			pr := rn.raft.prs[2]
			require.Equal(t, ProgressProbe, pr.State)
			require.Equal(t, int64(11), pr.Next, "the first probe was for entry 11, after 10")
			require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 8,
				Index: 10, Reject: true, RejectHint: tc.hintIndex, LogTerm: tc.hintTerm}))
			apps := paperSelect(paperTake(rn), raftpb.MsgApp, 2)
			require.Len(t, apps, 1, "one new probe")
			require.Equal(t, tc.wantPrev, apps[0].Index)
			require.Equal(t, int64(11)-tc.wantPrev, int64(len(apps[0].Entries)))
		})
	}
}

// §5.3 (flow control, thesis §10.2): the leader probes a follower whose log
// it does not know with one append at a time, switches to streaming
// (replicate) once an append is accepted, and falls back to probing on a
// rejection.
func TestProgressProbeThenReplicate(t *testing.T) {
	rn := paperLeader(t, []int64{1, 2}, 1, []int64{1}) // entry 2 is the leader's empty entry
	pr := rn.raft.prs[2]
	require.Equal(t, ProgressProbe, pr.State)
	require.True(t, pr.ProbeSent)

	require.NoError(t, rn.Propose([]byte("a")))
	require.Empty(t, paperSelect(paperTake(rn), raftpb.MsgApp, 2), "one probe in flight at a time")

	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	require.Equal(t, ProgressReplicate, pr.State)
	require.Equal(t, int64(2), pr.Match)
	apps := paperSelect(paperTake(rn), raftpb.MsgApp, 2)
	require.Len(t, apps, 1)
	require.Equal(t, int64(2), apps[0].Index)
	require.Len(t, apps[0].Entries, 1, "what was held back follows at once")

	for _, data := range []string{"b", "c"} {
		require.NoError(t, rn.Propose([]byte(data)))
		apps := paperSelect(paperTake(rn), raftpb.MsgApp, 2)
		require.Len(t, apps, 1, "in replicate, appends stream without waiting for answers")
		require.Equal(t, data, string(apps[0].Entries[0].Data))
	}
	require.Equal(t, int64(6), pr.Next)

	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2,
		Index: 4, Reject: true, RejectHint: 3, LogTerm: 2}))
	require.Equal(t, ProgressProbe, pr.State)
	apps = paperSelect(paperTake(rn), raftpb.MsgApp, 2)
	require.Len(t, apps, 1)
	require.Equal(t, int64(2), apps[0].Index, "probes again after the last acknowledged entry")
}

// Thesis §10.2: a bounded window of appends in flight per follower, by
// count and by bytes: when it is full the leader stops sending, and an
// acknowledgement reopens it, with what was held back sent together.
func TestInflightWindowPausesReplication(t *testing.T) {
	tests := []struct {
		name     string
		opts     []Option
		wantSent int
	}{
		{"count", []Option{MaxInflight(2)}, 2},
		{"bytes", []Option{MaxInflight(100), MaxInflightBytes(10)}, 3}, // 4+4+4 >= 10
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := paperLeader(t, []int64{1, 2}, 1, []int64{1}, tc.opts...)
			require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
			paperTake(rn)
			pr := rn.raft.prs[2]
			require.Equal(t, ProgressReplicate, pr.State)

			var sent []raftpb.Message
			for i := 0; i < 6; i++ {
				require.NoError(t, rn.Propose([]byte(fmt.Sprintf("ab%02d", i))))
				sent = append(sent, paperSelect(paperTake(rn), raftpb.MsgApp, 2)...)
			}
			require.Len(t, sent, tc.wantSent)
			require.True(t, pr.paused())
			for i, m := range sent {
				require.Len(t, m.Entries, 1)
				require.Equal(t, int64(3+i), m.Entries[0].Index)
			}

			// The first append is acknowledged: the rest goes out in one append.
			require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 3}))
			more := paperSelect(paperTake(rn), raftpb.MsgApp, 2)
			var idx []int64
			for _, m := range more {
				for _, e := range m.Entries {
					idx = append(idx, e.Index)
				}
			}
			var want []int64
			for i := int64(3 + tc.wantSent); i <= 8; i++ {
				want = append(want, i)
			}
			require.Equal(t, want, idx)
		})
	}
}

// Thesis §10.2: one append carries at most MaxMsgBytes of entries (but
// always at least one entry), so a follower far behind catches up in
// several appends rather than one huge one.
func TestMaxMsgBytesCapsAppendSize(t *testing.T) {
	const capBytes = 100
	rn := paperLeader(t, []int64{1, 2}, 1, []int64{1}, MaxMsgBytes(capBytes))
	sizes := []int{30, 30, 30, 30, 150, 30, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 30, 70, 30}
	for i, n := range sizes {
		data := make([]byte, n)
		data[0] = byte(i)
		require.NoError(t, rn.Propose(data))
	}
	require.Empty(t, paperSelect(paperTake(rn), raftpb.MsgApp, 2), "probe unanswered")
	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	apps := paperSelect(paperTake(rn), raftpb.MsgApp, 2)
	require.Greater(t, len(apps), 3, "the catch-up is split")
	next := int64(3)
	for _, m := range apps {
		require.Equal(t, next-1, m.Index)
		bytes := 0
		for _, e := range m.Entries {
			require.Equal(t, next, e.Index)
			next++
			bytes += len(e.Data)
		}
		require.NotEmpty(t, m.Entries)
		if len(m.Entries) > 1 {
			require.LessOrEqual(t, bytes, capBytes, DescribeMessage(m))
		}
	}
	require.Equal(t, int64(3+len(sizes)), next, "every entry is sent, once, in order")
}

// Thesis §10.2: with MaxUncommittedBytes, a leader refuses proposals with
// ErrProposalDropped once its uncommitted entries hold that many bytes, so
// a leader cut off from its followers does not grow without bound; it
// accepts again once entries commit. A proposal is accepted whatever its
// size when nothing is uncommitted, or it could never be proposed.
func TestMaxUncommittedBytesDropsProposals(t *testing.T) {
	rn := paperLeader(t, []int64{1, 2, 3}, 1, []int64{1}, MaxUncommittedBytes(10))
	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	paperTake(rn)

	require.NoError(t, rn.Propose([]byte("aaaa")))
	require.NoError(t, rn.Propose([]byte("bbbb")))
	last := rn.raft.log.lastIndex()
	require.ErrorIs(t, rn.Propose([]byte("cccc")), ErrProposalDropped)
	require.Equal(t, last, rn.raft.log.lastIndex(), "a dropped proposal is not in the log")
	paperTake(rn)
	require.ErrorIs(t, rn.Propose([]byte("ccc")), ErrProposalDropped, "still over the cap")
	require.NoError(t, rn.Propose([]byte("c")), "a proposal that fits is accepted")
	paperTake(rn)
	last = rn.raft.log.lastIndex()

	// The follower acknowledges everything: it commits, and the leader
	// accepts proposals again.
	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: last}))
	paperTake(rn)
	require.Equal(t, last, rn.raft.log.committed)
	require.NoError(t, rn.Propose([]byte("cccc")))
	paperTake(rn)

	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: last + 1}))
	paperTake(rn)
	require.NoError(t, rn.Propose(make([]byte, 25)), "nothing uncommitted: any size is accepted")
	require.ErrorIs(t, rn.Propose([]byte("d")), ErrProposalDropped)
}

// §5.4 Safety.

// §5.4.2, figure 8: "Raft never commits log entries from previous terms by
// counting replicas. Only log entries from the leader's current term are
// committed by counting replicas; once an entry from the current term has
// been committed ... all prior entries are committed indirectly." The
// leader of term 4 holds entry 2 of term 2 and its own entry 3 of term 4.
func TestFigure8LeaderCommitsOnlyOwnTermByCounting(t *testing.T) {
	tests := []struct {
		name       string
		match      map[int64]int64 // acknowledged by each follower
		wantCommit int64
	}{
		{"entry 2 on a majority", map[int64]int64{2: 2, 3: 2}, 1},
		{"entry 2 on every node", map[int64]int64{2: 2, 3: 2, 4: 2, 5: 2}, 1},
		{"entry 3 on a minority", map[int64]int64{2: 3}, 1},
		{"entry 3 on a minority, 2 on a majority", map[int64]int64{2: 3, 3: 2, 4: 2}, 1},
		{"entry 3 on a majority", map[int64]int64{2: 3, 3: 3}, 3},
		{"entry 3 on a majority, the rest behind", map[int64]int64{2: 3, 3: 3, 4: 1, 5: 0}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := paperNode(1, []int64{1, 2, 3, 4, 5}, 3, []int64{1, 2}, WithoutPreVote())
			rn.raft.log.commitTo(1)
			paperTake(rn)
			require.NoError(t, rn.Campaign())
			for _, id := range []int64{2, 3} {
				require.NoError(t, rn.Step(raftpb.Message{From: id, To: 1, Type: raftpb.MsgVoteResp, Term: 4}))
			}
			require.Equal(t, StateLeader, rn.raft.state)
			paperTake(rn) // the leader's own entry 3 is handed out, so it counts for the leader
			require.Equal(t, []int64{1, 2, 4}, paperLogTerms(t, rn))

			var committed []raftpb.Entry
			for _, id := range slices.Sorted(maps.Keys(tc.match)) {
				require.NoError(t, rn.Step(raftpb.Message{From: id, To: 1, Type: raftpb.MsgAppResp, Term: 4, Index: tc.match[id]}))
				for rn.HasReady() {
					rd := rn.Ready()
					committed = append(committed, rd.CommittedEntries...)
					rn.Advance()
				}
				require.LessOrEqual(t, rn.raft.log.committed, tc.wantCommit)
			}
			require.Equal(t, tc.wantCommit, rn.raft.log.committed)
			require.Len(t, committed, int(tc.wantCommit-1), "entries handed out to apply")
		})
	}
}

// §5.4.3 (Leader Completeness): once an entry is committed, every later
// leader has it: a node that missed it cannot be elected (its log is less
// up to date than a majority's), one that has it can, and the committed
// entries survive into the new leader's term.
func TestLeaderCompleteness(t *testing.T) {
	for _, pre := range []bool{true, false} {
		t.Run(fmt.Sprintf("pre=%v", pre), func(t *testing.T) {
			// Without check-quorum's lease, so that vote requests are
			// decided by the logs alone.
			opts := []Option{WithoutCheckQuorum()}
			if !pre {
				opts = append(opts, WithoutPreVote())
			}
			nw := newNetwork(t, []int64{1, 2, 3, 4, 5}, opts...)
			nw.campaign(1)
			for _, id := range []int64{4, 5} {
				nw.cut[link{1, id}], nw.cut[link{id, 1}] = true, true
			}
			require.NoError(t, nw.propose(1, "x"))
			require.NoError(t, nw.propose(1, "y"))
			committed := nw.nodes[1].rn.raft.log.committed
			require.Equal(t, []string{"x", "y"}, nw.nodes[1].appliedData(), "committed by 1, 2 and 3")
			require.Empty(t, nw.nodes[4].appliedData())

			nw.crash(1)
			nw.heal()
			for _, id := range []int64{4, 5} {
				nw.campaign(id)
				require.Zero(t, nw.leader(), "node %x, lacking committed entries, was elected", id)
			}
			nw.campaign(3)
			require.Equal(t, int64(3), nw.leader())
			r3 := nw.nodes[3].rn.raft
			require.GreaterOrEqual(t, r3.log.lastIndex(), committed)
			require.NoError(t, nw.propose(3, "z"))
			for _, id := range []int64{2, 3, 4, 5} {
				require.Equal(t, []string{"x", "y", "z"}, nw.nodes[id].appliedData(), "node %x", id)
			}
		})
	}
}

// API.md (The loop), resting on §5.4's persist-before-send: a leader counts
// its own entries as soon as they are handed out, so on a one-node cluster
// a lone proposal commits with no input other than taking the Readys.
func TestLoneProposeCommitsOnOneNode(t *testing.T) {
	rn := NewRawNode(1, nil, 10, 1, Seed(1))
	require.NoError(t, rn.Campaign())
	paperTake(rn)
	require.Equal(t, StateLeader, rn.raft.state)

	require.NoError(t, rn.Propose([]byte("lone")))
	var committed []string
	readys := 0
	for rn.HasReady() {
		rd := rn.Ready()
		readys++
		for _, e := range rd.CommittedEntries {
			committed = append(committed, string(e.Data))
		}
		rn.Advance()
		require.Less(t, readys, 5)
	}
	require.Equal(t, []string{"lone"}, committed)
}

// Invariant: a node's commit index never goes back (§5.3: the leader
// "never overwrites or deletes entries in its log"; a committed entry is
// never truncated), whatever commit index a message carries.
func TestCommitIndexNeverGoesBack(t *testing.T) {
	e := func(index, term int64) raftpb.Entry { return raftpb.Entry{Index: index, Term: term} }
	tests := []struct {
		name    string
		m       raftpb.Message
		wantLog []int64
	}{
		{"append with a lower commit", raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 1, LogTerm: 1, Commit: 1}, []int64{1, 1, 1, 1}},
		{"append after the commit index with a lower commit",
			raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 4, LogTerm: 1, Commit: 2, Entries: []raftpb.Entry{e(5, 2)}}, []int64{1, 1, 1, 1, 2}},
		{"heartbeat with a lower commit", raftpb.Message{Type: raftpb.MsgHeartbeat, Term: 2, Commit: 1}, []int64{1, 1, 1, 1}},
		{"stale append before the commit index",
			raftpb.Message{Type: raftpb.MsgApp, Term: 2, Index: 0, LogTerm: 0, Entries: []raftpb.Entry{e(1, 2), e(2, 2)}}, []int64{1, 1, 1, 1}},
		{"append conflicting with a committed entry",
			raftpb.Message{Type: raftpb.MsgApp, Term: 3, Index: 2, LogTerm: 1, Commit: 3, Entries: []raftpb.Entry{e(3, 3)}}, []int64{1, 1, 1, 1}},
		{"snapshot below the commit index",
			raftpb.Message{Type: raftpb.MsgSnap, Term: 2, Snapshot: raftpb.Snapshot{Index: 2, Term: 1, Nodes: []int64{1, 2, 3}}}, []int64{1, 1, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rn := RestartRawNode(1, []int64{2, 3}, 10, 1, nil, raftpb.HardState{Term: 2, Commit: 3}, paperEnts(1, 1, 1, 1), Seed(1))
			paperTake(rn)
			require.Equal(t, int64(3), rn.raft.log.committed)
			m := tc.m
			m.From, m.To = 2, 1
			require.NoError(t, rn.Step(m))
			for rn.HasReady() {
				rd := rn.Ready()
				require.True(t, IsEmptyHardState(rd.State) || rd.State.Commit >= 3, "persisted commit %d", rd.State.Commit)
				rn.Advance()
			}
			require.Equal(t, int64(3), rn.raft.log.committed)
			require.Equal(t, tc.wantLog, paperLogTerms(t, rn))
		})
	}
}

// Invariants over a seeded random run of a five-node cluster with ticks,
// proposals, partitions, crashes and restarts: every node's commit index
// never goes back, also across a restart (§5.3), and no two nodes apply
// different entries at the same index (State Machine Safety, §5.4.3).
func TestCommitIndexNeverGoesBackRandomRun(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0))
			ids := []int64{1, 2, 3, 4, 5}
			nw := newNetwork(t, ids, Seed(seed))
			highest := map[int64]int64{}
			appliedAt := map[int64]raftpb.Entry{}
			check := func(step int) {
				for _, id := range ids {
					n := nw.nodes[id]
					if n.down {
						continue
					}
					c := n.rn.raft.log.committed
					require.GreaterOrEqual(t, c, highest[id], "seed %d step %d: node %x commit went back", seed, step, id)
					highest[id] = c
					for _, e := range n.applied {
						if prev, ok := appliedAt[e.Index]; ok {
							require.Equal(t, prev, e, "seed %d step %d: node %x applied a different entry %d", seed, step, id, e.Index)
						}
						appliedAt[e.Index] = e
					}
				}
			}
			for step := 0; step < 150; step++ {
				id := ids[rng.IntN(len(ids))]
				switch k := rng.IntN(10); {
				case k < 5:
					nw.tick(1 + rng.IntN(5))
				case k < 7:
					if !nw.nodes[id].down {
						_ = nw.propose(id, fmt.Sprintf("%d-%d", seed, step))
					}
				case k < 8:
					nw.heal()
					nw.isolate(id)
				case k < 9:
					nw.heal()
				default:
					down := 0
					for _, n := range nw.nodes {
						if n.down {
							down++
						}
					}
					if nw.nodes[id].down {
						nw.restart(id)
						nw.stabilize()
					} else if down < 2 {
						nw.crash(id)
					}
				}
				check(step)
			}
			nw.heal()
			for _, id := range ids {
				if nw.nodes[id].down {
					nw.restart(id)
				}
			}
			nw.tick(60)
			check(-1)
			lead := nw.leader()
			require.NotZero(t, lead)
			require.NoError(t, nw.propose(lead, "final"))
			nw.tick(1) // a heartbeat brings every follower the commit index
			for _, id := range ids {
				require.Equal(t, nw.nodes[lead].rn.raft.log.committed, nw.nodes[id].rn.raft.log.committed, "node %x", id)
			}
			check(-2)
		})
	}
}
