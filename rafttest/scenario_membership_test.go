package rafttest

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Named scenarios about membership after crashes and joins: a node must
// never campaign, or count votes, on a membership it has not reached yet
// or has left behind.

// configIndex returns the index of the config entry with data in the log
// on id's disk, or 0.
func configIndex(c *Cluster, id int64, data []byte) int64 {
	for _, e := range c.Node(id).Entries() {
		if e.Type == raftpb.EntryConfig && bytes.Equal(e.Data, data) {
			return e.Index
		}
	}
	return 0
}

// diskLast returns the index of the last entry on id's disk.
func diskLast(c *Cluster, id int64) int64 { return c.Node(id).disk.lastIndex() }

// appendInFlight returns the number of entries beyond to's disk that a
// MsgApp in flight to to carries, if one carries every entry from to's
// next index through index want; else 0.
func appendInFlight(c *Cluster, to, want int64) int {
	last := diskLast(c, to)
	for _, env := range c.net.inflight {
		m := &env.m
		if m.Type != raftpb.MsgApp || m.To != to || len(m.Entries) == 0 {
			continue
		}
		first, end := m.Entries[0].Index, m.Entries[len(m.Entries)-1].Index
		if first <= last+1 && end >= want {
			return int(end - last)
		}
	}
	return 0
}

// feedUntilAppend runs the cluster, ticking the leader, until a MsgApp
// carrying entries through index want is in flight to node to, delivers
// it, and returns how many entries beyond to's disk it brought; 0 if none
// came.
func feedUntilAppend(t *testing.T, c *Cluster, lead, to, want int64) int {
	t.Helper()
	for range 50 {
		for range 20 {
			for _, id := range c.Running() {
				c.Process(id)
			}
			if k := appendInFlight(c, to, want); k > 0 {
				c.Deliver()
				require.NoError(t, c.Err())
				return k
			}
			if c.Deliver() == 0 && c.net.InFlight() == 0 {
				break
			}
		}
		c.TickNode(lead)
	}
	require.NoError(t, c.Err())
	return 0
}

// since returns the trace events recorded from step on (all kept).
func since(c *Cluster, step int) []event {
	var out []event
	for i := range c.trace.ring {
		if e := c.trace.ring[i]; e.step >= step {
			out = append(out, e)
		}
	}
	return out
}

// ledSince reports whether id handled a Ready as leader from step on.
func ledSince(c *Cluster, id int64, step int) bool {
	for _, e := range since(c, step) {
		if e.kind == evReady && e.node == id && e.rd.soft != nil && e.rd.soft.RaftState == raft.StateLeader {
			return true
		}
	}
	return false
}

// voteRequestsSince returns the recipients of the vote and pre-vote
// requests id sent from step on (delivered or lost).
func voteRequestsSince(c *Cluster, id int64, step int) []int64 {
	var to []int64
	for _, e := range since(c, step) {
		if (e.kind == evDeliver || e.kind == evDrop) && e.msg.From == id &&
			(e.msg.Type == raftpb.MsgVote || e.msg.Type == raftpb.MsgPreVote) && !slices.Contains(to, e.msg.To) {
			to = append(to, e.msg.To)
		}
	}
	slices.Sort(to)
	return to
}

// A node crashes after persisting a Ready's entries but not its HardState,
// two config changes behind: the entries hold two config entries the rest
// of the cluster committed (removing 4, then 3), its persisted commit is
// before both. Restarted in a partition with 3 and 4, which on the old
// membership {1..5} would elect it, it must not win: it raises its commit
// to the first of the two entries (the last-but-one config entry), applies
// it, and so neither asks 4 for a vote nor reaches a quorum. After the heal
// it catches up and the cluster goes on.
func TestScenarioCrashMidPersistTwoConfigsBehind(t *testing.T) {
	c := New(Config{Seed: 21, Voters: 5})
	nw := c.Network()
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x 1")))
	c.Stabilize(1000)
	persisted := c.Node(5).HardState().Commit

	nw.Isolate(5)
	require.NoError(t, c.ProposeConfig(1, RemoveData(4)))
	c.Stabilize(1000)
	require.NoError(t, c.ProposeConfig(1, RemoveData(3)))
	c.Stabilize(1000)
	require.NoError(t, c.Propose(1, []byte("put x 2")))
	c.Stabilize(1000)
	require.NoError(t, c.Err())
	a, b := configIndex(c, 1, RemoveData(4)), configIndex(c, 1, RemoveData(3))
	require.NotZero(t, a)
	require.Greater(t, b, a)
	voters, _ := c.Members()
	require.Equal(t, []int64{1, 2, 5}, voters)
	require.True(t, c.Node(3).Removed())
	require.True(t, c.Node(4).Removed())
	require.Less(t, diskLast(c, 5), a, "5 missed both changes")

	// 5 hears from the leader again: the append that brings both config
	// entries (and the commit covering them) reaches it, and it crashes
	// after persisting the entries, before the HardState.
	nw.Heal()
	k := feedUntilAppend(t, c, 1, 5, b)
	require.NotZero(t, k, "no append carrying %d to 5\n%s", b, c.Trace(60))
	c.CrashMidPersist(5, k)
	require.NoError(t, c.Err())
	require.GreaterOrEqual(t, diskLast(c, 5), b, "the entries reached the disk")
	require.Less(t, c.Node(5).HardState().Commit, a, "the HardState that committed them did not")
	require.GreaterOrEqual(t, c.Node(5).HardState().Commit, persisted)

	// 5 restarts cut off with the two removed nodes, which still answer.
	nw.Partition([]int64{1, 2}, []int64{3, 4, 5})
	mark := c.Steps() + 1
	require.NoError(t, c.Restart(5))
	settle(t, c, 150)
	require.NoError(t, c.Err())
	require.False(t, ledSince(c, 5, mark), "5 won an election on the old membership\n%s", c.Trace(80))
	require.NotContains(t, voteRequestsSince(c, 5, mark), int64(4), "5 asked a node removed by a committed entry for its vote")
	st := c.Node(5).Status()
	require.GreaterOrEqual(t, st.Applied, a, "5 raised its commit to the last-but-one config entry and applied it")
	require.GreaterOrEqual(t, c.Node(5).HardState().Commit, a, "and persisted the raised commit")
	require.NotContains(t, st.Voters, int64(4))
	require.Equal(t, int64(1), c.Leader(), "the majority side keeps its leader")

	// Heal: 5 catches up to the current membership, and everyone goes on.
	nw.Heal()
	settle(t, c, 30)
	require.Equal(t, []int64{1, 2, 5}, c.Node(5).Status().Voters)
	lead := c.Leader()
	require.NotZero(t, lead)
	require.Contains(t, []int64{1, 2, 5}, lead)
	require.NoError(t, c.Propose(lead, []byte("put x 3")))
	c.Stabilize(1000)
	for _, id := range []int64{1, 2, 5} {
		require.Equal(t, "3", kvGet(c, id, "x"), "node %x", id)
	}
	require.NoError(t, c.CheckLiveness())
}

// A node joins with an empty log after earlier nodes were added and
// removed (4 and 5 added, then 4, 5 and 3 removed; 6 joins at J with
// voters {1,2,6}). It crashes with part of the log on its disk (through
// the entry removing 4, with no commit index), restarts cut off with the
// removed nodes 3, 4 and 5 while it replays, and is restarted again there.
// The membership calls it replays for entries up to J change nothing: its
// voters never include a removed node (a replayed "add 4" would bring 4
// back, and with 4 and 5 it would hold a majority of {1,2,4,5,6}); it
// never campaigns before it has applied J, so it never leads on the votes
// of removed nodes. After the heal it applies J with voters {1,2,6} and
// the cluster goes on.
func TestScenarioJoinAfterChurnWithStaleMembers(t *testing.T) {
	var x, join int64
	removed := []int64{3, 4, 5}
	c := New(Config{Seed: 22, Checks: []func(c *Cluster) error{func(c *Cluster) error {
		n := c.Node(x)
		if x == 0 || n == nil || !n.Running() {
			return nil
		}
		for _, id := range n.Status().Voters {
			if slices.Contains(removed, id) {
				return fmt.Errorf("joining node %x counts removed node %x among its voters %x (applied %d, joined at %d)",
					x, id, n.Status().Voters, n.Applied(), join)
			}
		}
		return nil
	}}})
	nw := c.Network()
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put y 1")))
	c.Stabilize(1000)
	a4, a5 := c.NextID(), c.NextID()
	require.Equal(t, []int64{4, 5}, []int64{a4, a5})
	for _, d := range [][]byte{AddData(4), AddData(5), RemoveData(4), RemoveData(5), RemoveData(3)} {
		require.NoError(t, c.ProposeConfig(1, d), "%s", d)
		c.Stabilize(1000)
		settle(t, c, 2)
	}
	voters, _ := c.Members()
	require.Equal(t, []int64{1, 2}, voters)
	for _, id := range removed {
		require.True(t, c.Node(id).Removed(), "node %x", id)
		require.True(t, c.Node(id).Running(), "node %x still runs and answers", id)
	}
	q1 := configIndex(c, 1, RemoveData(4))
	require.NotZero(t, q1)

	// 6 is added; it starts when the leader applies J, and the leader's
	// append with the whole log reaches it. It crashes having persisted
	// the entries up to the removal of 4, and no commit index.
	x = c.NextID()
	require.Equal(t, int64(6), x)
	require.NoError(t, c.ProposeConfig(1, AddData(x)))
	for range 20 {
		if c.Node(x) != nil {
			break
		}
		c.ProcessAll()
		c.Deliver()
	}
	require.NotNil(t, c.Node(x), "6 started")
	join = c.Node(x).JoinIndex()
	require.Equal(t, configIndex(c, 1, AddData(x)), join)
	require.Equal(t, []int64{1, 2, 6}, c.Node(x).Status().Voters)
	k := feedUntilAppend(t, c, 1, x, q1)
	require.NotZero(t, k, "no append to 6\n%s", c.Trace(60))
	require.Zero(t, diskLast(c, x), "6 had nothing on its disk")
	c.CrashMidPersist(x, int(q1))
	require.Equal(t, q1, diskLast(c, x))
	require.Zero(t, c.Node(x).HardState().Commit, "no commit index on its disk")

	// Cut off with the removed nodes, 6 restarts and replays; then it is
	// restarted again, still cut off.
	nw.Partition([]int64{1, 2}, []int64{3, 4, 5, 6})
	mark := c.Steps() + 1
	for round := range 2 {
		if round > 0 {
			c.Crash(x)
		}
		require.NoError(t, c.Restart(x))
		settle(t, c, 150)
		require.NoError(t, c.Err())
		st := c.Node(x).Status()
		require.Less(t, st.Applied, join)
		require.Equal(t, []int64{1, 2, 6}, st.Voters, "replayed membership calls change nothing")
		require.ErrorIs(t, c.Campaign(x), raft.ErrCannotCampaign, "no campaign before J is applied")
		require.NoError(t, c.Err())
	}
	require.False(t, ledSince(c, x, mark), "6 led on the votes of removed nodes\n%s", c.Trace(80))
	require.Empty(t, voteRequestsSince(c, x, mark), "6 campaigned before applying J")
	require.Equal(t, int64(1), c.Leader(), "1 and 2 are a majority of {1,2,6}")

	// Heal: 6 catches up, applies J, and counts only 1, 2 and itself.
	nw.Heal()
	settle(t, c, 30)
	st := c.Node(x).Status()
	require.GreaterOrEqual(t, st.Applied, join)
	require.Equal(t, []int64{1, 2, 6}, st.Voters)
	require.NoError(t, c.Propose(c.Leader(), []byte("put y 2")))
	c.Stabilize(1000)
	for _, id := range []int64{1, 2, 6} {
		require.Equal(t, "2", kvGet(c, id, "y"), "node %x", id)
	}
	require.NoError(t, c.CheckLiveness())
}
