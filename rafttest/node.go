package rafttest

import (
	"slices"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// disk is what a node persisted: it survives crashes. Alongside the
// entries it keeps their chain hashes, for the checkers.
type disk struct {
	snap      raftpb.Snapshot
	snapChain uint64 // chain hash of the log up to snap.Index
	hs        raftpb.HardState
	ents      []raftpb.Entry // after snap, contiguous
	chains    []uint64       // chains[i] is the chain hash up to ents[i]
}

func (d *disk) lastIndex() int64 { return d.snap.Index + int64(len(d.ents)) }

// chainAt returns the chain hash of the persisted log up to index, or 0
// when the disk does not hold index (compacted, or beyond the log).
func (d *disk) chainAt(index int64) uint64 {
	switch {
	case index == d.snap.Index:
		return d.snapChain
	case index < d.snap.Index || index > d.lastIndex():
		return 0
	}
	return d.chains[index-d.snap.Index-1]
}

// Node is one node of a Cluster, as the simulated application sees it: a
// RawNode while it runs, its disk, its state machine. Tests and
// Config.Checks read it; the Cluster changes it.
type Node struct {
	c   *Cluster
	id  int64
	rn  *raft.RawNode
	up  bool
	inc int // incarnation: starts at 1, +1 on each restart

	// How it was first started: peers (voters) and learners, and the
	// index of the entry that added it (0 for a founding member).
	peers, learners []int64
	join            int64

	disk  disk
	maxHS raftpb.HardState // the highest term and commit ever persisted
	sm    StateMachine

	// What this incarnation applied: up to applied, whose entry has term
	// appliedTerm, the history having chain hash appliedChain.
	applied      int64
	appliedTerm  int64
	appliedChain uint64

	// term and soft are the node's term and soft state as of its last
	// Ready (or its restart).
	term int64
	soft raft.SoftState

	// probeApplied: this incarnation applied the liveness probe.
	probeApplied bool

	// reads are the client reads this incarnation asked for that have not
	// returned, in the order asked.
	reads []pendingRead
}

// ID returns the node's id.
func (n *Node) ID() int64 { return n.id }

// Running reports whether the node runs (it is not crashed or stopped).
func (n *Node) Running() bool { return n.up }

// Removed reports whether the node's removal was applied (by any node): it
// is not restarted once down.
func (n *Node) Removed() bool { return n.c.removed[n.id] }

// Incarnation counts the node's starts: 1 until its first restart.
func (n *Node) Incarnation() int { return n.inc }

// RawNode returns the node's RawNode while it runs, else nil. Calls that
// change it bypass the simulator's bookkeeping: read only.
func (n *Node) RawNode() *raft.RawNode {
	if !n.up {
		return nil
	}
	return n.rn
}

// Status returns the node's status; the zero Status when it is down.
func (n *Node) Status() raft.Status {
	if !n.up {
		return raft.Status{}
	}
	return n.rn.Status()
}

// Applied returns the index of the last entry this incarnation applied (or
// restored from a snapshot).
func (n *Node) Applied() int64 { return n.applied }

// StateMachine returns the node's state machine; nil while it is down.
func (n *Node) StateMachine() StateMachine {
	if !n.up {
		return nil
	}
	return n.sm
}

// Snapshot returns the snapshot on the node's disk (empty if none).
func (n *Node) Snapshot() raftpb.Snapshot { return n.disk.snap }

// HardState returns the HardState on the node's disk.
func (n *Node) HardState() raftpb.HardState { return n.disk.hs }

// Entries returns a copy of the entries on the node's disk, after its
// snapshot.
func (n *Node) Entries() []raftpb.Entry { return slices.Clone(n.disk.ents) }

// JoinIndex returns the index of the entry that added the node, or 0 for a
// founding member.
func (n *Node) JoinIndex() int64 { return n.join }
