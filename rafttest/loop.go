package rafttest

import (
	"strconv"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// The application loop of one node, as documented: persist the Ready's
// Snapshot, Entries and State, in that order; apply the committed entries
// (config entries through AddNode/RemoveNode); send the messages. The
// checkers watch every step of it.

// process runs one turn of n's loop, if n runs and has a Ready.
func (c *Cluster) process(n *Node) bool {
	if !n.up {
		return false
	}
	c.doing, c.doingNode = "HasReady", n.id
	if !n.rn.HasReady() {
		return false
	}
	c.doing = "Ready"
	rd := n.rn.Ready()
	c.trace.add(event{step: c.step, kind: evReady, node: n.id, rd: summarize(rd)})
	if c.observe(n, rd) {
		return true
	}
	early, afterPersist := c.splitMessages(rd)
	if c.send(n, early) || !c.persist(n, rd, -1) {
		return true
	}
	if !raft.IsEmptySnap(rd.Snapshot) && !c.restoreSnapshot(n, rd.Snapshot) {
		return true
	}
	if c.checkLeader(n) {
		return true
	}
	for i := range rd.CommittedEntries {
		if !c.apply(n, &rd.CommittedEntries[i]) {
			return true
		}
	}
	if len(rd.ReadStates) > 0 && c.readStates(n, rd.ReadStates) {
		return true
	}
	c.serveReads(n)
	c.doing = "Advance"
	n.rn.Advance()
	c.send(n, afterPersist)
	return true
}

// splitMessages splits a Ready's messages into those sent before it is
// persisted and those sent after: with Config.SendEarly, as
// Ready.SplitMessages allows; otherwise all after.
func (c *Cluster) splitMessages(rd raft.Ready) (early, afterPersist []raftpb.Message) {
	if c.cfg.SendEarly {
		return rd.SplitMessages()
	}
	return nil, rd.Messages
}

// send sends msgs from n, checking each as it leaves; it reports a
// violation.
func (c *Cluster) send(n *Node, msgs []raftpb.Message) bool {
	for i := range msgs {
		if c.checkSend(n, &msgs[i]) {
			return true
		}
		c.net.send(msgs[i], n.inc)
	}
	return false
}

// observe takes in a Ready's term and soft state: election safety.
func (c *Cluster) observe(n *Node, rd raft.Ready) bool {
	if !raft.IsEmptyHardState(rd.State) {
		n.term = rd.State.Term
	}
	if rd.SoftState != nil {
		n.soft = *rd.SoftState
	}
	switch {
	case n.soft.RaftState == raft.StateLeader:
		if rd.SoftState != nil {
			c.becameLeader(n)
		}
		return c.fail(c.chk.leader(n.term, n.id, "it says so itself"))
	case n.soft.Lead != raft.None:
		// A follower learns its leader from the leader's own messages.
		if f := c.chk.leader(n.term, n.soft.Lead, "as a follower sees it"); f != nil {
			f.detail += " (follower " + strconv.FormatInt(n.id, 16) + ")"
			return c.fail(f)
		}
	}
	return false
}

// persist writes rd's Snapshot, Entries and State to n's disk, in that
// order; with writes >= 0, only that many writes reach the disk (a crash).
// It returns false on a violation.
func (c *Cluster) persist(n *Node, rd raft.Ready, writes int) bool {
	budget := writes
	if !raft.IsEmptySnap(rd.Snapshot) {
		if budget == 0 {
			return true
		}
		budget--
		if !c.persistSnapshot(n, rd.Snapshot) {
			return false
		}
	}
	ents := rd.Entries
	partial := false
	if budget >= 0 && budget < len(ents) {
		ents, partial = ents[:budget], true
	}
	budget -= len(ents)
	if !c.persistEntries(n, ents) {
		return false
	}
	if partial || raft.IsEmptyHardState(rd.State) || budget == 0 {
		return true
	}
	return c.persistState(n, rd.State)
}

func (c *Cluster) persistSnapshot(n *Node, s raftpb.Snapshot) bool {
	d := &n.disk
	chain, ok := c.chk.chainOf(s.Index, s.Term)
	if !ok {
		return !c.fail(found(CheckPersistence, "node %x is handed a snapshot at %d/%d, an entry no disk ever held", n.id, s.Term, s.Index))
	}
	if s.Index <= d.snap.Index {
		return !c.fail(found(CheckMonotonic, "node %x is handed a snapshot at %d, not beyond the one on its disk (%d)", n.id, s.Index, d.snap.Index))
	}
	if want := at(c.chk.committed, s.Index); want != 0 && want != chain {
		return !c.fail(found(CheckCommitted, "node %x is handed a snapshot at %d/%d of a log that differs from the committed one", n.id, s.Term, s.Index))
	}
	for j := range d.ents {
		if idx := d.ents[j].Index; idx > s.Index && c.chk.isCommitted(idx, d.chains[j]) {
			return !c.fail(found(CheckCommitted, "node %x persists a snapshot at %d/%d, dropping committed entry %s from its disk", n.id, s.Term, s.Index, raft.DescribeEntry(d.ents[j])))
		}
	}
	d.snap, d.snapChain = s, chain
	d.ents, d.chains = d.ents[:0], d.chains[:0]
	// The snapshot is committed: a node restores one only from a leader.
	return !c.fail(c.chk.commit(n.id, n.term, s.Index, chain, d.chainAt))
}

func (c *Cluster) persistEntries(n *Node, ents []raftpb.Entry) bool {
	if len(ents) == 0 {
		return true
	}
	if c.breakRules.skipEntries {
		return true
	}
	d := &n.disk
	first := ents[0].Index
	if first <= d.snap.Index {
		skip := d.snap.Index + 1 - first
		if skip >= int64(len(ents)) {
			return true
		}
		ents, first = ents[skip:], first+skip
	}
	last := d.lastIndex()
	if first > last+1 {
		return !c.fail(found(CheckPersistence, "node %x is handed entries from %d, leaving a gap after its last persisted entry %d", n.id, first, last))
	}
	// Chain hashes of the new entries.
	prev := d.chainAt(first - 1)
	prevTerm := d.snap.Term
	if first-1 > d.snap.Index {
		prevTerm = d.ents[first-1-d.snap.Index-1].Term
	}
	chains := c.scratch[:0]
	for i := range ents {
		e := &ents[i]
		if e.Index != first+int64(i) || e.Term < prevTerm {
			return !c.fail(found(CheckPersistence, "node %x is handed entry %s after %d/%d: entries must be contiguous with terms that never decrease", n.id, raft.DescribeEntry(*e), prevTerm, e.Index-1))
		}
		prev, prevTerm = chainHash(prev, e), e.Term
		chains = append(chains, prev)
	}
	c.scratch = chains
	// Entries replaced or cut off must not be committed ones.
	keep := first - d.snap.Index - 1
	for j := keep; j < int64(len(d.ents)); j++ {
		idx := d.ents[j].Index
		if idx > c.chk.commitIndex {
			break
		}
		var now uint64
		if k := idx - first; k < int64(len(chains)) {
			now = chains[k]
		}
		if d.chains[j] != now && c.chk.isCommitted(idx, d.chains[j]) {
			return !c.fail(found(CheckCommitted, "node %x persists entries from %s, overwriting committed entry %s on its disk", n.id, raft.DescribeEntry(ents[0]), raft.DescribeEntry(d.ents[j])))
		}
	}
	for i := range ents {
		if c.fail(c.chk.persisted(n.id, ents[i].Index, ents[i].Term, chains[i])) {
			return false
		}
	}
	d.ents = append(d.ents[:keep], ents...)
	d.chains = append(d.chains[:keep], chains...)
	return true
}

func (c *Cluster) persistState(n *Node, hs raftpb.HardState) bool {
	d := &n.disk
	// n.maxHS is the highest term and commit the node ever persisted, in
	// any incarnation: the disk's, unless the disk was lost.
	if c.fail(hardStateWrite(n.id, n.maxHS, hs, d.lastIndex())) {
		return false
	}
	if hs.Vote != raft.None && c.fail(c.chk.vote(n.id, hs.Term, hs.Vote)) {
		return false
	}
	n.maxHS = hs
	d.hs = hs
	if hs.Commit < d.snap.Index {
		return true
	}
	return !c.fail(c.chk.commit(n.id, hs.Term, hs.Commit, d.chainAt(hs.Commit), d.chainAt))
}

// restoreSnapshot restores n's state machine from a snapshot it persisted.
func (c *Cluster) restoreSnapshot(n *Node, s raftpb.Snapshot) bool {
	if s.Index <= n.applied {
		return !c.fail(found(CheckMonotonic, "node %x restores a snapshot at %d, not beyond what it applied (%d)", n.id, s.Index, n.applied))
	}
	c.doing = "StateMachine.Restore"
	if err := n.sm.Restore(s.Data); err != nil {
		return !c.fail(found(CheckStateMachine, "node %x cannot restore the snapshot at %d: %v", n.id, s.Index, err))
	}
	n.applied, n.appliedTerm, n.appliedChain = s.Index, s.Term, n.disk.snapChain
	c.stats.Restores++
	c.logf(n.id, "restored snapshot %d/%d", s.Term, s.Index)
	c.restoredWrites(n, s.Index)
	return !c.fail(c.chk.restored(n.id, s.Index, n.disk.snapChain, digestOf(n.sm)))
}

// checkLeader checks that a leader's log, as persisted, holds every entry
// committed in an earlier term (leader completeness, §5.4).
func (c *Cluster) checkLeader(n *Node) bool {
	if n.soft.RaftState != raft.StateLeader {
		return false
	}
	need := c.chk.committedBefore(n.term)
	if need == 0 {
		return false
	}
	d := &n.disk
	var want, have uint64
	if need <= d.snap.Index {
		want, have = at(c.chk.committed, d.snap.Index), d.snapChain
	} else {
		want, have = at(c.chk.committed, need), d.chainAt(need)
	}
	if want != 0 && have != want {
		return c.fail(found(CheckLeaderCompleteness, "node %x leads term %d, but its log lacks entry %d, committed in an earlier term (its disk holds up to %d)", n.id, n.term, need, d.lastIndex()))
	}
	return false
}

// apply applies one committed entry on n.
func (c *Cluster) apply(n *Node, e *raftpb.Entry) bool {
	if e.Index != n.applied+1 {
		return !c.fail(found(CheckMonotonic, "node %x is handed entry %d to apply after %d", n.id, e.Index, n.applied))
	}
	chain := chainHash(n.appliedChain, e)
	n.applied, n.appliedTerm, n.appliedChain = e.Index, e.Term, chain
	if e.Type == raftpb.EntryConfig {
		c.applyConfig(n, e)
	} else if len(e.Data) > 0 {
		rid, cmd := untag(e.Data)
		if c.isDuplicate(rid, e.Index) {
			c.logf(n.id, "skip %s: request %d was applied at %d", raft.DescribeEntry(*e), rid, c.firstIndex[rid])
		} else {
			if rid != 0 && rid == c.probe {
				n.probeApplied = true
			}
			if rid != 0 {
				c.appliedWrite(n, rid, e.Index)
			}
			ent := *e
			ent.Data = cmd
			if c.breakRules.corruptApply == n.id {
				ent.Data = append([]byte("put corrupt "), cmd...)
			}
			c.doing = "StateMachine.Apply"
			n.sm.Apply(ent)
		}
	}
	return !c.fail(c.chk.apply(n.id, e.Index, chain, digestOf(n.sm)))
}

// isDuplicate reports whether the entry at index carries request id rid
// a second time: the network may duplicate a forwarded proposal (MsgProp),
// and the leader then appends it twice. The application applies each
// request once, as an application must (§6.3 of the Raft thesis): one
// that keeps the requests it applied in its state, and in its snapshots,
// makes the same decision on every node; the simulator keeps that record
// for the whole cluster, from the committed log, which every node shares.
func (c *Cluster) isDuplicate(rid, index int64) bool {
	if rid == 0 {
		return false
	}
	first, ok := c.firstIndex[rid]
	if !ok {
		c.firstIndex[rid] = index
		return false
	}
	if first != index {
		c.stats.Duplicates++
		return true
	}
	return false
}

// applyConfig applies a config entry: "add <id>", "learner <id>",
// "promote <id>" and "remove <id>" through AddNode, AddLearner,
// PromoteLearner and RemoveNode, anything else rejected. The first node to
// apply an entry (every other applies it later) starts the node it adds.
func (c *Cluster) applyConfig(n *Node, e *raftpb.Entry) {
	op, id, ok := parseConfig(e.Data)
	c.doing = "AddNode/RemoveNode"
	switch {
	case c.breakRules.ignoreConfig:
	case ok && op == "add":
		n.rn.AddNode(id)
	case ok && op == "learner":
		n.rn.AddLearner(id)
	case ok && op == "promote":
		n.rn.PromoteLearner(id)
	case ok && op == "remove":
		n.rn.RemoveNode(id)
	}
	if e.Index <= c.confIndex {
		return
	}
	st := n.rn.Status()
	c.voters, c.learners, c.confIndex = st.Voters, st.Learners, e.Index
	c.stats.ConfigsApplied++
	c.logf(n.id, "applied config %s first: voters %x learners %x", raft.DescribeEntry(*e), st.Voters, st.Learners)
	switch {
	case !ok:
	case (op == "add" || op == "learner") && c.nodes[id] == nil && c.isMember(id):
		c.start(id, st.Voters, st.Learners, e.Index)
	case op == "remove" && !c.isMember(id):
		c.removed[id] = true
		c.stats.NodesRemoved++
	}
}

// checkSend checks a message as it leaves: what it promises is on disk.
func (c *Cluster) checkSend(n *Node, m *raftpb.Message) bool {
	switch m.Type {
	case raftpb.MsgVoteResp:
		if m.Reject {
			return false
		}
		if c.fail(c.chk.vote(n.id, m.Term, m.To)) {
			return true
		}
		// The vote must be on disk before the grant leaves (a later term on
		// disk is fine: the node can no longer vote in this one).
		if hs := n.disk.hs; hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != m.To) {
			return c.fail(found(CheckVote, "node %x grants its vote in term %d to %x before persisting it (its disk has %d/%x)", n.id, m.Term, m.To, hs.Term, hs.Vote))
		}
	case raftpb.MsgAppResp:
		// An acknowledgement made in an earlier term than the node's may
		// cover entries truncated since by a later leader: it was true
		// when made (they were persisted then), which is all Raft needs.
		if !m.Reject && m.Term >= n.disk.hs.Term && m.Index > n.disk.lastIndex() {
			return c.fail(found(CheckPersistence, "node %x acknowledges entries up to %d, but its disk holds only up to %d", n.id, m.Index, n.disk.lastIndex()))
		}
	case raftpb.MsgApp, raftpb.MsgHeartbeat:
		return c.tellCommit(n, m.Term, m.Commit)
	case raftpb.MsgReadIndexResp:
		return c.tellCommit(n, m.Term, m.Index)
	}
	return false
}

// tellCommit records the commit index that a leader's message tells its
// recipient. Once told it is as good as persisted, even when the message
// left before the Ready that commits it was persisted (Config.SendEarly),
// so the leader's disk must already hold the log up to it.
func (c *Cluster) tellCommit(n *Node, term, index int64) bool {
	d := &n.disk
	if index <= d.snap.Index {
		return false
	}
	chain := d.chainAt(index)
	if chain == 0 {
		return c.fail(found(CheckPersistence, "node %x tells commit index %d before its disk holds that entry (it holds up to %d)", n.id, index, d.lastIndex()))
	}
	return c.fail(c.chk.commit(n.id, term, index, chain, d.chainAt))
}

// stepMessage hands a delivered message to its recipient.
func (c *Cluster) stepMessage(n *Node, m raftpb.Message) {
	c.doing, c.doingNode = "Step", n.id
	if err := n.rn.Step(m); err != nil {
		c.fail(found(CheckStep, "node %x refused %s: %v", n.id, raft.DescribeMessage(m), err))
	}
}
