package rafttest

import (
	"fmt"
	"testing"

	"github.com/raftly/raft"
	"github.com/stretchr/testify/require"
)

// Named scenarios, scripted step by step on a Cluster; the checkers watch
// every step of them as they watch the random runs.

// settle ticks n times, letting the cluster settle after each tick.
func settle(t *testing.T, c *Cluster, ticks int) {
	t.Helper()
	for range ticks {
		c.Tick()
		c.Stabilize(1000)
	}
	require.NoError(t, c.Err())
}

func elect(t *testing.T, c *Cluster, id int64) {
	t.Helper()
	require.NoError(t, c.Campaign(id))
	c.Stabilize(1000)
	require.Equal(t, id, c.Leader())
}

func kvGet(c *Cluster, id int64, key string) string {
	v, _ := c.Node(id).StateMachine().(*KV).Get(key)
	return v
}

func requireAgree(t *testing.T, c *Cluster, key, want string) {
	t.Helper()
	for _, id := range c.Running() {
		if c.Node(id).Removed() {
			continue
		}
		require.Equal(t, want, kvGet(c, id, key), "node %x", id)
	}
}

// A leader isolated while it has uncommitted entries: the majority elects
// another leader and goes on; after the heal the old leader's entries are
// replaced and every node applies the same.
func TestScenarioIsolatedLeaderWithUncommittedEntries(t *testing.T) {
	c := New(Config{Seed: 1, Voters: 5})
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x 1")))
	c.Stabilize(1000)
	c.Network().Isolate(1)
	for i := range 3 {
		require.NoError(t, c.Propose(1, fmt.Appendf(nil, "put x lost%d", i)))
	}
	c.Stabilize(1000)
	settle(t, c, 40)
	lead := c.Leader()
	require.NotEqual(t, int64(1), lead)
	require.NoError(t, c.Propose(lead, []byte("put x 2")))
	c.Stabilize(1000)
	c.Network().Heal()
	settle(t, c, 5)
	require.Equal(t, lead, c.Leader())
	requireAgree(t, c, "x", "2")
}

// A node partitioned away comes back. With pre-vote the leader stays in
// place and no term rises; with pre-vote off on that node its term rises,
// the leader is disturbed, but the node cannot win with its stale log.
func TestScenarioPartitionedNodeComesBack(t *testing.T) {
	for _, preVote := range []bool{true, false} {
		t.Run(fmt.Sprintf("prevote=%v", preVote), func(t *testing.T) {
			c := New(Config{Seed: 2, Options: func(id int64) []raft.Option {
				if id == 3 && !preVote {
					return []raft.Option{raft.WithoutPreVote()}
				}
				return nil
			}})
			elect(t, c, 1)
			term := c.Node(1).Status().Term
			c.Network().Isolate(3)
			for i := range 5 {
				require.NoError(t, c.Propose(1, fmt.Appendf(nil, "put k v%d", i)))
			}
			settle(t, c, 100)
			if preVote {
				require.Equal(t, term, c.Node(3).Status().Term, "pre-vote: the cut-off node's term does not rise")
			} else {
				require.Greater(t, c.Node(3).Status().Term, term+1)
			}
			c.Network().Heal()
			settle(t, c, 60)
			if preVote {
				require.Equal(t, int64(1), c.Leader())
				require.Equal(t, term, c.Node(1).Status().Term)
			} else {
				require.NotEqual(t, int64(3), c.Leader(), "a stale log cannot win")
				require.NotZero(t, c.Leader())
			}
			require.NoError(t, c.Propose(c.Leader(), []byte("put k after")))
			c.Stabilize(1000)
			requireAgree(t, c, "k", "after")
		})
	}
}

// A vote is not lost across a restart: a node that voted and crashed
// votes for no one else in that term, whether the crash struck before or
// after its vote reached the disk.
func TestScenarioVoteAcrossRestart(t *testing.T) {
	for writes := range 2 {
		t.Run(fmt.Sprintf("writes=%d", writes), func(t *testing.T) {
			c := New(Config{Seed: 3, Options: func(int64) []raft.Option { return []raft.Option{raft.WithoutPreVote()} }})
			c.Network().Cut(1, 3)
			require.NoError(t, c.Campaign(1))
			c.Process(1)
			c.Deliver()                  // 2 gets 1's vote request
			c.CrashMidPersist(2, writes) // the HardState with the vote is the Ready's only write
			require.NoError(t, c.Restart(2))
			require.NoError(t, c.Campaign(3))
			c.Stabilize(1000)
			settle(t, c, 50)
			require.NoError(t, c.Err())
			require.NotZero(t, c.Leader())
		})
	}
}

// Committed but unapplied config entries: a follower that knows a config
// entry committed, and has not applied it yet, does not campaign on the
// old membership.
func TestScenarioNoCampaignOnUnappliedConfig(t *testing.T) {
	c := New(Config{Seed: 4})
	elect(t, c, 1)
	require.NoError(t, c.ProposeConfig(1, AddData(c.NextID())))
	c.Process(1) // the leader appends the entry and sends it
	c.Deliver()
	c.Process(2) // the follower persists it and acknowledges
	c.Deliver()  // the leader commits it
	c.Process(1) // and applies it, and sends the new commit index
	c.Deliver()  // the follower hears the commit, applies nothing yet
	err := c.Campaign(2)
	require.ErrorIs(t, err, raft.ErrCannotCampaign, "%s", c.Trace(30))
	c.Stabilize(1000)
	require.NoError(t, c.Campaign(2), "applied now")
	require.NoError(t, c.Err())
}

// Removing the leader: it steps down once the others know its removal
// committed, and they go on without it; also in a two-node cluster.
func TestScenarioRemoveLeader(t *testing.T) {
	for _, voters := range []int{3, 2} {
		t.Run(fmt.Sprintf("voters=%d", voters), func(t *testing.T) {
			c := New(Config{Seed: 5, Voters: voters})
			elect(t, c, 1)
			require.NoError(t, c.Propose(1, []byte("put a 1")))
			c.Stabilize(1000)
			require.NoError(t, c.ProposeConfig(1, RemoveData(1)))
			c.Stabilize(1000)
			settle(t, c, 60)
			require.True(t, c.Node(1).Removed())
			lead := c.Leader()
			require.NotZero(t, lead)
			require.NotEqual(t, int64(1), lead)
			voters, _ := c.Members()
			require.NotContains(t, voters, int64(1))
			require.NoError(t, c.Propose(lead, []byte("put a 2")))
			c.Stabilize(1000)
			for _, id := range voters {
				require.Equal(t, "2", kvGet(c, id, "a"), "node %x", id)
			}
			require.NoError(t, c.CheckLiveness())
		})
	}
}

// A node added to the cluster joins with an empty log, catches up (from a
// snapshot when the log was compacted), and survives a restart before and
// after its snapshot.
func TestScenarioJoinCompactRestart(t *testing.T) {
	c := New(Config{Seed: 6})
	elect(t, c, 1)
	for i := range 5 {
		require.NoError(t, c.Propose(1, fmt.Appendf(nil, "put k%d v", i)))
		c.Stabilize(1000)
	}
	for _, id := range c.IDs() {
		require.NoError(t, c.Compact(id))
	}
	x := c.NextID()
	require.NoError(t, c.ProposeConfig(1, AddData(x)))
	c.Stabilize(1000)
	settle(t, c, 20)
	n := c.Node(x)
	require.NotNil(t, n)
	require.Equal(t, "v", kvGet(c, x, "k4"))
	require.NotZero(t, n.Snapshot().Index, "caught up from a snapshot")
	c.Crash(x)
	require.NoError(t, c.Restart(x))
	settle(t, c, 5)
	require.Equal(t, "v", kvGet(c, x, "k4"))
	// And a removed node stays down.
	require.NoError(t, c.ProposeConfig(1, RemoveData(2)))
	c.Stabilize(1000)
	settle(t, c, 5)
	c.Crash(2)
	require.Error(t, c.Restart(2))
	require.NoError(t, c.CheckLiveness())
}

// Figure 8 of the Raft paper: a leader must not count replicas of an entry
// from an earlier term toward commit (§5.4.2). Node 1 replicates an entry
// of its first term to a majority only after being re-elected; if it then
// crashes, node 5 can still be elected and overwrite that entry, which is
// fine only because it was never committed. Had node 1 replicated an entry
// of its own term to the majority too, both would be committed and node 5
// could not win.
func TestScenarioFigure8(t *testing.T) {
	for _, commitOwnTerm := range []bool{false, true} {
		t.Run(fmt.Sprintf("commitOwnTerm=%v", commitOwnTerm), func(t *testing.T) {
			c := New(Config{Seed: 8, Voters: 5, Options: func(int64) []raft.Option {
				// Classic Raft, and one entry per append, to pace replication.
				return []raft.Option{raft.WithoutPreVote(), raft.WithoutCheckQuorum(), raft.MaxMsgBytes(1)}
			}})
			nw := c.Network()
			fig8(t, c, nw, commitOwnTerm)
		})
	}
}

func fig8(t *testing.T, c *Cluster, nw *Network, commitOwnTerm bool) {
	// (a) 1 leads term 1 and replicates entry 2 ("a") to 2 only.
	elect(t, c, 1)
	nw.Partition([]int64{1, 2}, []int64{3, 4, 5})
	require.NoError(t, c.Propose(1, []byte("put x a")))
	c.Stabilize(1000)
	require.Equal(t, int64(2), c.Node(2).Snapshot().Index+int64(len(c.Node(2).Entries())))

	// (b) 1 crashes; 5 is elected in term 2 by 3 and 4, appends its empty
	// entry at 2, and is cut off before it sends it.
	c.Crash(1)
	nw.Heal()
	nw.Isolate(2)
	require.NoError(t, c.Campaign(5))
	c.Process(5)
	c.Deliver()
	c.Process(3)
	c.Process(4)
	c.Deliver()
	nw.Isolate(5)
	c.Stabilize(1000)
	require.Equal(t, raft.StateLeader, c.Node(5).Status().RaftState)

	// (c) 5 crashes; 1 restarts and is elected in term 3 by 2 and 3 (after
	// losing term 2, where 3 had voted for 5).
	c.Crash(5)
	nw.Heal()
	nw.Isolate(4)
	require.NoError(t, c.Restart(1))
	require.NoError(t, c.Campaign(1))
	c.Stabilize(1000)
	require.NoError(t, c.Campaign(1))
	c.Process(1)
	c.Deliver()
	c.Process(2)
	c.Process(3)
	nw.Cut(1, 2) // 2 keeps its log: 1, "a"
	c.Deliver()
	require.Equal(t, raft.StateLeader, c.Node(1).Status().RaftState)
	require.Equal(t, int64(3), c.Node(1).Status().Term)
	// 1 brings 3 up to entry 2, one entry at a time: now 1, 2 and 3 hold
	// "a", a majority, but "a" is of term 1.
	for range 6 {
		c.Process(1)
		c.Process(3)
		c.Deliver()
		if len(c.Node(3).Entries()) >= 2 {
			break
		}
	}
	require.Len(t, c.Node(3).Entries(), 2, "%s", c.Trace(40))
	c.Process(1)
	if commitOwnTerm {
		// 1's entry of term 3 reaches 2 and 3 as well: both commit.
		nw.Heal()
		nw.Isolate(4)
		settle(t, c, 3)
		require.Equal(t, int64(3), c.Node(1).HardState().Commit, "%s", c.Trace(40))
	} else {
		require.Equal(t, int64(1), c.Node(1).HardState().Commit, "an entry of an earlier term does not commit by counting replicas")
	}

	// (d) 1 crashes; 5 restarts and campaigns, with 2, 3 and 4 reachable.
	c.Crash(1)
	nw.Heal()
	require.NoError(t, c.Restart(5))
	for range 3 {
		if c.Node(5).Status().RaftState == raft.StateLeader {
			break
		}
		_ = c.Campaign(5)
		c.Stabilize(1000)
	}
	if commitOwnTerm {
		require.NotEqual(t, raft.StateLeader, c.Node(5).Status().RaftState, "5's log is behind the committed entries")
	} else {
		require.Equal(t, raft.StateLeader, c.Node(5).Status().RaftState, "5 wins with its entry of term 2")
	}
	require.NoError(t, c.Restart(1))
	settle(t, c, 60)
	want := ""
	if commitOwnTerm {
		want = "a"
	}
	require.NoError(t, c.Propose(c.Leader(), []byte("put y done")))
	c.Stabilize(1000)
	requireAgree(t, c, "x", want)
	requireAgree(t, c, "y", "done")
}

// A node that missed 10,000 entries, all compacted away on the others while
// it was down, comes back from a snapshot and ends with the same state.
func TestScenarioCatchUpAfter10000CompactedEntries(t *testing.T) {
	c := New(Config{Seed: 11})
	elect(t, c, 1)
	c.Crash(3)
	const missed = 10000
	for i := 0; i < missed; {
		for range 100 {
			require.NoError(t, c.Propose(1, fmt.Appendf(nil, "put k%d v%d", i%1500, i)))
			i++
		}
		c.Stabilize(1000)
	}
	require.NoError(t, c.Err())
	for _, id := range []int64{1, 2} {
		require.NoError(t, c.Compact(id))
		require.Greater(t, c.Node(id).Snapshot().Index, int64(missed), "node %x compacted the entries node 3 missed", id)
	}

	require.NoError(t, c.Restart(3))
	settle(t, c, 3*10)
	require.NoError(t, c.Propose(1, []byte("put last 1")))
	c.Stabilize(1000)
	n3 := c.Node(3)
	require.Equal(t, c.Node(1).Snapshot().Index, n3.Snapshot().Index, "node 3 caught up from the leader's snapshot")
	require.Equal(t, c.Node(1).Applied(), n3.Applied())
	kv1, kv3 := c.Node(1).StateMachine().(*KV), n3.StateMachine().(*KV)
	require.Equal(t, 1501, kv3.Len())
	require.Equal(t, kv1.Digest(), kv3.Digest(), "node 3's state equals the leader's")
	require.NoError(t, c.CheckLiveness())
}
