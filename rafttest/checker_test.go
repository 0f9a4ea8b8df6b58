package rafttest

import (
	"errors"
	"testing"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Every checker can fail: each test below feeds the simulator a run with
// the fault its checker guards against (a hand-made broken history, or an
// application rule deliberately broken in that test only) and asserts the
// violation is reported, as an error naming the checker.

func requireViolation(t *testing.T, c *Cluster, checker string) *Violation {
	t.Helper()
	var v *Violation
	require.ErrorAs(t, c.Err(), &v, "expected a violation of %s", checker)
	require.Equal(t, checker, v.Checker, "%v", v)
	require.Equal(t, c.Seed(), v.Seed)
	require.NotEmpty(t, v.Trace)
	require.Contains(t, v.Error(), checker)
	require.Contains(t, v.Error(), "seed")
	return v
}

func ents(first int64, term int64, data ...string) []raftpb.Entry {
	out := make([]raftpb.Entry, len(data))
	for i, d := range data {
		out[i] = raftpb.Entry{Index: first + int64(i), Term: term, Data: []byte(d)}
	}
	return out
}

// handReady runs a hand-made Ready through node id's application loop,
// as the simulator runs the library's Readies.
func handReady(c *Cluster, id int64, rd raft.Ready) {
	c.op(func() {
		n := c.nodes[id]
		c.trace.add(event{step: c.step, kind: evReady, node: id, rd: summarize(rd)})
		if c.observe(n, rd) || !c.persist(n, rd, -1) || c.checkLeader(n) {
			return
		}
		for i := range rd.CommittedEntries {
			if !c.apply(n, &rd.CommittedEntries[i]) {
				return
			}
		}
		for i := range rd.Messages {
			if c.checkSend(n, &rd.Messages[i]) {
				return
			}
		}
	})
}

func leaderSoft(id int64) *raft.SoftState {
	return &raft.SoftState{Lead: id, RaftState: raft.StateLeader}
}

func TestCheckElectionSafetyFails(t *testing.T) {
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{SoftState: leaderSoft(1), State: raftpb.HardState{Term: 2, Vote: 1}})
	require.NoError(t, c.Err())
	handReady(c, 2, raft.Ready{SoftState: leaderSoft(2), State: raftpb.HardState{Term: 2, Vote: 2}})
	requireViolation(t, c, CheckElectionSafety)

	// A follower's view of its leader counts too.
	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{SoftState: leaderSoft(1), State: raftpb.HardState{Term: 2, Vote: 1}})
	handReady(c, 3, raft.Ready{SoftState: &raft.SoftState{Lead: 2}, State: raftpb.HardState{Term: 2}})
	requireViolation(t, c, CheckElectionSafety)
}

func TestCheckLogMatchingFails(t *testing.T) {
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: append(ents(1, 1, "a"), ents(2, 2, "b")...)})
	handReady(c, 3, raft.Ready{Entries: ents(1, 2, "x")})
	require.NoError(t, c.Err())
	// 1 and 3 both hold entry 2/2, after different entries at 1.
	handReady(c, 3, raft.Ready{Entries: ents(2, 2, "b")})
	requireViolation(t, c, CheckLogMatching)

	// The entry itself differs.
	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a")})
	handReady(c, 2, raft.Ready{Entries: ents(1, 1, "x")})
	requireViolation(t, c, CheckLogMatching)
}

func TestCheckCommittedEntryLostFails(t *testing.T) {
	// Truncated from a disk.
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a", "b", "c"), State: raftpb.HardState{Term: 1, Commit: 3}})
	require.NoError(t, c.Err())
	handReady(c, 1, raft.Ready{Entries: ents(3, 2, "z")})
	requireViolation(t, c, CheckCommitted)

	// Changed: another node commits a different entry at the same index.
	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a", "b"), State: raftpb.HardState{Term: 1, Commit: 2}})
	handReady(c, 2, raft.Ready{Entries: append(ents(1, 1, "a"), ents(2, 2, "y")...), State: raftpb.HardState{Term: 2, Commit: 2}})
	requireViolation(t, c, CheckCommitted)
}

func TestCheckLeaderCompletenessFails(t *testing.T) {
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a", "b"), State: raftpb.HardState{Term: 1, Commit: 2}})
	handReady(c, 2, raft.Ready{Entries: ents(1, 1, "a")})
	require.NoError(t, c.Err())
	// Node 2 leads term 2 without entry 2, committed in term 1.
	handReady(c, 2, raft.Ready{SoftState: leaderSoft(2), State: raftpb.HardState{Term: 2, Vote: 2, Commit: 1},
		Entries: ents(2, 2, "")})
	requireViolation(t, c, CheckLeaderCompleteness)
}

func TestCheckStateMachineSafetyFails(t *testing.T) {
	// Two nodes apply different entries at one index.
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "put a 1"), CommittedEntries: ents(1, 1, "put a 1"),
		State: raftpb.HardState{Term: 1, Commit: 1}})
	require.NoError(t, c.Err())
	handReady(c, 2, raft.Ready{Entries: ents(1, 2, "put a 2")})
	handReady(c, 2, raft.Ready{CommittedEntries: ents(1, 2, "put a 2")})
	requireViolation(t, c, CheckStateMachine)

	// A state machine that does not apply deterministically.
	c = New(Config{Seed: 3})
	c.breakRules.corruptApply = 2
	for i := 0; i < 3000 && c.Err() == nil; i++ {
		c.RandomStep()
	}
	requireViolation(t, c, CheckStateMachine)
}

func TestCheckMonotonicFails(t *testing.T) {
	c := New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{State: raftpb.HardState{Term: 3}})
	handReady(c, 1, raft.Ready{State: raftpb.HardState{Term: 2}})
	requireViolation(t, c, CheckMonotonic)

	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a", "b"), CommittedEntries: ents(1, 1, "a", "b"),
		State: raftpb.HardState{Term: 1, Commit: 2}})
	handReady(c, 1, raft.Ready{CommittedEntries: ents(2, 1, "b")})
	requireViolation(t, c, CheckMonotonic)
}

// Amnesia: nodes restart from an empty disk (as if an id were reused with
// a fresh disk). The safety checkers see what goes wrong.
func TestCheckersCatchAmnesia(t *testing.T) {
	seen := map[string]int{}
	for seed := uint64(0); seed < 40; seed++ {
		c := New(Config{Seed: seed, Faults: FaultProfiles[1]})
		c.breakRules.wipeDisk = true
		for i := 0; i < 4000 && c.Err() == nil; i++ {
			c.RandomStep()
		}
		var v *Violation
		if errors.As(c.Err(), &v) {
			seen[v.Checker]++
		}
	}
	t.Logf("violations by checker: %v", seen)
	require.NotEmpty(t, seen)
	for checker := range seen {
		require.Contains(t, []string{CheckVote, CheckCommitted, CheckLeaderCompleteness, CheckElectionSafety,
			CheckStateMachine, CheckLogMatching}, checker)
	}
}

// A vote lost across a restart: the node votes again in the same term.
func TestCheckVoteFails(t *testing.T) {
	c := New(Config{Seed: 1, Options: func(int64) []raft.Option { return []raft.Option{raft.WithoutPreVote()} }})
	c.breakRules.forgetVote = true
	c.Network().Cut(1, 3)
	require.NoError(t, c.Campaign(1))
	c.Process(1)
	c.Deliver()  // 2 gets 1's vote request
	c.Process(2) // and votes for 1 in term 1
	require.Equal(t, int64(1), c.Node(2).HardState().Vote)
	c.Crash(2)
	require.NoError(t, c.Restart(2)) // with the vote forgotten
	require.NoError(t, c.Campaign(3))
	c.Process(3)
	c.Deliver()
	c.Process(2)
	v := requireViolation(t, c, CheckVote)
	require.Contains(t, v.Detail, "voted for 1 and for 3 in term 1")

	// A grant sent before the vote is persisted.
	c = New(Config{Seed: 1})
	handReady(c, 2, raft.Ready{State: raftpb.HardState{Term: 1}, Messages: []raftpb.Message{
		{Type: raftpb.MsgVoteResp, From: 2, To: 1, Term: 1}}})
	requireViolation(t, c, CheckVote)
}

func TestCheckPersistenceFails(t *testing.T) {
	// The application acknowledges entries it did not persist.
	c := New(Config{Seed: 1})
	c.breakRules.skipEntries = true
	require.NoError(t, c.Campaign(1))
	c.Stabilize(100)
	requireViolation(t, c, CheckPersistence)

	// A HardState that commits entries not on the disk.
	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(1, 1, "a"), State: raftpb.HardState{Term: 1, Commit: 2}})
	requireViolation(t, c, CheckPersistence)

	// Entries that leave a gap.
	c = New(Config{Seed: 1})
	handReady(c, 1, raft.Ready{Entries: ents(2, 1, "b")})
	requireViolation(t, c, CheckPersistence)
}

func TestCheckLivenessFails(t *testing.T) {
	// Nothing can be applied within a single tick of a fresh cluster.
	c, err := Run(Config{Seed: 1, LivenessTicks: 1}, 0)
	require.Error(t, err)
	requireViolation(t, c, CheckLiveness)
}

func TestCheckPanicAndUserChecksFail(t *testing.T) {
	c, err := Run(Config{Seed: 1, StateMachine: func(int64) StateMachine { return &panicky{} }}, 3000)
	require.Error(t, err)
	v := requireViolation(t, c, CheckPanic)
	require.Contains(t, v.Detail, "boom")

	c, err = Run(Config{Seed: 1, Checks: []func(*Cluster) error{func(c *Cluster) error {
		if c.Steps() == 10 {
			return errors.New("the tenth step")
		}
		return nil
	}}}, 100)
	require.Error(t, err)
	v = requireViolation(t, c, CheckUser)
	require.Equal(t, 10, v.Step)
}

func TestCheckStepFails(t *testing.T) {
	c := New(Config{Seed: 1})
	c.op(func() {
		// A message no correct peer sends: addressed to another node.
		c.stepMessage(c.nodes[1], raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 3, Term: 1})
	})
	requireViolation(t, c, CheckStep)
}

type panicky struct{ KV }

func (*panicky) Apply(e raftpb.Entry) { panic("boom") }

// The checkers' tables, one property at a time.
func TestChecker(t *testing.T) {
	k := newChecker()
	require.Nil(t, k.leader(3, 1, ""))
	require.Nil(t, k.leader(3, 1, ""))
	require.Equal(t, CheckElectionSafety, k.leader(3, 2, "").checker)

	require.Nil(t, k.vote(1, 4, 2))
	require.Nil(t, k.vote(1, 4, 2))
	require.Nil(t, k.vote(1, 5, 3))
	require.Equal(t, CheckVote, k.vote(1, 4, 3).checker)

	require.Nil(t, k.persisted(1, 5, 2, 77))
	require.Nil(t, k.persisted(2, 5, 2, 77))
	require.Nil(t, k.persisted(2, 5, 3, 78))
	require.Equal(t, CheckLogMatching, k.persisted(3, 5, 2, 79).checker)

	chains := map[int64]uint64{1: 11, 2: 12, 3: 13}
	chainAt := func(i int64) uint64 { return chains[i] }
	require.Nil(t, k.commit(1, 2, 3, 13, chainAt))
	require.Equal(t, int64(3), k.commitIndex)
	require.True(t, k.isCommitted(2, 12))
	require.False(t, k.isCommitted(2, 99))
	require.False(t, k.isCommitted(4, 14))
	require.Equal(t, CheckCommitted, k.commit(2, 3, 2, 99, chainAt).checker)
	require.Equal(t, int64(0), k.committedBefore(2))
	require.Equal(t, int64(3), k.committedBefore(3))

	require.Nil(t, k.apply(1, 1, 11, 5))
	require.Nil(t, k.apply(2, 1, 11, 5))
	require.Equal(t, CheckStateMachine, k.apply(3, 1, 11, 6).checker, "same history, different state")
	require.Equal(t, CheckStateMachine, k.apply(3, 2, 99, 0).checker, "not the committed entry")
	require.Nil(t, k.restored(3, 1, 11, 5))
	require.Equal(t, CheckStateMachine, k.restored(3, 1, 11, 7).checker)

	require.Nil(t, k.snapshotData(1, 3, 42))
	require.Equal(t, CheckStateMachine, k.snapshotData(2, 3, 43).checker)
}
