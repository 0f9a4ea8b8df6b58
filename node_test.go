package raft

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Tests of the goroutine-driven Node. They run inside testing/synctest
// bubbles: time is the bubble's fake clock or explicit Tick calls, and
// synctest.Wait tells when every goroutine of the test (the node's
// included) has nothing left to do. synctest.Test also fails the test when
// a goroutine of the bubble is still blocked once the test function
// returns, which is how these tests catch a leaked node goroutine.

// readyNow returns the Ready the node offers once everything in the bubble
// has settled, and false when it offers none. The node's goroutine is then
// blocked in its select, so a Ready it has is waiting on the channel.
func readyNow(n Node) (Ready, bool) {
	synctest.Wait()
	select {
	case rd := <-n.Ready():
		return rd, true
	default:
		return Ready{}, false
	}
}

func mustReady(t *testing.T, n Node) Ready {
	t.Helper()
	rd, ok := readyNow(n)
	require.True(t, ok, "the node offers no Ready")
	return rd
}

// drainReadys takes Readys until the node offers none, and returns the
// committed entries they handed out. It makes no membership call: a config
// entry is rejected.
func drainReadys(t *testing.T, n Node) []raftpb.Entry {
	t.Helper()
	var committed []raftpb.Entry
	for i := 0; ; i++ {
		require.Less(t, i, 1000, "the node keeps offering Readys")
		rd, ok := readyNow(n)
		if !ok {
			return committed
		}
		committed = append(committed, rd.CommittedEntries...)
	}
}

func entryData(ents []raftpb.Entry) []string {
	var out []string
	for _, e := range ents {
		if len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}

// panicValue runs f and returns what it panicked with, or nil.
func panicValue(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func TestNodeStopIsIdempotentAndEndsGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := StartNode(1, nil, 10, 1)
		require.NoError(t, n.Campaign(context.Background()))
		// A Ready is offered and a proposal waits: Stop must end both.
		_, ok := readyNow(n)
		require.True(t, ok)

		stopper := StartNode(2, []int64{3}, 10, 1)
		proposed := make(chan error, 1)
		go func() { proposed <- stopper.Propose(context.Background(), []byte("x")) }()
		synctest.Wait()
		require.Empty(t, proposed, "Propose returned while no leader is known")

		var wg sync.WaitGroup
		for range 3 {
			wg.Go(n.Stop)
			wg.Go(stopper.Stop)
		}
		wg.Wait()
		n.Stop()
		stopper.Stop()
		require.ErrorIs(t, <-proposed, ErrStopped)
		// Returning with the nodes' goroutines still blocked would fail the
		// test: synctest.Test reports a deadlocked bubble.
	})
}

func TestNodeCallsAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := StartNode(1, []int64{2, 3}, 10, 1)
		require.NoError(t, n.Campaign(ctx))
		_, ok := readyNow(n)
		require.True(t, ok, "a Ready is waiting before Stop")
		readyc := n.Ready()
		n.Stop()

		for range 1000 { // more than any buffer of ticks
			n.Tick()
		}
		require.ErrorIs(t, n.Campaign(ctx), ErrStopped)
		require.ErrorIs(t, n.Propose(ctx, []byte("x")), ErrStopped)
		require.ErrorIs(t, n.Configure(ctx, []byte("x")), ErrStopped)
		require.ErrorIs(t, n.Step(ctx, raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 5}), ErrStopped)
		require.ErrorIs(t, n.Compact(1, []int64{1, 2, 3}, nil), ErrStopped)
		n.AddNode(4) // no panic: after Stop the membership calls return at once
		n.RemoveNode(2)
		n.ReportUnreachable(2)
		n.ReportSnapshot(2, SnapshotFailure)
		require.Zero(t, n.Status())

		require.Equal(t, readyc, n.Ready())
		synctest.Wait() // anything that could still hand out a Ready would be waiting to
		select {
		case rd := <-n.Ready():
			t.Fatalf("a Ready was delivered after Stop: %+v", rd)
		default:
		}
	})
}

func TestNodeReadyReturnsTheSameChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := StartNode(1, nil, 10, 1)
		defer n.Stop()
		first := n.Ready()
		require.NoError(t, n.Campaign(context.Background()))
		rd, ok := readyNow(n) // received from a fresh call of Ready
		require.True(t, ok)
		require.NotNil(t, rd.SoftState)
		require.Equal(t, first, n.Ready())
	})
}

func TestNodeLoneProposeCommits(t *testing.T) {
	// A one-node cluster: once it leads, a single Propose commits with no
	// input but receiving Readys (API.md, The loop).
	for _, how := range []string{"campaign", "ticks"} {
		t.Run(how, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				n := StartNode(1, nil, 10, 1)
				defer n.Stop()
				if how == "campaign" {
					require.NoError(t, n.Campaign(ctx))
				} else {
					for i := 0; n.Status().RaftState != StateLeader; i++ {
						require.Less(t, i, 20, "no leader after two election timeouts")
						n.Tick()
						synctest.Wait() // the tick is taken
					}
				}
				drainReadys(t, n)
				require.NoError(t, n.Propose(ctx, []byte("lone")))
				require.Equal(t, []string{"lone"}, entryData(drainReadys(t, n)))
			})
		})
	}
}

func TestNodeProposeWaitsForLeader(t *testing.T) {
	t.Run("until ctx ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			// Node 1 of three whose peers never answer: no leader, ever.
			n := StartNode(1, []int64{2, 3}, 10, 1)
			defer n.Stop()
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.ErrorIs(t, n.Propose(ctx, []byte("x")), context.DeadlineExceeded)
			require.Equal(t, time.Minute, time.Since(start), "Propose returned before its ctx ended")

			ctx, cancel = context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- n.Propose(ctx, []byte("y")) }()
			synctest.Wait()
			require.Empty(t, done, "Propose returned while no leader is known")
			cancel()
			require.ErrorIs(t, <-done, context.Canceled)
			require.Zero(t, n.Status().Commit)
		})
	})
	t.Run("until a leader is known", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := StartNode(1, nil, 10, 1)
			defer n.Stop()
			done := make(chan error, 1)
			go func() { done <- n.Propose(context.Background(), []byte("waited")) }()
			synctest.Wait()
			require.Empty(t, done, "Propose returned while no leader is known")
			require.NoError(t, n.Campaign(context.Background()))
			require.NoError(t, <-done)
			require.Equal(t, []string{"waited"}, entryData(drainReadys(t, n)))
		})
	})
}

// leadOneNode starts a one-node cluster, makes it leader and takes the
// Readys until it is idle, so that its first entry is committed.
func leadOneNode(t *testing.T) Node {
	n := StartNode(1, nil, 10, 1)
	require.NoError(t, n.Campaign(context.Background()))
	drainReadys(t, n)
	require.Equal(t, StateLeader, n.Status().RaftState)
	return n
}

func TestNodeConfigureWhilePendingIsDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := StartNode(1, nil, 10, 1)
		defer n.Stop()
		require.NoError(t, n.Campaign(ctx))
		require.ErrorIs(t, n.Configure(ctx, []byte("early")), ErrProposalDropped,
			"a leader that has not committed an entry of its term refuses a change")
		drainReadys(t, n)

		require.NoError(t, n.Configure(ctx, []byte("first")))
		require.ErrorIs(t, n.Configure(ctx, []byte("second")), ErrProposalDropped, "pending in the log")
		require.NoError(t, n.Propose(ctx, []byte("normal")), "only config entries are refused")

		rd := mustReady(t, n) // hands out the entries
		require.Empty(t, rd.CommittedEntries)
		require.ErrorIs(t, n.Configure(ctx, []byte("second")), ErrProposalDropped, "pending, persisted")
		rd = mustReady(t, n)
		require.Equal(t, []string{"first"}, entryData(rd.CommittedEntries), "a Ready ends at its config entry")
		require.ErrorIs(t, n.Configure(ctx, []byte("second")), ErrProposalDropped, "pending while being applied")
	})
}

func TestNodeRejectedChangeDoesNotBlockNext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := leadOneNode(t)
		defer n.Stop()
		for _, change := range []string{"rejected 1", "rejected 2", "rejected 3"} {
			require.NoError(t, n.Configure(ctx, []byte(change)), "the change before was rejected and must not block this one")
			var rd Ready
			for i := 0; len(rd.CommittedEntries) == 0; i++ {
				require.Less(t, i, 5)
				rd = mustReady(t, n)
			}
			last := rd.CommittedEntries[len(rd.CommittedEntries)-1]
			require.Equal(t, EntryConfig, last.Type)
			require.Equal(t, change, string(last.Data))
			// The application rejects the change: no AddNode or RemoveNode.
			require.ErrorIs(t, n.Configure(ctx, []byte("too early")), ErrProposalDropped)

			// The idle node has nothing else to hand out, but the Ready
			// after a config entry comes anyway: taking it settles the change.
			rd = mustReady(t, n)
			require.Empty(t, rd.Entries)
			require.Empty(t, rd.CommittedEntries)
			require.Empty(t, rd.Messages)
			_, more := readyNow(n)
			require.False(t, more, "an empty Ready comes only after a config entry")
		}
	})
}

func TestNodeMembershipCallWithoutConfigEntryPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := leadOneNode(t)
		defer n.Stop()
		for name, call := range map[string]func(){
			"AddNode":    func() { n.AddNode(2) },
			"RemoveNode": func() { n.RemoveNode(2) },
		} {
			v := panicValue(call)
			require.NotNil(t, v, "%s with no config entry waiting did not panic", name)
			require.Contains(t, fmt.Sprint(v), "no config entry is waiting", name)
		}

		// One call per config entry: a second one for the same entry panics.
		require.NoError(t, n.Configure(ctx, []byte("remove 7")))
		var rd Ready
		for len(rd.CommittedEntries) == 0 {
			rd = mustReady(t, n)
		}
		require.Equal(t, EntryConfig, rd.CommittedEntries[len(rd.CommittedEntries)-1].Type)
		require.Nil(t, panicValue(func() { n.RemoveNode(7) }), "the call tied to the entry")
		v := panicValue(func() { n.RemoveNode(7) })
		require.NotNil(t, v, "a second call for the same entry did not panic")
		require.Contains(t, fmt.Sprint(v), "no config entry is waiting")

		// The panic was the caller's: the node goes on.
		drainReadys(t, n)
		require.NoError(t, n.Propose(ctx, []byte("after")))
		require.Equal(t, []string{"after"}, entryData(drainReadys(t, n)))
	})
}

func TestNodeStepRefusesInvalidMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		n := StartNode(1, []int64{2, 3}, 10, 1)
		defer n.Stop()
		ents := func(idx ...int64) []raftpb.Entry {
			var out []raftpb.Entry
			for _, i := range idx {
				out = append(out, raftpb.Entry{Term: 1, Index: i})
			}
			return out
		}
		valid := raftpb.Message{Type: raftpb.MsgApp, From: 2, To: 1, Term: 1, Entries: ents(1, 2)}
		bad := map[string]raftpb.Message{
			"MsgHup":                 {Type: raftpb.MsgHup, From: 2, To: 1, Term: 1},
			"MsgBeat":                {Type: raftpb.MsgBeat, From: 2, To: 1, Term: 1},
			"MsgUnreachable":         {Type: raftpb.MsgUnreachable, From: 2, To: 1, Term: 1},
			"MsgSnapStatus":          {Type: raftpb.MsgSnapStatus, From: 2, To: 1, Term: 1},
			"MsgCheckQuorum":         {Type: raftpb.MsgCheckQuorum, From: 2, To: 1, Term: 1},
			"unknown type":           {Type: raftpb.MessageType(99), From: 2, To: 1, Term: 1},
			"to another node":        {Type: raftpb.MsgHeartbeat, From: 2, To: 3, Term: 1},
			"to no node":             {Type: raftpb.MsgHeartbeat, From: 2, To: None, Term: 1},
			"from no node":           {Type: raftpb.MsgHeartbeat, From: None, To: 1, Term: 1},
			"from this node":         {Type: raftpb.MsgHeartbeat, From: 1, To: 1, Term: 1},
			"negative term":          {Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: -1},
			"entries with a gap":     {Type: raftpb.MsgApp, From: 2, To: 1, Term: 1, Entries: ents(1, 3)},
			"entries out of order":   {Type: raftpb.MsgApp, From: 2, To: 1, Term: 1, Entries: ents(2, 1)},
			"entries not after prev": {Type: raftpb.MsgApp, From: 2, To: 1, Term: 1, Index: 4, LogTerm: 1, Entries: ents(7)},
			"vote with entries":      {Type: raftpb.MsgVote, From: 2, To: 1, Term: 1, Entries: ents(1)},
			"proposal of nothing":    {Type: raftpb.MsgProp, From: 2, To: 1},
		}
		for name, m := range bad {
			err := n.Step(ctx, m)
			require.ErrorIs(t, err, ErrInvalidMessage, "%s: %s", name, DescribeMessage(m))
		}
		// Nothing refused reached the node: a MsgHup would have started a
		// campaign, the others would have moved its term.
		st := n.Status()
		require.Equal(t, StateFollower, st.RaftState)
		require.Zero(t, st.HardState)

		// The same node takes a sane message.
		require.NoError(t, n.Step(ctx, valid))
		st = n.Status()
		require.Equal(t, int64(1), st.Term)
		require.Equal(t, int64(2), st.Lead)
	})
}

// TestNodeClusterCommits10000Proposals runs three Nodes in process, each
// with its own goroutine running the documented loop, messages travelling
// through channels. Proposals go to all three nodes (followers forward
// them). Whenever the cluster is idle, every node ticks once.
// nodeMember is one Node of a nodeCluster and what its loop saw.
type nodeMember struct {
	node    Node
	inbox   chan raftpb.Message
	cut     atomic.Bool  // messages to it are lost
	applied []string     // written by the member's loop only
	count   atomic.Int64 // len(applied)
	mu      sync.Mutex
	reads   []ReadState // the ReadStates its Readys handed out
}

// nodeCluster runs Nodes with the documented loop and an in-memory
// transport, inside a synctest bubble.
type nodeCluster struct {
	members  map[int64]*nodeMember
	shutdown func()
}

func startNodeCluster(t *testing.T, ids []int64, opts ...Option) *nodeCluster {
	ctx := context.Background()
	members := map[int64]*nodeMember{}
	for _, id := range ids {
		members[id] = &nodeMember{
			node:  StartNode(id, ids, 10, 1, append([]Option{Seed(uint64(id))}, opts...)...),
			inbox: make(chan raftpb.Message, 1024),
		}
	}
	stop := make(chan struct{})
	var loops, transports sync.WaitGroup
	for _, m := range members {
		loops.Go(func() {
			for {
				select {
				case rd := <-m.node.Ready():
					// Storage is the node's own memory; nothing to persist.
					for _, e := range rd.CommittedEntries {
						if e.Type == EntryNormal && len(e.Data) > 0 {
							m.applied = append(m.applied, string(e.Data))
							m.count.Add(1)
						}
					}
					m.mu.Lock()
					m.reads = append(m.reads, rd.ReadStates...)
					m.mu.Unlock()
					for _, msg := range rd.Messages {
						if to := members[msg.To]; !to.cut.Load() {
							to.inbox <- msg
						}
					}
				case <-stop:
					return
				}
			}
		})
		transports.Go(func() {
			for msg := range m.inbox {
				if err := m.node.Step(ctx, msg); err != nil && !errors.Is(err, ErrStopped) {
					t.Errorf("step %s: %v", DescribeMessage(msg), err)
				}
			}
		})
	}
	// Also on failure: synctest.Test then reports the failure, not a
	// deadlocked bubble.
	shutdown := sync.OnceFunc(func() {
		close(stop)
		loops.Wait()
		for _, m := range members {
			m.node.Stop()
			close(m.inbox)
		}
		transports.Wait()
	})
	t.Cleanup(shutdown)
	return &nodeCluster{members: members, shutdown: shutdown}
}

// tick ticks every node once and lets the cluster settle.
func (c *nodeCluster) tick() {
	for _, m := range c.members {
		m.node.Tick()
	}
	synctest.Wait()
}

func (c *nodeCluster) requireLeader(t *testing.T, lead int64) {
	t.Helper()
	for id, m := range c.members {
		if !m.cut.Load() {
			require.Equal(t, lead, m.node.Status().Lead, "node %x", id)
		}
	}
}

func TestNodeClusterCommits10000Proposals(t *testing.T) {
	const (
		total = 10000
		round = 250 // proposals between two ticks
	)
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ids := []int64{1, 2, 3}
		c := startNodeCluster(t, ids)
		members := c.members
		require.NoError(t, members[1].node.Campaign(ctx))
		synctest.Wait()
		term := members[1].node.Status().Term
		c.requireLeader(t, 1)

		for proposed := 0; proposed < total; proposed += round {
			var proposers sync.WaitGroup
			for j, id := range ids {
				proposers.Go(func() {
					for k := proposed + j; k < proposed+round; k += len(ids) {
						if err := members[id].node.Propose(ctx, fmt.Appendf(nil, "p%d", k)); err != nil {
							t.Errorf("propose p%d on node %x: %v", k, id, err)
						}
					}
				})
			}
			proposers.Wait()
			synctest.Wait() // the cluster is idle: every proposal is applied everywhere
			for _, id := range ids {
				require.EqualValues(t, proposed+round, members[id].count.Load(), "node %x applied", id)
				members[id].node.Tick()
			}
		}

		// 40 ticks, four election timeouts: the leader kept its quorum and
		// no one else campaigned.
		for _, id := range ids {
			st := members[id].node.Status()
			require.Equal(t, term, st.Term, "node %x", id)
			require.Equal(t, int64(1), st.Lead, "node %x", id)
		}

		c.shutdown()

		want := members[1].applied
		require.Len(t, want, total)
		sorted := slices.Clone(want)
		slices.Sort(sorted)
		require.Len(t, slices.Compact(sorted), total, "a proposal was applied twice")
		for _, id := range ids[1:] {
			require.Equal(t, want, members[id].applied, "node %x applied a different sequence", id)
		}
	})
}

// Through Node: a read on a follower is answered with the leader's commit
// index.
func TestNodeReadIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := startNodeCluster(t, []int64{1, 2, 3})
		require.NoError(t, c.members[1].node.Campaign(ctx))
		synctest.Wait()
		require.NoError(t, c.members[1].node.Propose(ctx, []byte("a")))
		synctest.Wait()
		follower := c.members[2]
		require.NoError(t, follower.node.ReadIndex(ctx, []byte("r")))
		synctest.Wait()
		follower.mu.Lock()
		defer follower.mu.Unlock()
		require.Equal(t, []ReadState{{Index: c.members[1].node.Status().Commit, RequestCtx: []byte("r")}}, follower.reads)
	})
}

// Through Node: TransferLeadership returns once the transferee leads; it
// is refused for a non-member and on a follower, and abandoned when the
// transferee cannot be reached.
func TestNodeTransferLeadership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := startNodeCluster(t, []int64{1, 2, 3})
		require.NoError(t, c.members[1].node.Campaign(ctx))
		synctest.Wait()
		require.NoError(t, c.members[1].node.TransferLeadership(ctx, 2))
		require.Equal(t, int64(2), c.members[1].node.Status().Lead)
		synctest.Wait()
		c.requireLeader(t, 2)

		require.ErrorIs(t, c.members[2].node.TransferLeadership(ctx, 9), ErrTransferRefused)
		require.ErrorIs(t, c.members[1].node.TransferLeadership(ctx, 3), ErrNotLeader)

		c.members[3].cut.Store(true)
		done := make(chan error, 1)
		go func() { done <- c.members[2].node.TransferLeadership(ctx, 3) }()
		synctest.Wait()
		require.Empty(t, done)
		require.ErrorIs(t, c.members[2].node.Propose(ctx, []byte("x")), ErrProposalDropped, "proposals wait out the transfer")
		for range 10 {
			c.tick()
		}
		require.ErrorIs(t, <-done, ErrTransferAbandoned)
		c.members[3].cut.Store(false)
		require.NoError(t, c.members[2].node.Propose(ctx, []byte("y")))
		synctest.Wait()
		c.requireLeader(t, 2)
	})
}

// A campaign that starts when the receipt of a Ready settles a config
// entry (here: a transfer waited for it) sends its vote requests: the
// messages queued while a Ready is handed out stay for the next one.
func TestNodeCampaignStartedOnReceiptIsNotLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		ents := []raftpb.Entry{{Term: 1, Index: 1}, {Term: 1, Index: 2, Type: EntryConfig, Data: []byte("rejected")}}
		n := RestartNode(1, []int64{2, 3}, 10, 1, nil, raftpb.HardState{Term: 1, Commit: 2}, ents)
		defer n.Stop()
		rd := mustReady(t, n)
		require.Len(t, rd.CommittedEntries, 2, "the config entry is handed out")
		require.NoError(t, n.Step(ctx, raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 1, Commit: 2}))
		require.NoError(t, n.Step(ctx, raftpb.Message{Type: raftpb.MsgTimeoutNow, From: 2, To: 1, Term: 1}))
		var votes []int64
		for i := 0; ; i++ {
			require.Less(t, i, 20)
			rd, ok := readyNow(n) // the receipt settles the rejected change
			if !ok {
				break
			}
			for _, m := range rd.Messages {
				if m.Type == raftpb.MsgVote {
					votes = append(votes, m.To)
				}
			}
		}
		require.ElementsMatch(t, []int64{2, 3}, votes, "the campaign's vote requests were handed out")
		require.Equal(t, StateCandidate, n.Status().RaftState)
	})
}
