package raft

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// The membership hazards of API.md (Membership) as named tests, against
// clusters of RawNodes driven by mcDriver. The helpers below (prefix mc)
// serve membership_test.go, restart_test.go and compact_test.go.

// mcSM is a test state machine: the data of the normal entries applied, in
// order. Its snapshot is that list, encoded, so that a node restored from a
// snapshot can be compared with one that applied every entry.
type mcSM struct {
	index int64 // last entry applied, or the snapshot restored
	data  []string
}

func (s *mcSM) apply(e raftpb.Entry) {
	s.index = e.Index
	if e.Type == EntryNormal && len(e.Data) > 0 {
		s.data = append(s.data, string(e.Data))
	}
}

func (s *mcSM) encode() []byte {
	b, err := json.Marshal(s.data)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *mcSM) restore(t testing.TB, snap raftpb.Snapshot) {
	var data []string
	require.NoError(t, json.Unmarshal(snap.Data, &data), "snapshot %d carries no state machine data", snap.Index)
	s.index, s.data = snap.Index, data
}

// mcDriver runs the documented loop on the nodes of a network, like
// network.stabilize, with a state machine per node that is restored from
// rd.Snapshot, nodes that can be frozen (they receive messages but their
// application does not take Readys), a hook before Advance, and a check of
// every Ready: at most one config entry, as the last committed entry.
type mcDriver struct {
	*network
	sms    map[int64]*mcSM
	frozen map[int64]bool
	// beforeAdvance runs after a Ready is saved, applied and its messages
	// queued, and before Advance: where an application may call Compact.
	beforeAdvance func(n *testNode, rd Ready)
	// snaps lists the snapshots each node received in rd.Snapshot.
	snaps map[int64][]raftpb.Snapshot
}

func newMCDriver(t testing.TB, ids []int64, opts ...Option) *mcDriver {
	d := &mcDriver{
		network: newNetwork(t, nil),
		sms:     map[int64]*mcSM{},
		frozen:  map[int64]bool{},
		snaps:   map[int64][]raftpb.Snapshot{},
	}
	for _, id := range ids {
		d.add(id, ids, opts...)
	}
	return d
}

// add starts a fresh node with an empty state machine.
func (d *mcDriver) add(id int64, peers []int64, opts ...Option) *testNode {
	n := d.addNode(id, peers, opts...)
	d.sms[id] = &mcSM{}
	return n
}

func (d *mcDriver) process(n *testNode) bool {
	if n.down || d.frozen[n.id] || !n.rn.HasReady() {
		return false
	}
	d.handle(n, n.rn.Ready())
	return true
}

// handle runs the documented loop on rd: persist, apply, queue the
// messages, then Advance.
func (d *mcDriver) handle(n *testNode, rd Ready) {
	t := d.t
	t.Helper()
	for i, e := range rd.CommittedEntries {
		if e.Type == EntryConfig {
			require.Equal(t, len(rd.CommittedEntries)-1, i,
				"node %x: config entry %d is not the last committed entry of its Ready", n.id, e.Index)
		}
	}
	n.disk.save(rd)
	n.saveToApp(rd)
	sm := d.sms[n.id]
	if !IsEmptySnap(rd.Snapshot) {
		n.appliedIndex = rd.Snapshot.Index
		sm.restore(t, rd.Snapshot)
		d.snaps[n.id] = append(d.snaps[n.id], rd.Snapshot)
	}
	for _, e := range rd.CommittedEntries {
		d.apply(n, e)
		sm.apply(e)
	}
	d.queue = append(d.queue, rd.Messages...)
	if d.beforeAdvance != nil {
		d.beforeAdvance(n, rd)
	}
	n.rn.Advance()
}

// stabilizeUntil runs loops and delivers messages until cond holds (checked
// after every Ready and every delivery round) or nothing moves.
func (d *mcDriver) stabilizeUntil(cond func() bool) bool {
	for i := 0; i < 10000; i++ {
		if cond() {
			return true
		}
		moved := false
		for _, id := range d.ids {
			for d.process(d.nodes[id]) {
				moved = true
				if cond() {
					return true
				}
			}
		}
		if d.deliver() {
			moved = true
		}
		if !moved {
			return cond()
		}
	}
	require.FailNow(d.t, "cluster does not stabilize")
	return false
}

func (d *mcDriver) stabilize() { d.stabilizeUntil(func() bool { return false }) }

// tick advances every running node's clock by k ticks, stabilizing after each.
func (d *mcDriver) tick(k int) {
	for i := 0; i < k; i++ {
		for _, id := range d.ids {
			if n := d.nodes[id]; !n.down {
				n.rn.Tick()
			}
		}
		d.stabilize()
	}
}

// tickUntilLeader ticks every running node until one is leader, and returns
// it as soon as it is: before its first Ready is taken.
func (d *mcDriver) tickUntilLeader() int64 {
	hasLeader := func() bool {
		for _, id := range d.ids {
			if n := d.nodes[id]; !n.down && n.rn.Status().RaftState == StateLeader {
				return true
			}
		}
		return false
	}
	for i := 0; i < 500; i++ {
		if d.stabilizeUntil(hasLeader) {
			return d.leader()
		}
		for _, id := range d.ids {
			if n := d.nodes[id]; !n.down {
				n.rn.Tick()
			}
		}
	}
	require.FailNow(d.t, "no leader elected")
	return 0
}

func (d *mcDriver) campaign(id int64) {
	require.NoError(d.t, d.nodes[id].rn.Campaign())
	d.stabilize()
}

func (d *mcDriver) propose(id int64, data string) error {
	err := d.nodes[id].rn.Propose([]byte(data))
	d.stabilize()
	return err
}

func (d *mcDriver) configure(id int64, data []byte) error {
	err := d.nodes[id].rn.ProposeConfig(data)
	d.stabilize()
	return err
}

// restart brings a crashed node back from its disk (see network.restart),
// its state machine restored from the snapshot on disk.
func (d *mcDriver) restart(id int64, extra ...Option) *testNode {
	d.network.restart(id, extra...)
	n := d.nodes[id]
	sm := &mcSM{}
	if !IsEmptySnap(n.disk.snap) {
		sm.restore(d.t, n.disk.snap)
	}
	d.sms[id] = sm
	return n
}

// compact does what an application does to compact node id's log up to
// what its state machine applied: Compact with the voters there and the
// state machine's data, then persist the snapshot and drop the entries it
// covers. It checks that the snapshot the library recorded is the one the
// application made.
func (d *mcDriver) compact(id int64) error {
	t := d.t
	t.Helper()
	n, sm := d.nodes[id], d.sms[id]
	st := n.rn.Status()
	data := sm.encode()
	if err := n.rn.Compact(sm.index, st.Voters, data); err != nil {
		return err
	}
	snap := raftpb.Snapshot{Data: data, Nodes: st.Voters, Learners: st.Learners, Index: sm.index, Term: mcTermOnDisk(t, n.disk, sm.index)}
	if n.app != nil {
		n.app.Compact(snap) // the application records its snapshot
	}
	rec := n.rn.storage.Snapshot()
	require.Equal(t, snap.Index, rec.Index, "node %x: snapshot index", id)
	require.Equal(t, snap.Term, rec.Term, "node %x: snapshot term is the term of the entry at its index", id)
	require.Equal(t, snap.Data, rec.Data, "node %x: snapshot data", id)
	require.ElementsMatch(t, snap.Nodes, rec.Nodes, "node %x: snapshot voters", id)
	require.ElementsMatch(t, snap.Learners, rec.Learners, "node %x: snapshot learners", id)
	n.disk.snap = snap
	n.disk.ents = slices.DeleteFunc(slices.Clone(n.disk.ents), func(e raftpb.Entry) bool { return e.Index <= snap.Index })
	return nil
}

func mcTermOnDisk(t testing.TB, disk testDisk, index int64) int64 {
	if index == disk.snap.Index {
		return disk.snap.Term
	}
	for _, e := range disk.ents {
		if e.Index == index {
			return e.Term
		}
	}
	require.FailNow(t, "entry not on disk", "index %d", index)
	return 0
}

// indexOf returns the index of the last entry node id applied with data.
func (d *mcDriver) indexOf(id int64, data string) int64 {
	n := d.nodes[id]
	for i := len(n.applied) - 1; i >= 0; i-- {
		if string(n.applied[i].Data) == data {
			return n.applied[i].Index
		}
	}
	require.FailNow(d.t, "entry not applied", "node %x has not applied %q", id, data)
	return 0
}

// requireSameHistory checks that no two nodes applied different entries at
// the same index (restarts included).
func (d *mcDriver) requireSameHistory() {
	byIndex := map[int64]raftpb.Entry{}
	for _, id := range d.ids {
		for _, e := range d.nodes[id].applied {
			if prev, ok := byIndex[e.Index]; ok {
				require.Equal(d.t, prev, e, "node %x applied a different entry at %d", id, e.Index)
			} else {
				byIndex[e.Index] = e
			}
		}
	}
}

func mcIsVoteRequest(m raftpb.Message) bool {
	return m.Type == raftpb.MsgVote || m.Type == raftpb.MsgPreVote
}

// mcVoteRequests returns the vote and pre-vote requests sent by from.
func mcVoteRequests(msgs []raftpb.Message, from int64) []raftpb.Message {
	var out []raftpb.Message
	for _, m := range msgs {
		if mcIsVoteRequest(m) && m.From == from {
			out = append(out, m)
		}
	}
	return out
}

// mcRequirePanics requires f to panic with a message containing each of want.
func mcRequirePanics(t *testing.T, f func(), want ...string) {
	t.Helper()
	var msg string
	panicked := false
	func() {
		defer func() {
			if r := recover(); r != nil {
				panicked, msg = true, fmt.Sprint(r)
			}
		}()
		f()
	}()
	require.True(t, panicked, "expected a panic naming %q", want)
	for _, w := range want {
		require.Contains(t, msg, w)
	}
}

func mcLastCommitted(t *testing.T, rd Ready) raftpb.Entry {
	t.Helper()
	require.NotEmpty(t, rd.CommittedEntries)
	return rd.CommittedEntries[len(rd.CommittedEntries)-1]
}

// A follower whose application has not yet applied a committed config
// entry must not campaign: it would count votes by a membership that is
// already replaced.
func TestHazardFollowerWithUnappliedConfigDoesNotCampaign(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	n2 := d.nodes[2]

	// Node 2's application falls behind: it receives messages, but takes no Ready.
	d.frozen[2] = true
	require.NoError(t, d.nodes[1].rn.ProposeConfig(configData("remove", 3)))
	d.stabilize()
	st := n2.rn.Status()
	require.Equal(t, int64(2), st.Commit, "node 2 knows that the config entry is committed")
	require.Equal(t, int64(1), st.Applied)
	// From now on node 2 hears from no leader.
	d.isolate(2)

	requireNoCampaign := func(stage string) {
		require.ErrorIs(t, n2.rn.Campaign(), ErrCannotCampaign, stage)
		for i := 0; i < 40; i++ {
			n2.rn.Tick()
		}
		require.Equal(t, StateFollower, n2.rn.Status().RaftState, "%s: ticking past the election timeout started an election", stage)
		require.Empty(t, mcVoteRequests(n2.rn.raft.msgs, 2), stage)
	}
	requireNoCampaign("committed config entry not yet handed out")

	rd := n2.rn.Ready()
	e := mcLastCommitted(t, rd)
	require.Equal(t, EntryConfig, e.Type)
	require.Equal(t, int64(2), e.Index)
	requireNoCampaign("config entry handed out, not yet applied")

	// Applied: the node campaigns, on the new membership only.
	d.frozen[2] = false
	d.handle(n2, rd)
	require.Equal(t, []int64{1, 2}, n2.rn.Status().Voters)
	require.NoError(t, n2.rn.Campaign())
	reqs := mcVoteRequests(n2.rn.raft.msgs, 2)
	require.NotEmpty(t, reqs)
	for _, m := range reqs {
		require.Equal(t, int64(1), m.To, "vote requested from a node that is no longer a voter")
	}
}

// A node persisted two config entries but crashed before the HardState
// that committed them reached its disk. The first of them is committed (a
// leader appends a config entry only after applying the one before), so
// the node raises its commit index to it at restart and hands it out in
// rd.State; it must not campaign on the membership from before it.
func TestHazardRestartWithUnpersistedCommitDoesNotCampaignOnOldMembership(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.configure(1, configData("remove", 3)))
	require.NoError(t, d.configure(1, configData("add", 4))) // node 4 never starts: voters {1,2,4}
	n2 := d.nodes[2]
	require.Len(t, n2.disk.ents, 3)
	require.Equal(t, EntryConfig, n2.disk.ents[1].Type)
	require.Equal(t, EntryConfig, n2.disk.ents[2].Type)
	require.Equal(t, int64(3), n2.disk.hs.Commit)

	// The crash: the entries are on node 2's disk, the HardState that
	// committed them is not. Leader 1 is gone; removed node 3 still answers.
	n2.disk.hs.Commit = 1
	d.crash(1)
	d.crash(2)
	n2 = d.restart(2)
	require.Equal(t, []int64{1, 2, 3}, n2.rn.Status().Voters, "membership at the start of the log")
	require.ErrorIs(t, n2.rn.Campaign(), ErrCannotCampaign, "a committed config entry is not yet re-applied")

	rd := n2.rn.Ready()
	require.Equal(t, int64(2), rd.State.Commit, "the commit index is raised to the last-but-one config entry, in rd.State to be persisted")
	e := mcLastCommitted(t, rd)
	require.Equal(t, int64(2), e.Index)
	require.Equal(t, EntryConfig, e.Type)
	require.ErrorIs(t, n2.rn.Campaign(), ErrCannotCampaign, "the config entry is handed out but not yet applied")
	d.handle(n2, rd)
	require.Equal(t, int64(2), n2.disk.hs.Commit)
	require.Equal(t, []int64{1, 2}, n2.rn.Status().Voters)

	// On the old membership {1,2,3}, node 2 would win with removed node 3's vote.
	mark := len(d.sent)
	d.tick(60)
	require.Zero(t, d.leader(), "node 2 must not be elected without node 1")
	for _, m := range d.sent[mark:] {
		require.False(t, mcIsVoteRequest(m) && m.To == 3, "vote requested from removed node 3: %s", DescribeMessage(m))
	}

	// With node 1 back, the cluster elects a leader and finishes the change.
	d.restart(1)
	d.tick(60)
	lead := d.leader()
	require.Contains(t, []int64{1, 2}, lead)
	require.NoError(t, d.propose(lead, "after"))
	for _, id := range []int64{1, 2} {
		require.Equal(t, []int64{1, 2, 4}, d.nodes[id].rn.Status().Voters, "node %x", id)
		require.Equal(t, []string{"after"}, d.sms[id].data, "node %x", id)
	}
	d.requireSameHistory()
}

// The commit rule for config entries applies on append too: a follower
// that receives two config entries from a leader that does not yet know
// the first is committed (a new leader, say) raises its commit index to
// the first, hands it out in rd.State, and campaigns only once it applied it.
func TestHazardCommitRaisedToLastButOneConfigOnAppend(t *testing.T) {
	rn := NewRawNode(2, []int64{1, 3}, 10, 1)
	ents := []raftpb.Entry{
		{Type: EntryNormal, Term: 1, Index: 1},
		{Type: EntryConfig, Term: 1, Index: 2, Data: configData("remove", 3)},
		{Type: EntryConfig, Term: 1, Index: 3, Data: configData("add", 4)},
	}
	require.NoError(t, rn.Step(raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Term: 2, Entries: ents, Commit: 0}))
	require.Equal(t, int64(2), rn.Status().Commit)
	require.ErrorIs(t, rn.Campaign(), ErrCannotCampaign)
	rd := rn.Ready()
	require.Equal(t, int64(2), rd.State.Commit)
	require.Equal(t, ents[:2], rd.CommittedEntries)
	rn.RemoveNode(3)
	rn.Advance()
	require.Equal(t, []int64{1, 2}, rn.Status().Voters)
	require.NoError(t, rn.Campaign())
}

// One change at a time: a config entry is pending from when it enters the
// leader's log until it is applied, whoever appended it, and a new leader
// accepts none before it has committed an entry of its own term.
func TestHazardSecondConfigWhilePendingIsDropped(t *testing.T) {
	t.Run("own entry until applied", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		n1 := d.nodes[1]
		require.NoError(t, n1.rn.ProposeConfig([]byte("noop")))
		require.ErrorIs(t, n1.rn.ProposeConfig(configData("remove", 3)), ErrProposalDropped, "appended, not committed")
		require.NoError(t, n1.rn.Propose([]byte("normal entries still go")))

		d.stabilizeUntil(func() bool { return n1.rn.Status().Commit >= 2 })
		require.Equal(t, int64(1), n1.rn.Status().Applied)
		require.ErrorIs(t, n1.rn.ProposeConfig(configData("remove", 3)), ErrProposalDropped, "committed, not handed out")

		rd := n1.rn.Ready()
		require.Equal(t, EntryConfig, mcLastCommitted(t, rd).Type)
		require.ErrorIs(t, n1.rn.ProposeConfig(configData("remove", 3)), ErrProposalDropped, "handed out, not applied")
		d.handle(n1, rd)

		require.NoError(t, n1.rn.ProposeConfig(configData("remove", 3)), "applied: the next change is accepted")
		d.stabilize()
		for _, id := range []int64{1, 2} {
			require.Equal(t, []int64{1, 2}, d.nodes[id].rn.Status().Voters)
		}
	})

	t.Run("appended by an earlier leader", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		// Leader 1 replicates a config entry but never hears back, then dies.
		d.cut[link{2, 1}], d.cut[link{3, 1}] = true, true
		require.NoError(t, d.nodes[1].rn.ProposeConfig([]byte("noop")))
		d.stabilize()
		for _, id := range []int64{2, 3} {
			ents := d.nodes[id].disk.ents
			require.Equal(t, EntryConfig, ents[len(ents)-1].Type, "node %x holds the config entry", id)
		}
		d.crash(1)
		d.heal()

		lead := d.tickUntilLeader()
		nl := d.nodes[lead]
		require.Equal(t, int64(2), nl.rn.Status().Term)
		require.ErrorIs(t, nl.rn.ProposeConfig(configData("remove", 1)), ErrProposalDropped,
			"a new leader with an earlier leader's config entry pending")

		// The new leader's empty entry commits, and the config entry with
		// it; the new leader has not applied it yet.
		d.stabilizeUntil(func() bool { return nl.rn.Status().Commit >= 3 })
		require.Less(t, nl.rn.Status().Applied, int64(2))
		require.ErrorIs(t, nl.rn.ProposeConfig(configData("remove", 1)), ErrProposalDropped,
			"an earlier leader's config entry is committed but not applied")

		d.stabilize()
		require.NoError(t, nl.rn.ProposeConfig(configData("remove", 1)))
		d.stabilize()
		require.Equal(t, []int64{2, 3}, nl.rn.Status().Voters)
	})

	t.Run("new leader before an entry of its term commits", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		require.NoError(t, d.propose(1, "a"))
		d.crash(1)

		lead := d.tickUntilLeader()
		nl := d.nodes[lead]
		require.Equal(t, int64(2), nl.rn.Status().Term)
		for _, e := range nl.disk.ents {
			require.Equal(t, EntryNormal, e.Type, "no config entry is pending")
		}
		require.ErrorIs(t, nl.rn.ProposeConfig(configData("remove", 1)), ErrProposalDropped,
			"the leader has not committed an entry of its term")
		require.NoError(t, nl.rn.Propose([]byte("normal entries still go")))

		d.stabilize()
		require.NoError(t, nl.rn.ProposeConfig(configData("remove", 1)))
		d.stabilize()
		require.Equal(t, []int64{2, 3}, nl.rn.Status().Voters)
	})
}

// A config entry that the application rejects (no membership call) must not
// leave the change pending: at RawNode level Advance settles it, so even an
// idle one-node cluster, with nothing else to hand out, accepts the next.
func TestHazardRejectedConfigDoesNotBlockNext(t *testing.T) {
	t.Run("three nodes", func(t *testing.T) {
		d := newMCDriver(t, []int64{1, 2, 3})
		d.campaign(1)
		require.NoError(t, d.configure(1, []byte("noop")))
		for _, id := range d.ids {
			n := d.nodes[id]
			last := n.applied[len(n.applied)-1]
			require.Equal(t, EntryConfig, last.Type, "node %x applied the rejected change", id)
			require.Equal(t, []int64{1, 2, 3}, n.rn.Status().Voters)
		}
		// The next change, proposed on a follower, goes through.
		require.NoError(t, d.configure(2, configData("remove", 3)))
		for _, id := range []int64{1, 2} {
			require.Equal(t, []int64{1, 2}, d.nodes[id].rn.Status().Voters, "node %x", id)
		}
	})

	t.Run("idle one-node cluster", func(t *testing.T) {
		d := newMCDriver(t, nil)
		n := d.add(1, nil)
		d.campaign(1)
		require.NoError(t, d.configure(1, []byte("noop")))
		require.Equal(t, EntryConfig, n.applied[len(n.applied)-1].Type)
		require.False(t, n.rn.HasReady(), "the cluster is idle")
		require.NoError(t, d.configure(1, []byte("noop again")))
		require.Equal(t, []byte("noop again"), n.applied[len(n.applied)-1].Data)
		require.NoError(t, d.configure(1, configData("add", 2)))
		require.Equal(t, []int64{1, 2}, n.rn.Status().Voters)
	})
}

// In a two-node cluster, the leader that removes itself keeps heartbeating
// until the survivor knows the removal committed (else the survivor, still
// counting the leader as a voter, could never elect itself), then steps
// down; the survivor then elects itself.
func TestHazardRemovingLeaderOfTwoNodeClusterLeavesSurvivorElectable(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2})
	d.campaign(1)
	n1, n2 := d.nodes[1], d.nodes[2]

	require.NoError(t, n1.rn.ProposeConfig(configData("remove", 1)))
	d.stabilizeUntil(func() bool { return n1.rn.Status().Removed })
	// The append that tells node 2 the removal committed is lost.
	d.cut[link{1, 2}] = true
	d.stabilize()
	require.Equal(t, StateLeader, n1.rn.Status().RaftState, "the removed leader stays until the survivor knows the commit")
	require.Equal(t, int64(1), n2.rn.Status().Commit, "the survivor does not know that the removal committed")
	require.ErrorIs(t, n1.rn.Propose([]byte("x")), ErrProposalDropped, "a removed leader takes no proposals")
	d.tick(3)
	require.Equal(t, StateLeader, n1.rn.Status().RaftState)
	require.True(t, n1.rn.Status().Removed)

	d.heal()
	mark := len(d.sent)
	d.tick(1)
	heartbeat := false
	for _, m := range d.sent[mark:] {
		if m.Type == raftpb.MsgHeartbeat && m.From == 1 && m.To == 2 && m.Commit >= 2 {
			heartbeat = true
		}
	}
	require.True(t, heartbeat, "the removed leader's heartbeat carries the commit of its removal")
	require.NotEqual(t, StateLeader, n1.rn.Status().RaftState, "the removed leader steps down once the survivor knows")
	require.True(t, n1.rn.Status().Removed)
	require.Equal(t, []int64{2}, n2.rn.Status().Voters)

	d.tick(40)
	require.Equal(t, int64(2), d.leader(), "the survivor elects itself")
	require.ErrorIs(t, n1.rn.Campaign(), ErrCannotCampaign)
	require.NoError(t, d.propose(2, "alone"))
	require.Equal(t, []string{"alone"}, d.sms[2].data)
}

// A node that joins with Joining(J) and peers = the voters once J is
// applied replays the log from the start; the membership calls for entries
// up to J change nothing, so nodes added and since removed do not come back
// while it replays, nor when it replays again after a restart.
func TestHazardJoiningNodeDoesNotBringBackRemovedNodes(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.configure(1, configData("add", 4)))
	j4 := d.indexOf(1, "add 4")
	d.add(4, []int64{1, 2, 3, 4}, Joining(j4))
	d.tick(3)
	require.Equal(t, d.sms[1].index, d.sms[4].index, "node 4 caught up")
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("remove", 4)))
	d.crash(4)
	require.NoError(t, d.configure(1, configData("remove", 3)))
	d.crash(3)
	require.NoError(t, d.propose(1, "b"))
	require.NoError(t, d.configure(1, configData("add", 5)))
	j5 := d.indexOf(1, "add 5")
	want := []int64{1, 2, 5}
	require.Equal(t, want, d.nodes[1].rn.Status().Voters)

	checks := 0
	d.beforeAdvance = func(n *testNode, rd Ready) {
		if n.id != 5 {
			return
		}
		checks++
		st := n.rn.Status()
		require.Equal(t, want, st.Voters, "node 5 after applying up to %d", d.sms[5].index)
		require.Empty(t, st.Learners)
		if d.sms[5].index < j5 {
			require.ErrorIs(t, n.rn.Campaign(), ErrCannotCampaign, "node 5 has not applied its join entry %d", j5)
		}
	}
	n5 := d.add(5, want, Joining(j5))
	require.Equal(t, want, n5.rn.Status().Voters)
	d.tick(3)
	require.Equal(t, d.sms[1].data, d.sms[5].data)
	require.Equal(t, d.sms[1].index, d.sms[5].index)
	require.Equal(t, j4, d.indexOf(5, "add 4"), "node 5 replayed the addition of removed node 4")
	require.Greater(t, checks, 4)
	require.NoError(t, d.propose(1, "c"))
	require.Equal(t, []string{"a", "b", "c"}, d.sms[5].data)

	// After a restart, with the same peers and Joining(J), it replays again.
	d.crash(5)
	checks = 0
	n5 = d.restart(5)
	require.Equal(t, want, n5.rn.Status().Voters)
	d.tick(2)
	require.Greater(t, checks, 4)
	require.Equal(t, []string{"a", "b", "c"}, d.sms[5].data)
	require.Equal(t, want, n5.rn.Status().Voters)
	d.requireSameHistory()
}

// AddNode and RemoveNode are tied to the config entry being applied; a call
// with none waiting, or a second call for the same entry, is a programming
// error that panics with a message naming it.
func TestHazardMembershipCallWithoutConfigEntryPanics(t *testing.T) {
	const want = "no config entry is waiting"
	d := newMCDriver(t, nil)
	n := d.add(1, nil)
	d.campaign(1)
	mcRequirePanics(t, func() { n.rn.AddNode(2) }, "AddNode or RemoveNode", want)
	mcRequirePanics(t, func() { n.rn.RemoveNode(1) }, want)

	// While applying a normal entry.
	require.NoError(t, n.rn.Propose([]byte("x")))
	sawNormal := false
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		n.disk.save(rd)
		if len(rd.CommittedEntries) > 0 {
			sawNormal = true
			mcRequirePanics(t, func() { n.rn.AddNode(2) }, want)
		}
		n.rn.Advance()
	}
	require.True(t, sawNormal)

	// A second call for the same config entry.
	require.NoError(t, n.rn.ProposeConfig(configData("add", 2)))
	sawConfig := false
	for n.rn.HasReady() {
		rd := n.rn.Ready()
		n.disk.save(rd)
		if len(rd.CommittedEntries) > 0 && mcLastCommitted(t, rd).Type == EntryConfig {
			sawConfig = true
			n.rn.AddNode(2)
			mcRequirePanics(t, func() { n.rn.AddNode(3) }, want)
			mcRequirePanics(t, func() { n.rn.RemoveNode(2) }, want)
		}
		n.rn.Advance()
	}
	require.True(t, sawConfig)
	require.Equal(t, []int64{1, 2}, n.rn.Status().Voters, "the first call took effect, the refused ones did not")
	mcRequirePanics(t, func() { n.rn.AddNode(3) }, want)
}

// A Ready hands out at most one config entry, as the last of its committed
// entries, even to a follower that learns of several at once.
func TestHazardAtMostOneConfigEntryPerReady(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	d.frozen[3] = true
	n1, n3 := d.nodes[1], d.nodes[3]
	require.NoError(t, d.configure(1, []byte("noop")))
	require.NoError(t, d.propose(1, "a"))
	require.NoError(t, d.configure(1, configData("remove", 9)))
	require.NoError(t, d.propose(1, "b"))
	require.NoError(t, d.configure(1, []byte("noop again")))
	require.NoError(t, n1.rn.Propose([]byte("c")))
	require.NoError(t, n1.rn.Propose([]byte("d")))
	d.stabilize()
	st := n3.rn.Status()
	require.Equal(t, n1.rn.Status().Commit, st.Commit, "node 3 knows everything is committed")
	require.LessOrEqual(t, st.Applied, int64(1))

	d.frozen[3] = false
	var got []raftpb.Entry
	withConfig := 0
	for n3.rn.HasReady() {
		rd := n3.rn.Ready()
		configs := 0
		for _, e := range rd.CommittedEntries {
			if e.Type == EntryConfig {
				configs++
			}
		}
		require.LessOrEqual(t, configs, 1)
		if configs == 1 {
			withConfig++
			require.Equal(t, EntryConfig, mcLastCommitted(t, rd).Type, "the config entry comes last")
		}
		got = append(got, rd.CommittedEntries...)
		d.handle(n3, rd)
	}
	require.Equal(t, 3, withConfig)
	require.Equal(t, n1.applied[st.Applied:], got)
}

// AddNode of a voter or of a learner, and RemoveNode of a non-member,
// change nothing; the change is still settled.
func TestHazardAddOfMemberAndRemoveOfNonMemberChangeNothing(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3}, Learners(4))
	d.add(4, []int64{1, 2, 3}, Learners(4))
	d.campaign(1)
	check := func(stage string) {
		for _, id := range d.ids {
			st := d.nodes[id].rn.Status()
			require.Equal(t, []int64{1, 2, 3}, st.Voters, "%s: node %x", stage, id)
			require.Equal(t, []int64{4}, st.Learners, "%s: node %x", stage, id)
		}
	}
	check("start")
	for _, c := range [][]byte{configData("add", 2), configData("add", 4), configData("remove", 9)} {
		require.NoError(t, d.configure(1, c), string(c))
		for _, id := range d.ids {
			n := d.nodes[id]
			require.Equal(t, c, n.applied[len(n.applied)-1].Data, "node %x applied %s", id, c)
		}
		check(string(c))
	}
	require.ErrorIs(t, d.nodes[4].rn.Campaign(), ErrCannotCampaign, "4 is still a learner")
}

// Learners receive the log but never campaign, are never asked for a vote,
// and count neither toward a commit quorum nor toward an election.
func TestHazardLearnersReceiveLogButNeverVoteOrCampaign(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3}, Learners(4, 5))
	n4 := d.add(4, []int64{1, 2, 3}, Learners(4, 5))
	d.add(5, []int64{1, 2, 3}, Learners(4, 5))
	d.campaign(1)
	require.NoError(t, d.propose(1, "a"))
	require.Equal(t, []string{"a"}, d.sms[4].data)
	require.Equal(t, []string{"a"}, d.sms[5].data)
	require.ErrorIs(t, n4.rn.Campaign(), ErrCannotCampaign)

	// Cut off from voters 2 and 3, leader 1 and learners 4 and 5 (three
	// of five members) commit nothing.
	d.isolate(2)
	d.isolate(3)
	require.NoError(t, d.propose(1, "b"))
	require.Equal(t, []byte("b"), n4.disk.ents[len(n4.disk.ents)-1].Data, "the learner holds the entry")
	require.Equal(t, []string{"a"}, d.sms[1].data, "the learners' copies do not commit it")
	d.heal()
	require.NoError(t, d.propose(1, "c"))
	d.tick(2)
	for _, id := range d.ids {
		require.Equal(t, []string{"a", "b", "c"}, d.sms[id].data, "node %x", id)
	}

	// Leader 1 goes away: the learner neither campaigns nor is asked to vote.
	mark := len(d.sent)
	d.crash(1)
	d.tick(60)
	lead := d.leader()
	require.Contains(t, []int64{2, 3}, lead)
	for _, m := range d.sent[mark:] {
		if mcIsVoteRequest(m) {
			require.Contains(t, []int64{2, 3}, m.From, DescribeMessage(m))
			require.Contains(t, []int64{2, 3}, m.To, DescribeMessage(m))
		}
	}
	require.NoError(t, d.propose(lead, "d"))
	require.Equal(t, []string{"a", "b", "c", "d"}, d.sms[4].data)

	// A vote from a learner does not count toward an election.
	for _, pre := range []bool{false, true} {
		opts := []Option{Learners(4)}
		respType := raftpb.MsgPreVoteResp
		wait := StatePreCandidate
		if !pre {
			opts = append(opts, WithoutPreVote())
			respType, wait = raftpb.MsgVoteResp, StateCandidate
		}
		rn := NewRawNode(1, []int64{2, 3}, 10, 1, opts...)
		require.NoError(t, rn.Campaign())
		require.Equal(t, wait, rn.Status().RaftState)
		require.NoError(t, rn.Step(raftpb.Message{Type: respType, From: 4, To: 1, Term: 1}))
		require.Equal(t, wait, rn.Status().RaftState, "the learner's vote counted (pre-vote %v)", pre)
		require.NoError(t, rn.Step(raftpb.Message{Type: respType, From: 2, To: 1, Term: 1}))
		require.NotEqual(t, wait, rn.Status().RaftState, "a voter's vote counts (pre-vote %v)", pre)
	}
}

// A removed follower stops campaigning.
func TestHazardRemovedFollowerStopsCampaigning(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	require.NoError(t, d.configure(1, configData("remove", 3)))
	n3 := d.nodes[3]
	require.True(t, n3.rn.Status().Removed)
	mark := len(d.sent)
	d.tick(60) // leader 1 no longer heartbeats to node 3
	require.Empty(t, mcVoteRequests(d.sent[mark:], 3))
	require.Equal(t, StateFollower, n3.rn.Status().RaftState)
	require.ErrorIs(t, n3.rn.Campaign(), ErrCannotCampaign)
	require.Equal(t, int64(1), d.leader())
	require.NoError(t, d.propose(1, "still fine"))
	require.Equal(t, []string{"still fine"}, d.sms[2].data)
}

// Growing a cluster from 3 to 5 voters and shrinking it back to 3 (the
// first leader among the removed), with proposals in flight throughout,
// leaves every node applying the same sequence.
func TestHazardGrowAndShrinkWhileProposing(t *testing.T) {
	d := newMCDriver(t, []int64{1, 2, 3})
	d.campaign(1)
	lead := int64(1)
	seq := 0
	var proposed []string
	// proposeSome proposes k entries, on the leader and on followers that
	// know it, without stabilizing.
	proposeSome := func(k int) {
		for i := 0; i < k; i++ {
			data := fmt.Sprintf("p%d", seq)
			seq++
			id := lead
			for _, other := range d.ids {
				n := d.nodes[other]
				if i%2 == 1 && other != lead && !n.down && n.rn.Status().Lead == lead {
					id = other
					break
				}
			}
			require.NoError(t, d.nodes[id].rn.Propose([]byte(data)))
			proposed = append(proposed, data)
		}
	}
	change := func(op string, id int64) {
		require.NoError(t, d.nodes[lead].rn.ProposeConfig(configData(op, id)))
		proposeSome(3)
		d.stabilize()
	}
	add := func(id int64) {
		change("add", id)
		j := d.indexOf(lead, fmt.Sprintf("add %d", id))
		d.add(id, d.nodes[lead].rn.Status().Voters, Joining(j))
		proposeSome(2)
		d.tick(3)
	}
	remove := func(id int64) {
		change("remove", id)
		if id == lead {
			require.NotEqual(t, StateLeader, d.nodes[id].rn.Status().RaftState, "the removed leader stepped down")
			d.crash(id)
			lead = d.tickUntilLeader()
			d.stabilize()
		} else {
			d.crash(id)
		}
		proposeSome(2)
		d.stabilize()
	}

	proposeSome(3)
	d.stabilize()
	add(4)
	add(5)
	require.Equal(t, []int64{1, 2, 3, 4, 5}, d.nodes[lead].rn.Status().Voters)
	remove(1)
	victim := int64(2)
	if lead == victim {
		victim = 3
	}
	remove(victim)
	d.tick(3)

	var live []int64
	for _, id := range d.ids {
		if !d.nodes[id].down {
			live = append(live, id)
		}
	}
	require.Len(t, live, 3)
	for _, id := range live {
		require.Equal(t, live, d.nodes[id].rn.Status().Voters, "node %x", id)
		require.Equal(t, d.sms[lead].data, d.sms[id].data, "node %x", id)
		require.Equal(t, d.sms[lead].index, d.sms[id].index, "node %x", id)
	}
	d.requireSameHistory()
	require.ElementsMatch(t, proposed, d.sms[lead].data, "every proposal committed, once")
}
