package rafttest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Scenarios of a loop that sends a leader's appends before persisting them
// (Config.SendEarly, as Ready.SplitMessages allows), crashing the leader
// after they left and before its disk has them.

// The followers persisted the entry the leader lost: it is on a majority
// of disks, so it survives, and every node applies it.
func TestScenarioEarlyAppendOutlivesLeader(t *testing.T) {
	c := New(Config{Seed: 11, SendEarly: true})
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x 1")))
	c.CrashMidPersist(1, 0)
	c.Stabilize(1000)
	require.Equal(t, int64(0), c.Node(1).Snapshot().Index)
	require.Less(t, c.Node(1).disk.lastIndex(), c.Node(2).disk.lastIndex(), "the followers hold the entry the leader lost")
	settle(t, c, 40)
	require.NoError(t, c.Restart(1))
	settle(t, c, 10)
	requireAgree(t, c, "x", "1")
}

// A single voter commits on its own: a message telling its learner a
// commit index must not cover entries the voter has not persisted, or the
// learner would apply an entry the cluster loses.
func TestScenarioEarlyAppendToLearnerOfSingleVoter(t *testing.T) {
	c := New(Config{Seed: 12, Voters: 1, Learners: 1, SendEarly: true})
	elect(t, c, 1)
	settle(t, c, 2)
	require.NoError(t, c.Propose(1, []byte("put x lost")))
	c.CrashMidPersist(1, 0)
	c.Stabilize(1000)
	require.Greater(t, c.Node(2).disk.lastIndex(), c.Node(1).disk.lastIndex(), "the early append reached the learner")
	require.NoError(t, c.Restart(1))
	settle(t, c, 40)
	require.NoError(t, c.Propose(c.Leader(), []byte("put y 1")))
	settle(t, c, 5)
	requireAgree(t, c, "y", "1")
	requireAgree(t, c, "x", "")
}
