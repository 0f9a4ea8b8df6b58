package raft

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// A deterministic in-memory cluster of RawNodes for tests: each node runs
// the documented loop (persist, apply, send) against a simulated disk, and
// messages travel through a queue that tests can cut, drop or inspect.

// testDisk is what a node persisted.
type testDisk struct {
	snap raftpb.Snapshot
	hs   raftpb.HardState
	ents []raftpb.Entry
}

func (d *testDisk) save(rd Ready) {
	if !IsEmptySnap(rd.Snapshot) {
		d.snap = rd.Snapshot
		d.ents = nil
	}
	if len(rd.Entries) > 0 {
		first := rd.Entries[0].Index
		keep := first - d.snap.Index - 1
		d.ents = append(slices.Clone(d.ents[:min(int64(len(d.ents)), keep)]), rd.Entries...)
	}
	if !IsEmptyHardState(rd.State) {
		d.hs = rd.State
	}
}

type testNode struct {
	id      int64
	rn      *RawNode
	disk    testDisk
	applied []raftpb.Entry // every entry applied, in order, including after restarts
	// appliedIndex is the last index applied to the state machine.
	appliedIndex int64
	peers        []int64
	opts         []Option
	down         bool
	// app, when set, is the application's storage the node reads its log
	// from (WithStorage): the loop persists each Ready into it, and it
	// survives crashes, like the disk.
	app *MemoryStorage
}

type link struct{ from, to int64 }

type network struct {
	t     testing.TB
	nodes map[int64]*testNode
	ids   []int64
	queue []raftpb.Message
	cut   map[link]bool
	// sent records every message delivered, for tests that inspect traffic.
	sent []raftpb.Message
	// observe, when set, sees every Ready as it is handed out.
	observe func(id int64, rd Ready)
	// drop, when set, loses the messages it returns true for.
	drop func(m raftpb.Message) bool
}

// Test config entries are "add <id>", "learner <id>", "promote <id>",
// "remove <id>" or anything else (rejected by the application).
func configData(op string, id int64) []byte { return []byte(fmt.Sprintf("%s %d", op, id)) }

func newNetwork(t testing.TB, ids []int64, opts ...Option) *network {
	nw := &network{t: t, nodes: map[int64]*testNode{}, cut: map[link]bool{}}
	for _, id := range ids {
		nw.addNode(id, ids, opts...)
	}
	return nw
}

// addNode starts a fresh node with the given peers.
func (nw *network) addNode(id int64, peers []int64, opts ...Option) *testNode {
	opts = append([]Option{Seed(uint64(id))}, opts...)
	n := &testNode{id: id, peers: slices.Clone(peers), opts: opts}
	n.rn = NewRawNode(id, peers, 10, 1, opts...)
	nw.nodes[id] = n
	nw.ids = append(nw.ids, id)
	slices.Sort(nw.ids)
	return n
}

// process runs one turn of the documented loop on a node, if it has a Ready.
func (nw *network) process(n *testNode) bool {
	if n.down || !n.rn.HasReady() {
		return false
	}
	rd := n.rn.Ready()
	if nw.observe != nil {
		nw.observe(n.id, rd)
	}
	n.disk.save(rd)
	n.saveToApp(rd)
	if !IsEmptySnap(rd.Snapshot) {
		n.appliedIndex = rd.Snapshot.Index
	}
	for _, e := range rd.CommittedEntries {
		nw.apply(n, e)
	}
	nw.queue = append(nw.queue, rd.Messages...)
	n.rn.Advance()
	return true
}

// saveToApp persists rd into the application's storage, if the node has one.
func (n *testNode) saveToApp(rd Ready) {
	if n.app == nil {
		return
	}
	if !IsEmptySnap(rd.Snapshot) {
		n.app.ApplySnapshot(rd.Snapshot)
	}
	n.app.Append(rd.Entries)
}

func (nw *network) apply(n *testNode, e raftpb.Entry) {
	require.Equal(nw.t, n.appliedIndex+1, e.Index, "node %x applies out of order", n.id)
	n.appliedIndex = e.Index
	n.applied = append(n.applied, e)
	if e.Type != EntryConfig {
		return
	}
	op, arg, _ := strings.Cut(string(e.Data), " ")
	id, err := strconv.ParseInt(arg, 10, 64)
	switch {
	case err != nil:
	case op == "add":
		n.rn.AddNode(id)
	case op == "learner":
		n.rn.AddLearner(id)
	case op == "promote":
		n.rn.PromoteLearner(id)
	case op == "remove":
		n.rn.RemoveNode(id)
	}
}

// deliver hands queued messages to their recipients, once each.
func (nw *network) deliver() bool {
	if len(nw.queue) == 0 {
		return false
	}
	msgs := nw.queue
	nw.queue = nil
	for _, m := range msgs {
		to := nw.nodes[m.To]
		if to == nil || to.down || nw.cut[link{m.From, m.To}] || (nw.drop != nil && nw.drop(m)) {
			continue
		}
		nw.sent = append(nw.sent, m)
		_ = to.rn.Step(m)
	}
	return true
}

// stabilize runs loops and delivers messages until nothing moves.
func (nw *network) stabilize() {
	for i := 0; ; i++ {
		require.Less(nw.t, i, 10000, "cluster does not stabilize")
		moved := false
		for _, id := range nw.ids {
			for nw.process(nw.nodes[id]) {
				moved = true
			}
		}
		if nw.deliver() {
			moved = true
		}
		if !moved {
			return
		}
	}
}

func (nw *network) campaign(id int64) {
	require.NoError(nw.t, nw.nodes[id].rn.Campaign())
	nw.stabilize()
}

func (nw *network) propose(id int64, data string) error {
	err := nw.nodes[id].rn.Propose([]byte(data))
	nw.stabilize()
	return err
}

func (nw *network) configure(id int64, data []byte) error {
	err := nw.nodes[id].rn.ProposeConfig(data)
	nw.stabilize()
	return err
}

// tick advances every running node's clock by n ticks, stabilizing after each.
func (nw *network) tick(n int) {
	for i := 0; i < n; i++ {
		for _, id := range nw.ids {
			if node := nw.nodes[id]; !node.down {
				node.rn.Tick()
			}
		}
		nw.stabilize()
	}
}

// isolate cuts id off from every other node, both ways.
func (nw *network) isolate(id int64) {
	for _, other := range nw.ids {
		if other != id {
			nw.cut[link{id, other}] = true
			nw.cut[link{other, id}] = true
		}
	}
}

func (nw *network) heal() { nw.cut = map[link]bool{} }

// crash stops a node; it loses everything that is not on its disk.
func (nw *network) crash(id int64) { nw.nodes[id].down = true }

// restart brings a crashed node back from its disk, with the peers and
// options it was first started with (extra options are added).
func (nw *network) restart(id int64, extra ...Option) {
	n := nw.nodes[id]
	var snap *raftpb.Snapshot
	peers := n.peers
	if !IsEmptySnap(n.disk.snap) {
		snap = &n.disk.snap
		peers = n.disk.snap.Nodes
	}
	ents := slices.Clone(n.disk.ents)
	if n.app != nil {
		ents = nil // the node reads them from its storage
	}
	n.rn = RestartRawNode(id, peers, 10, 1, snap, n.disk.hs, ents, append(slices.Clone(n.opts), extra...)...)
	n.appliedIndex = n.disk.snap.Index
	n.down = false
}

func (nw *network) leader() int64 {
	var lead int64
	for _, id := range nw.ids {
		n := nw.nodes[id]
		if !n.down && n.rn.raft.state == StateLeader {
			require.Zero(nw.t, lead, "two leaders")
			lead = id
		}
	}
	return lead
}

// appliedData returns the data of the normal entries a node applied.
func (n *testNode) appliedData() []string {
	var out []string
	for _, e := range n.applied {
		if e.Type == EntryNormal && len(e.Data) > 0 {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func TestClusterElectsAndReplicates(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	require.Equal(t, int64(1), nw.leader())
	for i := 0; i < 10; i++ {
		require.NoError(t, nw.propose(1, fmt.Sprintf("p%d", i)))
	}
	require.NoError(t, nw.propose(2, "from follower"))
	for _, id := range nw.ids {
		n := nw.nodes[id]
		require.Len(t, n.appliedData(), 11, "node %x", id)
		require.Equal(t, nw.nodes[1].appliedData(), n.appliedData())
	}
}

func TestClusterElectsByTimeout(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.tick(40)
	lead := nw.leader()
	require.NotZero(t, lead)
	nw.isolate(lead)
	nw.tick(60)
	newLead := int64(0)
	for _, id := range nw.ids {
		if id != lead && nw.nodes[id].rn.raft.state == StateLeader {
			newLead = id
		}
	}
	require.NotZero(t, newLead, "no new leader after isolating %x", lead)
	require.NotEqual(t, StateLeader, nw.nodes[lead].rn.raft.state, "check-quorum: the isolated leader steps down")
	nw.heal()
	nw.tick(5)
	require.Equal(t, newLead, nw.leader())
	require.NoError(t, nw.propose(newLead, "after heal"))
	for _, id := range nw.ids {
		require.Equal(t, nw.nodes[newLead].appliedData(), nw.nodes[id].appliedData())
	}
}
