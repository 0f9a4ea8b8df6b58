package raft

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// takenProposals queues an entry per data (a "config:" prefix makes it a
// config entry) and takes them, as the node's goroutine would.
func takenProposals(n *node, data ...string) inputBatch {
	for _, d := range data {
		e := raftpb.Entry{Type: raftpb.EntryNormal, Data: []byte(d)}
		if len(d) > 7 && d[:7] == "config:" {
			e.Type = raftpb.EntryConfig
		}
		_ = n.inputs.propose(n.inputs.newProposal(e))
	}
	b, _ := n.inputs.take(inputBatch{}, true)
	return b
}

func outcomes(props []*proposal) []error {
	var errs []error
	for _, p := range props {
		errs = append(errs, <-p.result)
	}
	return errs
}

// Proposals taken together go into the leader's log in one append, and
// each peer gets one message carrying all of them; a config entry among
// them keeps its place.
func TestNodeProposalsTakenTogetherShareOneAppend(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	leader := nw.nodes[1].rn
	n := &node{id: 1}
	b := takenProposals(n, "a", "b", "config:c", "d", "e")
	taken := slices.Clone(b.proposals)
	n.process(leader, &b)
	require.Equal(t, []error{nil, nil, nil, nil, nil}, outcomes(taken))

	rd := leader.Ready()
	require.Len(t, rd.Entries, 5)
	require.Equal(t, raftpb.EntryConfig, rd.Entries[2].Type)
	perPeer := map[int64][]raftpb.Message{}
	for _, m := range rd.Messages {
		if m.Type == raftpb.MsgApp {
			perPeer[m.To] = append(perPeer[m.To], m)
		}
	}
	for _, peer := range []int64{2, 3} {
		require.Len(t, perPeer[peer], 1, "appends to %d", peer)
		require.Equal(t, []string{"a", "b", "config:c", "d", "e"}, entryData(perPeer[peer][0].Entries))
	}
}

// When proposals taken together are refused together (here: too many
// uncommitted bytes), each is tried alone, so those that fit go in.
func TestNodeRefusedBatchIsRetriedOneByOne(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3}, MaxUncommittedBytes(10))
	nw.campaign(1)
	leader := nw.nodes[1].rn
	require.NoError(t, leader.Propose([]byte("aaaa")), "4 uncommitted bytes")
	n := &node{id: 1}
	b := takenProposals(n, "bbbb", "cccc", "dddd")
	taken := slices.Clone(b.proposals)
	n.process(leader, &b)
	require.Equal(t, []error{nil, ErrProposalDropped, ErrProposalDropped}, outcomes(taken))
	require.Equal(t, []string{"aaaa", "bbbb"}, entryData(leader.Ready().Entries))
}

// A proposal withdrawn before the goroutine took it (its ctx ended while
// no leader was known) is never proposed.
func TestNodeWithdrawnProposalIsNeverProposed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := StartNode(1, nil, 10, 1)
		defer n.Stop()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- n.Propose(ctx, []byte("withdrawn")) }()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)

		require.NoError(t, n.Campaign(context.Background()))
		require.NoError(t, n.Propose(context.Background(), []byte("kept")))
		require.Equal(t, []string{"kept"}, entryData(drainReadys(t, n)))
	})
}

// Step waits while the message queue is full, until the goroutine takes
// the queue or the caller's ctx ends; after stop it returns ErrStopped.
func TestInputsStepWaitsForRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var in inputs
		in.wake = make(chan struct{}, 1)
		m := raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 1}
		for range maxQueuedMessages {
			require.NoError(t, in.deliver(context.Background(), m))
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		require.ErrorIs(t, in.deliver(ctx, m), context.Canceled, "full queue, ctx ended")

		done := make(chan error, 1)
		go func() { done <- in.deliver(context.Background(), m) }()
		synctest.Wait()
		require.Empty(t, done, "Step returned while the queue is full")
		b, _ := in.take(inputBatch{}, true)
		require.Len(t, b.messages, maxQueuedMessages)
		require.NoError(t, <-done)

		go func() {
			for range maxQueuedMessages {
				_ = in.deliver(context.Background(), m)
			}
			done <- in.deliver(context.Background(), m)
		}()
		synctest.Wait()
		in.stop()
		require.ErrorIs(t, <-done, ErrStopped)
	})
}

// Ticks never block the caller and are never dropped, however many wait.
func TestInputsTicksAreNeverDropped(t *testing.T) {
	var in inputs
	in.wake = make(chan struct{}, 1)
	for range 1000 {
		in.tick()
	}
	b, _ := in.take(inputBatch{}, true)
	require.Equal(t, 1000, b.ticks)
}

// Proposals withdrawn while no leader is known do not pile up.
func TestInputsDropWithdrawnProposals(t *testing.T) {
	var in inputs
	in.wake = make(chan struct{}, 1)
	for range 10 {
		p := in.newProposal(raftpb.Entry{Data: []byte("x")})
		require.NoError(t, in.propose(p))
		require.True(t, p.withdraw())
	}
	require.NoError(t, in.propose(in.newProposal(raftpb.Entry{Data: []byte("kept")})))
	_, held := in.take(inputBatch{}, false)
	require.True(t, held)
	require.Len(t, in.proposals, 1)
}

// Proposals stay queued while the goroutine takes inputs without them (no
// leader known), and the take says so.
func TestInputsHoldProposalsUntilAsked(t *testing.T) {
	var in inputs
	in.wake = make(chan struct{}, 1)
	require.NoError(t, in.propose(in.newProposal(raftpb.Entry{Data: []byte("x")})))
	b, held := in.take(inputBatch{}, false)
	require.True(t, held)
	require.Empty(t, b.proposals)
	b, held = in.take(b, true)
	require.False(t, held)
	require.Len(t, b.proposals, 1)
}

// Proposals taken together go in messages of at most MaxMsgBytes of data
// (a config entry alone), so that a follower forwards what a transport
// takes.
func TestProposalRuns(t *testing.T) {
	var in inputs
	prop := func(typ raftpb.EntryType, size int) *proposal {
		return in.newProposal(raftpb.Entry{Type: typ, Data: make([]byte, size)})
	}
	props := []*proposal{
		prop(raftpb.EntryNormal, 40), prop(raftpb.EntryNormal, 40), prop(raftpb.EntryNormal, 40),
		prop(raftpb.EntryConfig, 1), prop(raftpb.EntryNormal, 500),
	}
	var runs []int
	for rest := props; len(rest) > 0; {
		n := proposalRun(rest, 100)
		runs = append(runs, n)
		rest = rest[n:]
	}
	require.Equal(t, []int{2, 1, 1, 1}, runs)
	require.Equal(t, 3, proposalRun(props, 0), "no limit")
}
