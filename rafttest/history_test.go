package rafttest

import (
	"strings"
	"testing"

	"github.com/raftly/raft"
	"github.com/stretchr/testify/require"
)

// requireOp finds the one operation of the history that matches.
func requireOp(t *testing.T, c *Cluster, kind OpKind, key string, node int64) Op {
	t.Helper()
	var found []Op
	for _, o := range c.History() {
		if o.Kind == kind && o.Key == key && o.Node == node {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "%s %s on node %x in %v", kind, key, node, c.History())
	return found[0]
}

// A write returns when the node it was proposed on applies it; a read
// returns, through ReadIndex, what its node applied up to the ReadState's
// index.
func TestHistoryWriteThenRead(t *testing.T) {
	c := New(Config{Seed: 1})
	elect(t, c, 1)
	require.NoError(t, c.Propose(2, []byte("put x a"))) // forwarded to 1
	c.Stabilize(100)
	w := requireOp(t, c, OpPut, "x", 2)
	require.False(t, w.Open())
	require.Equal(t, "a", w.Value)
	require.Less(t, w.Call, w.Return)
	require.Less(t, w.CallStep, w.ReturnStep)
	require.Positive(t, w.Index)

	require.NoError(t, c.Read(3, "x"))
	require.NoError(t, c.Read(1, "y"))
	c.Stabilize(100)
	r := requireOp(t, c, OpGet, "x", 3)
	require.Equal(t, "a", r.Value)
	require.Greater(t, r.Call, w.Return)
	require.GreaterOrEqual(t, r.Index, w.Index)
	require.Less(t, r.Call, r.Return)
	r = requireOp(t, c, OpGet, "y", 1)
	require.Equal(t, "", r.Value)

	st := c.Stats()
	require.Equal(t, 1, st.Writes)
	require.Equal(t, 1, st.WritesDone)
	require.Equal(t, 2, st.Reads)
	require.Equal(t, 2, st.ReadsServed)
	require.Len(t, c.History(), 3)
}

// A read that ReadIndex refuses, and one never answered, are left out of
// the history; a write whose node crashed before applying it stays open.
func TestHistoryRefusedReadsAndOpenWrites(t *testing.T) {
	c := New(Config{Seed: 1})
	err := c.Read(2, "x") // no leader yet
	require.ErrorIs(t, err, raft.ErrReadDropped)

	elect(t, c, 1)
	c.Network().Isolate(1)
	require.NoError(t, c.Propose(1, []byte("put x lost")))
	require.NoError(t, c.Read(1, "x")) // no quorum confirms it
	c.Stabilize(100)
	c.Crash(1)
	require.NoError(t, c.Restart(1))
	c.Network().Heal()
	settle(t, c, 60)

	h := c.History()
	require.Len(t, h, 1, "%v", h)
	require.Equal(t, OpPut, h[0].Kind)
	require.True(t, h[0].Open())
	require.Zero(t, h[0].Index)
	st := c.Stats()
	require.Equal(t, 1, st.ReadsRefused)
	require.Equal(t, 1, st.Reads)
	require.Zero(t, st.ReadsServed)
	require.Zero(t, st.WritesDone)
}

// With UnsafeLocalReads a read returns at once what its node applied: a
// node cut off from the leader returns a stale value.
func TestHistoryUnsafeLocalReads(t *testing.T) {
	c := New(Config{Seed: 1, UnsafeLocalReads: true})
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x old")))
	c.Stabilize(100)
	c.Network().Isolate(3)
	require.NoError(t, c.Propose(1, []byte("put x new")))
	c.Stabilize(100)
	require.NoError(t, c.Read(3, "x"))
	r := requireOp(t, c, OpGet, "x", 3)
	require.Equal(t, "old", r.Value)
	require.Equal(t, r.CallStep, r.ReturnStep)
	require.Equal(t, r.Call+1, r.Return)
}

// A forwarded proposal that the network duplicates is appended twice by
// the leader; the application applies the request once.
func TestDuplicateProposalAppliedOnce(t *testing.T) {
	c := New(Config{Seed: 1})
	elect(t, c, 1)
	c.Network().SetLinkFaults(2, 1, Faults{Duplicate: 1})
	require.NoError(t, c.Propose(2, []byte("put x a")))
	c.Stabilize(100)
	settle(t, c, 3)
	require.Positive(t, c.Stats().Duplicates)
	require.Equal(t, 1, c.Stats().WritesDone)
	requireAgree(t, c, "x", "a")
}

func TestTransferLeadership(t *testing.T) {
	c := New(Config{Seed: 1, Learners: 1})
	elect(t, c, 1)
	require.ErrorIs(t, c.TransferLeadership(2, 3), raft.ErrNotLeader)
	require.ErrorIs(t, c.TransferLeadership(1, 4), raft.ErrTransferRefused) // a learner
	require.NoError(t, c.TransferLeadership(1, 3))
	settle(t, c, 3)
	require.Equal(t, int64(3), c.Leader())
	st := c.Stats()
	require.Equal(t, 1, st.Transfers)
	require.Equal(t, 2, st.TransfersRefused)
	require.Equal(t, 1, st.TransfersDone)
}

// A node added as a learner starts as one, catches up, and is promoted.
func TestLearnerAddedThenPromoted(t *testing.T) {
	c := New(Config{Seed: 1})
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x a")))
	id := c.NextID()
	require.NoError(t, c.ProposeConfig(1, AddLearnerData(id)))
	settle(t, c, 5)
	require.NotNil(t, c.Node(id))
	voters, learners := c.Members()
	require.Equal(t, []int64{1, 2, 3}, voters)
	require.Equal(t, []int64{id}, learners)
	require.Equal(t, "a", kvGet(c, id, "x"))
	require.Contains(t, c.Node(id).Status().Learners, id)

	require.NoError(t, c.ProposeConfig(1, PromoteData(id)))
	settle(t, c, 5)
	voters, learners = c.Members()
	require.Equal(t, []int64{1, 2, 3, id}, voters)
	require.Empty(t, learners)
	require.Contains(t, c.Node(id).Status().Voters, id)
}

// The histories of random runs are well formed: every event has a time of
// its own, every operation that returned did so after its call, every
// read returned a value some write wrote (the simulator's values are
// unique), and the counts agree with the Stats.
func TestRandomHistoriesWellFormed(t *testing.T) {
	var reads, writes, lease int
	for seed := uint64(0); seed < 40; seed++ {
		cfg := randomConfig(seed, 3+2*int(seed%2))
		c, err := Run(cfg, 2000)
		require.NoError(t, err)
		h := c.History()
		st := c.Stats()
		times := map[int64]bool{}
		values := map[string]bool{"": true}
		done, served := 0, 0
		for i, o := range h {
			require.False(t, times[o.Call], "seed %d: time %d twice", seed, o.Call)
			times[o.Call] = true
			if i > 0 {
				require.Greater(t, o.Call, h[i-1].Call, "seed %d: not in call order", seed)
			}
			if !o.Open() {
				require.False(t, times[o.Return], "seed %d: time %d twice", seed, o.Return)
				times[o.Return] = true
				require.Less(t, o.Call, o.Return)
				require.LessOrEqual(t, o.CallStep, o.ReturnStep)
				require.Positive(t, o.Index)
			}
			switch o.Kind {
			case OpPut:
				values[o.Key+"="+o.Value] = true
				if !o.Open() {
					done++
				}
			case OpDelete:
				if !o.Open() {
					done++
				}
			case OpGet:
				require.False(t, o.Open())
				served++
			}
		}
		for _, o := range h {
			if o.Kind == OpGet && o.Value != "" {
				require.True(t, values[o.Key+"="+o.Value], "seed %d: %v reads a value no write wrote", seed, o)
			}
		}
		require.Equal(t, st.WritesDone, done, "seed %d", seed)
		require.Equal(t, st.ReadsServed, served, "seed %d", seed)
		require.Equal(t, st.Writes, len(h)-served, "seed %d", seed)
		reads += served
		writes += done
		if cfg.SteadyClocks {
			lease++
		}
	}
	require.Positive(t, lease)
	t.Logf("40 seeds: %d writes and %d reads returned", writes, reads)
	require.Greater(t, reads, 40*5)
	require.Greater(t, writes, 40*20)
}

// A removed leader that still leads (until the remaining voters acknowledge
// its removal) must confirm reads with the remaining voters, even when one
// voter remains: it is not that voter. Here node 2, the only voter left,
// elects itself and commits a write that returns; node 1, still leading
// term 1, must not serve a read of the value before it.
func TestScenarioRemovedLeaderReadIsConfirmed(t *testing.T) {
	c := New(Config{Seed: 1, Voters: 2})
	elect(t, c, 1)
	require.NoError(t, c.Propose(1, []byte("put x 1")))
	c.Stabilize(100)
	require.NoError(t, c.ProposeConfig(1, RemoveData(1)))
	c.Process(1)
	c.Deliver()
	c.Process(2)
	c.Deliver()
	c.Process(1) // 1 commits and applies its removal, and tells 2
	require.Equal(t, []int64{2}, c.Node(1).Status().Voters)
	c.Network().Cut(2, 1) // 1 never learns that 2 knows
	c.Deliver()
	c.Process(2) // 2 applies it too
	c.Network().Cut(1, 2)
	for i := 0; i < 40 && c.Node(2).Status().RaftState != raft.StateLeader; i++ {
		c.TickNode(2) // ReadIndex rests on no clock: 1's may stand still
		c.Stabilize(10)
	}
	require.Equal(t, raft.StateLeader, c.Node(1).Status().RaftState)
	require.Equal(t, raft.StateLeader, c.Node(2).Status().RaftState)
	require.NoError(t, c.Propose(2, []byte("put x 2")))
	c.Stabilize(10)
	require.False(t, requireOp(t, c, OpPut, "x", 2).Open())
	require.NoError(t, c.Read(1, "x"))
	c.Stabilize(10)
	for _, o := range c.History() {
		if o.Kind == OpGet {
			require.Equal(t, "2", o.Value, "a stale read: %v\nhistory: %v\n%s", o, c.History(), strings.Join(c.Trace(20), "\n"))
		}
	}
	require.NoError(t, c.Err())
}
