package rafttest

import (
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// deliveries sends k heartbeats (numbered by Commit) from -> to through
// the network, runs delivery rounds until none is in flight, and returns
// the numbers as delivered, in order.
func deliveries(t *testing.T, c *Cluster, from, to int64, k int) []int64 {
	t.Helper()
	start := c.trace.total
	for i := 1; i <= k; i++ {
		c.net.send(raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: to, Term: 1, Commit: int64(i)}, 1)
	}
	for c.net.InFlight() > 0 {
		c.Deliver()
	}
	require.NoError(t, c.Err())
	var got []int64
	for _, e := range c.trace.ring[start:] {
		if e.kind == evDeliver && e.msg.From == from && e.msg.To == to {
			got = append(got, e.msg.Commit)
		}
	}
	return got
}

func TestNetworkFaults(t *testing.T) {
	c := New(Config{Seed: 1})
	nw := c.Network()
	require.Equal(t, []int64{1, 2, 3}, deliveries(t, c, 1, 2, 3), "a perfect link")

	nw.SetLinkFaults(1, 2, Faults{Drop: 1})
	require.Empty(t, deliveries(t, c, 1, 2, 3), "a link that loses everything")
	require.Len(t, deliveries(t, c, 2, 1, 3), 3, "only that way")

	nw.SetLinkFaults(1, 2, Faults{Duplicate: 1})
	require.Equal(t, []int64{1, 1, 2, 2}, deliveries(t, c, 1, 2, 2))

	nw.SetLinkFaults(1, 2, Faults{MaxDelay: 5})
	got := deliveries(t, c, 1, 2, 50)
	require.IsIncreasing(t, got, "delayed but in order")
	require.Len(t, got, 50)

	nw.SetLinkFaults(1, 2, Faults{MaxDelay: 5, Reorder: 1})
	got = deliveries(t, c, 1, 2, 50)
	require.Len(t, got, 50)
	ordered := true
	for i := 1; i < len(got); i++ {
		ordered = ordered && got[i] > got[i-1]
	}
	require.False(t, ordered, "reordered")

	nw.ClearFaults()
	nw.Cut(1, 2)
	require.Empty(t, deliveries(t, c, 1, 2, 2), "a cut link")
	require.Len(t, deliveries(t, c, 2, 1, 2), 2, "asymmetric: 1 still hears 2")
	require.Equal(t, [][2]int64{{1, 2}}, nw.Cuts())
	nw.Heal()
	nw.Partition([]int64{1}, []int64{2, 3})
	require.Empty(t, deliveries(t, c, 3, 1, 1))
	require.Len(t, deliveries(t, c, 3, 2, 1), 1)
	nw.Heal()
	nw.Isolate(2)
	require.Empty(t, deliveries(t, c, 2, 3, 1))
	require.Empty(t, deliveries(t, c, 1, 2, 1))
	require.Len(t, deliveries(t, c, 1, 3, 1), 1)
	nw.Heal()

	c.Crash(3)
	require.Empty(t, deliveries(t, c, 1, 3, 1), "a node that is down")
}
