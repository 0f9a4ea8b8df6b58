package raft

import (
	"fmt"
	"slices"

	"github.com/raftly/raft/raftpb"
)

// Proposals.

// handlePropose appends proposed entries to the leader's log. The append is
// broadcast once per batch (flushAppends), not once per proposal.
func (r *raft) handlePropose(m raftpb.Message) error {
	if !r.membership().isMember(r.id) {
		return ErrProposalDropped // a leader that removed itself is stepping down
	}
	if r.leadTransferee != None {
		return ErrProposalDropped // leadership is being handed over
	}
	if err := r.admitConfigs(m.Entries); err != nil {
		return err
	}
	if r.maxUncommittedBytes > 0 {
		size := payloadSize(m.Entries)
		if r.uncommittedBytes > 0 && r.uncommittedBytes+size > r.maxUncommittedBytes {
			return ErrProposalDropped
		}
	}
	r.appendEntries(m.Entries)
	r.appendPending = true
	return nil
}

// admitConfigs refuses config entries while another change is pending, and
// before the leader has committed an entry of its own term.
func (r *raft) admitConfigs(ents []raftpb.Entry) error {
	configs := 0
	for i := range ents {
		if ents[i].Type == raftpb.EntryConfig {
			configs++
		}
	}
	if configs == 0 {
		return nil
	}
	if configs > 1 || r.configPending() {
		return ErrProposalDropped
	}
	if r.state == StateLeader && r.log.termOrZero(r.log.committed) != r.term {
		return ErrProposalDropped
	}
	return nil
}

// configPending reports whether a config entry in the log is not yet
// applied by the application.
func (r *raft) configPending() bool {
	return r.log.lastConfigIndex(r.log.lastIndex()) > r.confApplied
}

// appendEntries appends copies of ents with the leader's term and the next
// indexes; ents (the caller's) is not modified.
func (r *raft) appendEntries(ents []raftpb.Entry) {
	r.log.appendProposals(r.term, ents)
	r.uncommittedBytes += payloadSize(ents)
}

// releaseUncommitted stops counting committed entries of the leader's term
// (the only ones it counted) as uncommitted.
func (r *raft) releaseUncommitted(committed []raftpb.Entry) {
	for i := range committed {
		if committed[i].Term == r.term {
			r.uncommittedBytes -= int64(len(committed[i].Data))
		}
	}
	r.uncommittedBytes = max(0, r.uncommittedBytes)
}

func payloadSize(ents []raftpb.Entry) int64 {
	var n int64
	for i := range ents {
		n += int64(len(ents[i].Data))
	}
	return n
}

func (r *raft) forwardProposal(m raftpb.Message) error {
	if r.lead == None {
		return errNoLeader
	}
	if err := r.admitConfigs(m.Entries); err != nil {
		return err
	}
	m.To = r.lead
	m.Term = 0
	// The message leaves in a Ready: it must not share the caller's array.
	m.Entries = slices.Clone(m.Entries)
	r.send(m)
	return nil
}

// Leader side of replication.

// flushAppends broadcasts entries appended since the last broadcast.
func (r *raft) flushAppends() {
	if r.appendPending {
		r.appendPending = false
		r.bcastAppend(false)
	}
}

// bcastAppend sends to every follower what it lacks; with sendEmpty, also
// an empty append to carry the commit index.
func (r *raft) bcastAppend(sendEmpty bool) {
	for _, id := range r.peers {
		r.sendAppend(id, sendEmpty)
	}
}

// sendAppend sends the entries the follower lacks (or a snapshot when they
// were compacted) and reports whether it sent anything.
func (r *raft) sendAppend(to int64, sendEmpty bool) bool {
	pr := r.prs[to]
	if pr == nil || pr.paused() {
		return false
	}
	prev := pr.Next - 1
	prevTerm, errTerm := r.log.term(prev)
	ents, errEnts := r.log.slice(pr.Next, r.log.lastIndex()+1, r.maxMsgBytes)
	if errTerm != nil || errEnts != nil {
		return r.sendSnapshot(to, pr)
	}
	if len(ents) == 0 && !sendEmpty && pr.State == ProgressReplicate {
		return false
	}
	r.send(raftpb.Message{To: to, Type: raftpb.MsgApp, Index: prev, LogTerm: prevTerm, Entries: ents, Commit: r.log.committed})
	if n := len(ents); n > 0 {
		pr.sentEntries(ents[n-1].Index, payloadSize(ents))
	} else if pr.State == ProgressProbe {
		pr.ProbeSent = true
	}
	return true
}

func (r *raft) sendSnapshot(to int64, pr *Progress) bool {
	if !pr.RecentActive {
		return false
	}
	snap := r.log.storage.Snapshot()
	if IsEmptySnap(snap) {
		// Nothing was compacted: the follower's index is simply not there yet.
		return false
	}
	r.send(raftpb.Message{To: to, Type: raftpb.MsgSnap, Snapshot: snap})
	pr.becomeSnapshot(snap.Index)
	r.logger.Info("sending snapshot", "term", r.term, "to", fmt.Sprintf("%x", to), "index", snap.Index)
	return true
}

func (r *raft) bcastHeartbeat() {
	var round uint64
	if r.roundInFlight() {
		round = r.reads.sent
	}
	ctx := heartbeatContext(round, r.ticks)
	for _, id := range r.peers {
		pr := r.prs[id]
		// Commit only what the follower is known to hold.
		r.send(raftpb.Message{To: id, Type: raftpb.MsgHeartbeat, Commit: min(pr.Match, r.log.committed), Context: ctx})
	}
}

// maybeCommit commits the largest index a quorum of voters holds, if it is
// of the leader's term: entries of earlier terms commit only by implication
// (§5.4.2, figure 8).
func (r *raft) maybeCommit() bool {
	idx := committedIndex(r.membership().voters, func(id int64) int64 {
		if pr := r.prs[id]; pr != nil {
			return pr.Match
		}
		return 0
	})
	if idx <= r.log.committed || r.log.termOrZero(idx) != r.term {
		return false
	}
	r.log.commitTo(idx)
	r.takeUpReadsBeforeCommit()
	return true
}

// selfAcknowledge counts the leader's own entries up to last as persisted:
// they were handed out in a Ready, whose messages leave only after it is.
func (r *raft) selfAcknowledge(last int64) {
	if r.state != StateLeader {
		return
	}
	if pr := r.prs[r.id]; pr != nil && pr.maybeUpdate(last) && r.maybeCommit() {
		r.bcastAppend(true)
	}
}

func (r *raft) handleAppendResponse(m raftpb.Message) {
	pr := r.prs[m.From]
	if pr == nil {
		return
	}
	pr.RecentActive = true
	pr.Commit = max(pr.Commit, min(m.Commit, r.log.committed))
	defer r.checkRemovalAcknowledged()
	if m.Reject {
		next := m.RejectHint
		if m.LogTerm > 0 {
			// Skip every entry of the follower's conflicting term at once.
			next, _ = r.log.findConflictByTerm(m.RejectHint, m.LogTerm)
		}
		if pr.maybeDecrTo(m.Index, next) {
			if pr.State == ProgressReplicate {
				pr.becomeProbe()
			}
			r.sendAppend(m.From, true)
		}
		return
	}
	if m.Index > r.log.lastIndex() {
		return // acknowledges entries this leader never had: ignore
	}
	wasPaused := pr.paused()
	if !pr.maybeUpdate(m.Index) {
		return
	}
	switch pr.State {
	case ProgressProbe:
		pr.becomeReplicate()
	case ProgressSnapshot:
		if pr.Match >= pr.PendingSnapshot {
			pr.becomeProbe()
			pr.becomeReplicate()
		}
	case ProgressReplicate:
		pr.inflights.freeLE(m.Index)
	}
	if m.From == r.leadTransferee {
		r.maybeSendTimeoutNow()
	}
	if r.maybeCommit() {
		r.bcastAppend(true)
	} else if wasPaused {
		// The broadcast of a new commit index may have skipped it.
		r.sendAppend(m.From, true)
	}
	for r.sendAppend(m.From, false) {
	}
}

func (r *raft) handleHeartbeatResponse(m raftpb.Message) {
	pr := r.prs[m.From]
	if pr == nil {
		return
	}
	pr.RecentActive = true
	pr.ProbeSent = false
	pr.Commit = max(pr.Commit, min(m.Commit, r.log.committed))
	r.heartbeatAcked(pr, m.From, m.Context)
	if pr.State == ProgressReplicate && pr.inflights.full() {
		pr.inflights.freeFirst()
	}
	if pr.Match < r.log.lastIndex() {
		// An append or its answer may have been lost: an empty append gets
		// the follower's log position back (or a rejection to probe from).
		r.sendAppend(m.From, true)
	}
	r.checkRemovalAcknowledged()
}

func (r *raft) handleSnapStatus(m raftpb.Message) {
	pr := r.prs[m.From]
	if pr == nil || pr.State != ProgressSnapshot {
		return
	}
	if m.Reject {
		pr.PendingSnapshot = 0
	}
	pr.becomeProbe()
	// Wait for a heartbeat response before probing again.
	pr.ProbeSent = true
}

// retryStalledSnapshots gives up on a snapshot that has been in flight for
// more than one election timeout (lost, or its report never came): the
// follower is probed again, which sends a new one if it still needs it.
func (r *raft) retryStalledSnapshots() {
	for _, id := range r.peers {
		pr := r.prs[id]
		if pr.State != ProgressSnapshot {
			continue
		}
		if pr.snapshotAge++; pr.snapshotAge > 1 {
			pr.PendingSnapshot = 0
			pr.becomeProbe()
		}
	}
}

func (r *raft) handleUnreachable(m raftpb.Message) {
	if pr := r.prs[m.From]; pr != nil && pr.State == ProgressReplicate {
		pr.becomeProbe()
	}
}

// checkRemovalAcknowledged makes a leader that removed itself step down once
// a quorum of the remaining voters know a commit index covering the removal.
func (r *raft) checkRemovalAcknowledged() {
	if r.state != StateLeader || r.removalIndex == 0 {
		return
	}
	acked := quorumActive(r.membership().voters, func(id int64) bool {
		pr := r.prs[id]
		return pr != nil && pr.Commit >= r.removalIndex
	})
	if acked {
		r.logger.Info("removed leader stepping down", "term", r.term, "removal", r.removalIndex)
		r.becomeFollower(r.term, None)
	}
}

// Follower side of replication.

// handleAppend applies the consistency check on the previous entry (§5.3)
// and appends; a rejection carries a hint that lets the leader skip a whole
// conflicting term.
func (r *raft) handleAppend(m raftpb.Message) {
	if m.Index < r.log.committed {
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Index: r.log.committed, Commit: r.log.committed})
		return
	}
	last, ok, err := r.log.maybeAppend(m.Index, m.LogTerm, m.Commit, m.Entries)
	if err != nil {
		r.logger.Warn("refused append", "term", r.term, "from", fmt.Sprintf("%x", m.From), "err", err)
		return
	}
	if ok {
		r.log.raiseCommitToConfigs()
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Index: last, Commit: r.log.committed})
		return
	}
	hint, hintTerm := r.log.findConflictByTerm(min(m.Index, r.log.lastIndex()), m.LogTerm)
	r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Index: m.Index, Reject: true,
		RejectHint: hint, LogTerm: hintTerm, Commit: r.log.committed})
}

func (r *raft) handleHeartbeat(m raftpb.Message) {
	r.log.commitTo(min(m.Commit, r.log.lastIndex()))
	r.send(raftpb.Message{To: m.From, Type: raftpb.MsgHeartbeatResp, Commit: r.log.committed, Context: m.Context})
}

func (r *raft) handleSnapshot(m raftpb.Message) {
	if r.restore(m.Snapshot) {
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Index: r.log.lastIndex(), Commit: r.log.committed})
		return
	}
	r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Index: r.log.committed, Commit: r.log.committed})
}

// restore replaces the log with snap when snap is beyond the commit index
// and the log does not already hold its last entry; otherwise, when the log
// holds it, it only advances the commit index.
func (r *raft) restore(snap raftpb.Snapshot) bool {
	if snap.Index <= r.log.committed {
		return false
	}
	if r.log.matchTerm(snap.Index, snap.Term) {
		r.log.commitTo(snap.Index)
		return false
	}
	r.log.restore(snap)
	r.members = membershipHistory{{index: snap.Index, membership: newMembership(snap.Nodes, snap.Learners)}}
	r.joinIndex = 0
	r.confApplied = snap.Index
	r.awaitingConf = 0
	r.membershipChanged()
	r.logger.Info("restored snapshot", "term", r.term, "index", snap.Index, "snapshot_term", snap.Term)
	return true
}

// Membership calls.

// membershipChange is what a membership call does.
type membershipChange uint8

const (
	addVoter membershipChange = iota
	addLearner
	promoteLearner
	removeNode
)

// applyMembershipChange ties a membership call (AddNode, AddLearner,
// PromoteLearner, RemoveNode) to the config entry being applied.
func (r *raft) applyMembershipChange(change membershipChange, id int64) error {
	index := r.awaitingConf
	if index == 0 {
		return errNoConfigWaiting
	}
	r.awaitingConf = 0
	r.confApplied = max(r.confApplied, index)
	if index <= r.joinIndex {
		return nil // replayed history from before this node joined
	}
	cur := r.membership()
	var next membership
	switch change {
	case addVoter:
		next = cur.withVoter(id)
	case addLearner:
		next = cur.withLearner(id)
	case promoteLearner:
		next = cur.promoted(id)
	default:
		next = cur.without(id)
	}
	if slices.Equal(next.voters, cur.voters) && slices.Equal(next.learners, cur.learners) {
		return nil
	}
	r.members = append(r.members, membershipRecord{index: index, membership: next})
	r.membershipChanged()
	r.logger.Info("membership changed", "term", r.term, "index", index, "voters", next.voters, "learners", next.learners)
	defer r.maybeCampaignOnRequest()
	removedNow := cur.isMember(r.id) && !next.isMember(r.id)
	r.removed = r.removed || removedNow
	if r.state == StateLeader {
		if removedNow {
			r.removalIndex = index
		}
		if r.maybeCommit() {
			r.bcastAppend(true)
		}
		r.checkRemovalAcknowledged()
	}
	return nil
}

// settleConfig marks the config entry at index as applied without a
// membership call: the application rejected the change.
func (r *raft) settleConfig(index int64) {
	if r.awaitingConf == index {
		r.awaitingConf = 0
	}
	r.confApplied = max(r.confApplied, index)
	r.maybeCampaignOnRequest()
}
