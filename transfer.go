package raft

import (
	"errors"
	"fmt"

	"github.com/raftly/raft/raftpb"
)

var (
	// ErrNotLeader: the call needs the leader.
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrTransferRefused wraps why a leadership transfer was refused.
	ErrTransferRefused = errors.New("raft: leadership transfer refused")
	// ErrTransferAbandoned: the transfer did not complete within an
	// election timeout, or another node became leader.
	ErrTransferAbandoned = errors.New("raft: leadership transfer abandoned")
)

// campaignTransfer marks the vote requests of an election that a leader
// asked for: followers answer them even while they hear from that leader.
var campaignTransfer = []byte("transfer")

// transferLeadership starts handing leadership to node to: proposals are
// refused meanwhile, to is brought up to date and then told to campaign at
// once. It is abandoned after an election timeout.
func (r *raft) transferLeadership(to int64) error {
	switch {
	case r.state != StateLeader:
		return fmt.Errorf("%w: leadership transfer asked of node %x, whose leader is %x", ErrNotLeader, r.id, r.lead)
	case to == r.id:
		return nil
	case r.membership().isLearner(to):
		return fmt.Errorf("%w: node %x is a learner", ErrTransferRefused, to)
	case !r.membership().isVoter(to):
		return fmt.Errorf("%w: node %x is not a member", ErrTransferRefused, to)
	case r.leadTransferee == to:
		return nil
	case r.timeoutNowSent:
		return fmt.Errorf("%w: node %x was already told to campaign", ErrTransferRefused, r.leadTransferee)
	}
	r.logger.Info("transferring leadership", "term", r.term, "to", fmt.Sprintf("%x", to))
	r.leadTransferee, r.transferElapsed, r.timeoutNowSent = to, 0, false
	r.maybeSendTimeoutNow()
	if !r.timeoutNowSent {
		r.sendAppend(to, true)
	}
	return nil
}

// maybeSendTimeoutNow tells the transferee to campaign once its log
// matches the leader's.
func (r *raft) maybeSendTimeoutNow() {
	to := r.leadTransferee
	if to == None || r.timeoutNowSent {
		return
	}
	if pr := r.prs[to]; pr != nil && pr.Match == r.log.lastIndex() {
		r.send(raftpb.Message{To: to, Type: raftpb.MsgTimeoutNow})
		r.timeoutNowSent = true
		r.leaseRevoked = true // a new leader may now be elected at any moment
	}
}

// tickTransfer abandons a transfer that took an election timeout, or
// whose transferee left the membership.
func (r *raft) tickTransfer() {
	if r.leadTransferee == None {
		return
	}
	r.transferElapsed++
	if r.transferElapsed >= r.electionTimeout || !r.membership().isVoter(r.leadTransferee) {
		r.logger.Info("leadership transfer abandoned", "term", r.term, "to", fmt.Sprintf("%x", r.leadTransferee))
		r.leadTransferee = None
	}
}

// handleTimeoutNow makes this node campaign at once, in an election the
// leader asked for, as soon as it may (once its committed config entries
// are applied).
func (r *raft) handleTimeoutNow(m raftpb.Message) {
	if m.From != r.lead {
		return
	}
	r.campaignRequested, r.campaignRequestedAt = true, r.ticks
	r.maybeCampaignOnRequest()
}

// maybeCampaignOnRequest starts the election a leader asked for, if this
// node may campaign now; it is retried as ticks pass, until the term moves
// or an election timeout passed (the leader has given the transfer up).
func (r *raft) maybeCampaignOnRequest() {
	if !r.campaignRequested {
		return
	}
	if r.ticks-r.campaignRequestedAt >= int64(r.electionTimeout) {
		r.campaignRequested = false
		return
	}
	if r.state == StateLeader || r.campaignBlocker() != nil {
		return
	}
	r.campaignRequested = false
	r.logger.Info("campaigning at the leader's request", "term", r.term)
	r.campaign(campaignForced)
}
