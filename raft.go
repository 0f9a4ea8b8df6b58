package raft

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"

	"github.com/raftly/raft/raftpb"
)

// None is the id of no node: no leader known, no vote given.
const None int64 = 0

// The entry types, for e.Type == raft.EntryConfig.
const (
	EntryNormal = raftpb.EntryNormal
	EntryConfig = raftpb.EntryConfig
)

// StateType is a node's role.
type StateType uint8

const (
	StateFollower StateType = iota
	// StatePreCandidate: asking for pre-votes, without raising the term.
	StatePreCandidate
	StateCandidate
	StateLeader
)

func (s StateType) String() string {
	switch s {
	case StateFollower:
		return "StateFollower"
	case StatePreCandidate:
		return "StatePreCandidate"
	case StateCandidate:
		return "StateCandidate"
	case StateLeader:
		return "StateLeader"
	}
	return fmt.Sprintf("StateType(%d)", uint8(s))
}

// SoftState is volatile state that need not be persisted.
type SoftState struct {
	Lead      int64
	RaftState StateType
}

var (
	// ErrStopped is returned by the calls of a stopped Node.
	ErrStopped = errors.New("raft: stopped")
	// ErrProposalDropped is returned for a proposal the node knows it will
	// not carry: a config change while another is pending, or before the
	// leader has committed an entry of its term; too many uncommitted
	// bytes; a leader that removed itself.
	ErrProposalDropped = errors.New("raft: proposal dropped")
	// ErrCannotCampaign wraps the reason a node may not campaign.
	ErrCannotCampaign = errors.New("raft: cannot campaign")
	// ErrInvalidMessage wraps the reason a message from the network was refused.
	ErrInvalidMessage = errors.New("raft: invalid message")

	// errNoLeader: a proposal reached a node that knows no leader.
	errNoLeader = errors.New("raft: no leader")
	// errNoConfigWaiting: a membership call without a config entry to tie it to.
	errNoConfigWaiting = errors.New("raft: AddNode or RemoveNode called while no config entry is waiting to be applied: call it once, while applying the EntryConfig entry that the last Ready handed out as its last committed entry")
)

// raft is the deterministic state machine: messages and ticks in; entries
// to persist, messages to send after persisting, state changes and
// committed entries out (collected by RawNode into a Ready).
type raft struct {
	id int64

	term  int64
	vote  int64
	state StateType
	lead  int64
	log   *raftLog

	// members[len-1] is the membership in force; earlier records serve
	// Compact. peers lists every member but this node, sorted.
	members membershipHistory
	peers   []int64
	// prs is the leader's view of each member (itself included when a member).
	prs   map[int64]*Progress
	votes map[int64]bool

	// msgs are queued to be sent once the Ready that carries them is
	// persisted: a message never leaves before the state it reflects.
	msgs []raftpb.Message

	electionElapsed           int
	heartbeatElapsed          int
	electionTimeout           int
	heartbeatTimeout          int
	randomizedElectionTimeout int
	rand                      *rand.Rand

	preVote     bool
	checkQuorum bool
	flowLimits
	uncommittedBytes int64

	// confApplied is the index of the last config entry whose application
	// is settled (membership call made, or the next Ready taken).
	confApplied int64
	// awaitingConf is the config entry handed out whose membership call is
	// awaited, or 0.
	awaitingConf int64
	// joinIndex is the entry that added this node, until a snapshot is
	// restored; membership calls for entries up to it change nothing.
	joinIndex int64
	// removed: this node applied its own removal.
	removed bool
	// removalIndex is the config entry by which a leader removed itself.
	removalIndex int64
	// appendPending: the leader appended entries not yet broadcast.
	appendPending bool
	// ticks counts every tick since the node started.
	ticks int64

	// Reads: how the leader confirms them, its reads in progress, the
	// reads this node asked for (by request context, with their age in
	// ticks) and the answers not yet handed out.
	readMode      readMode
	reads         readRounds
	readsInFlight map[string]*readAttempt
	readAttempts  uint64 // attempts made, to tell a late answer from a current one
	readStates    []ReadState
	// leaseRevoked: this leader asked a follower to campaign in its term.
	leaseRevoked bool
	// promisedUntil is the tick until which, with LeaseReads, this node
	// keeps its promise to the leader it last heard from.
	promisedUntil int64

	// Leadership transfer: the node the leader hands over to, ticks since
	// it started, whether the transferee was told to campaign; and, on the
	// transferee, that its leader asked it to.
	leadTransferee      int64
	transferElapsed     int
	timeoutNowSent      bool
	campaignRequested   bool
	campaignRequestedAt int64 // the tick of the request

	logger *slog.Logger
}

func newRaft(c config, storage Storage, hs raftpb.HardState, base membership) *raft {
	snap := storage.Snapshot()
	// base is the membership at the snapshot, at the entry that added this
	// node, or at the index the application had applied (Applied).
	applied := max(snap.Index, c.appliedIndex)
	r := &raft{
		id:               c.id,
		log:              newLog(storage),
		members:          membershipHistory{{index: max(applied, c.joinIndex), membership: base}},
		electionTimeout:  c.electionTick,
		heartbeatTimeout: c.heartbeatTick,
		rand:             rand.New(rand.NewPCG(c.seed, c.seed^0x9e3779b97f4a7c15)),
		preVote:          c.preVote,
		checkQuorum:      c.checkQuorum,
		readMode:         c.readMode,
		flowLimits:       c.flowLimits,
		confApplied:      applied,
		joinIndex:        c.joinIndex,
		logger:           c.logger.With("raft", fmt.Sprintf("%x", c.id)),
	}
	r.membershipChanged()
	r.becomeFollower(hs.Term, None)
	r.vote = hs.Vote
	r.log.commitTo(hs.Commit)
	r.log.raiseCommitToConfigs()
	r.log.applying, r.log.applied = applied, applied
	return r
}

func (r *raft) hardState() raftpb.HardState {
	return raftpb.HardState{Term: r.term, Vote: r.vote, Commit: r.log.committed}
}

func (r *raft) softState() SoftState { return SoftState{Lead: r.lead, RaftState: r.state} }

func (r *raft) membership() membership { return r.members.current() }

func (r *raft) isVoter() bool { return r.membership().isVoter(r.id) }

// send queues m; see msgs.
func (r *raft) send(m raftpb.Message) {
	m.From = r.id
	if m.Term == 0 && m.Type != raftpb.MsgProp {
		m.Term = r.term
	}
	r.msgs = append(r.msgs, m)
}

// Role transitions.

func (r *raft) reset(term int64) {
	if term != r.term {
		r.term = term
		r.vote = None
	}
	r.lead = None
	r.heartbeatElapsed = 0
	r.resetElectionTimeout()
	r.votes = map[int64]bool{}
	r.removalIndex = 0
	r.appendPending = false
	// Reads and transfers in progress end with the role; a request of the
	// earlier term can no longer be answered.
	r.reads = readRounds{}
	r.readsInFlight = map[string]*readAttempt{}
	r.leadTransferee, r.timeoutNowSent, r.leaseRevoked = None, false, false
	r.campaignRequested = false
}

// resetElectionTimeout restarts the election timer with a fresh random
// timeout in [election, 2*election) (§5.2).
func (r *raft) resetElectionTimeout() {
	r.electionElapsed = 0
	r.randomizedElectionTimeout = r.electionTimeout + r.rand.IntN(r.electionTimeout)
}

func (r *raft) becomeFollower(term, lead int64) {
	r.reset(term)
	r.state = StateFollower
	r.followLeader(lead)
}

// followLeader records lead as the leader, logging a change of leader.
func (r *raft) followLeader(lead int64) {
	if lead != None && lead != r.lead {
		r.logger.Info("following leader", "term", r.term, "leader", fmt.Sprintf("%x", lead))
	}
	r.lead = lead
}

func (r *raft) becomePreCandidate() {
	// The term and the vote stay: a pre-vote promises nothing (§9.6).
	r.votes = map[int64]bool{}
	r.lead = None
	r.state = StatePreCandidate
	r.resetElectionTimeout()
}

func (r *raft) becomeCandidate() {
	r.reset(r.term + 1)
	r.vote = r.id
	r.state = StateCandidate
}

func (r *raft) becomeLeader() {
	r.reset(r.term)
	r.lead = r.id
	r.state = StateLeader
	r.uncommittedBytes = 0
	r.prs = make(map[int64]*Progress, len(r.peers)+1)
	for _, id := range r.membership().members() {
		r.addProgress(id)
	}
	if pr := r.prs[r.id]; pr != nil {
		pr.Match = r.log.unstable.offeredUpTo
		pr.becomeReplicate()
	}
	// An entry of the new term, so that earlier entries can commit (§5.4.2).
	r.appendEntries([]raftpb.Entry{{}})
	r.logger.Info("became leader", "term", r.term)
}

func (r *raft) addProgress(id int64) {
	r.prs[id] = &Progress{
		Next:         r.log.lastIndex() + 1,
		RecentActive: true,
		inflights:    newInflights(r.maxInflight, r.maxInflightBytes),
	}
}

// membershipChanged updates what derives from the membership in force.
func (r *raft) membershipChanged() {
	m := r.membership()
	r.peers = r.peers[:0]
	for _, id := range m.members() {
		if id != r.id {
			r.peers = append(r.peers, id)
		}
	}
	if r.state != StateLeader {
		return
	}
	for id := range r.prs {
		if !m.isMember(id) {
			delete(r.prs, id)
		}
	}
	for _, id := range m.members() {
		if r.prs[id] == nil {
			r.addProgress(id)
		}
	}
}

// Ticks.

func (r *raft) tick() {
	r.ticks++
	r.expireReads()
	if r.state == StateLeader {
		r.tickLeader()
	} else {
		r.maybeCampaignOnRequest()
		r.tickElection()
	}
}

func (r *raft) tickElection() {
	r.electionElapsed++
	if r.electionElapsed >= r.randomizedElectionTimeout && r.campaignBlocker() == nil {
		r.electionElapsed = 0
		_ = r.hup()
	}
}

func (r *raft) tickLeader() {
	r.heartbeatElapsed++
	r.electionElapsed++
	r.tickTransfer()
	if r.electionElapsed >= r.electionTimeout {
		r.electionElapsed = 0
		r.retryStalledSnapshots()
		if r.checkQuorum {
			r.checkLeaderQuorum()
			if r.state != StateLeader {
				return
			}
		}
	}
	if r.heartbeatElapsed >= r.heartbeatTimeout {
		r.heartbeatElapsed = 0
		r.bcastHeartbeat()
	}
}

// inLease reports whether this node heard from a leader within the election
// timeout; with check-quorum it then ignores vote requests (§4.2.3 of the
// thesis: a live leader is not disturbed by a partitioned node).
func (r *raft) inLease() bool {
	return r.leasePromised() || (r.checkQuorum && r.lead != None && r.electionElapsed < r.electionTimeout)
}

// leasePromised reports whether, with LeaseReads, this node keeps its
// promise to a leader: for an election timeout after it last heard from
// one, whatever its role since, and for its first election timeout after
// it starts (it may have answered a leader just before it crashed), it
// grants no vote and starts no election of its own.
func (r *raft) leasePromised() bool {
	return r.readMode == readLease && (r.ticks < int64(r.electionTimeout) || r.ticks < r.promisedUntil)
}

// Step is the entry point for every message, local or from the network.
func (r *raft) Step(m raftpb.Message) error {
	switch {
	case m.Term == 0:
		// Local, or a forwarded proposal.
	case m.Term > r.term:
		if (m.Type == raftpb.MsgVote || m.Type == raftpb.MsgPreVote) && r.inLease() && !forcedCampaign(m) {
			return nil
		}
		switch {
		case m.Type == raftpb.MsgPreVote:
			// A pre-vote request does not move this node's term.
		case m.Type == raftpb.MsgPreVoteResp && !m.Reject:
			// A granted pre-vote carries the term the candidate will use.
		case m.Type == raftpb.MsgApp || m.Type == raftpb.MsgHeartbeat || m.Type == raftpb.MsgSnap:
			r.becomeFollower(m.Term, m.From)
		default:
			r.becomeFollower(m.Term, None)
		}
	case m.Term < r.term:
		r.stepStale(m)
		return nil
	}

	switch m.Type {
	case raftpb.MsgHup:
		return r.hup()
	case raftpb.MsgVote, raftpb.MsgPreVote:
		r.handleVoteRequest(m)
		return nil
	}
	switch r.state {
	case StateLeader:
		return r.stepLeader(m)
	case StateCandidate, StatePreCandidate:
		return r.stepCandidate(m)
	default:
		return r.stepFollower(m)
	}
}

// stepStale answers a message from an earlier term where the answer helps.
func (r *raft) stepStale(m raftpb.Message) {
	switch m.Type {
	case raftpb.MsgApp, raftpb.MsgHeartbeat:
		// A leader cut off for a while may have been replaced while this
		// node never raised its term for it; or this node raised its term
		// where the leader could not hear of it (its campaigns go only to
		// the members it knows, which may be a stale membership). Either
		// way, tell the leader the term (§5.1), whatever the options.
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgAppResp, Commit: r.log.committed})
	case raftpb.MsgVote:
		// Likewise, a candidate of an earlier term learns the current one
		// (§5.1), and campaigns above it next time.
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgVoteResp, Reject: true})
	case raftpb.MsgPreVote:
		r.send(raftpb.Message{To: m.From, Type: raftpb.MsgPreVoteResp, Reject: true})
	}
}

func (r *raft) stepLeader(m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgProp:
		return r.handlePropose(m)
	case raftpb.MsgAppResp:
		r.handleAppendResponse(m)
	case raftpb.MsgHeartbeatResp:
		r.handleHeartbeatResponse(m)
	case raftpb.MsgSnapStatus:
		r.handleSnapStatus(m)
	case raftpb.MsgUnreachable:
		r.handleUnreachable(m)
	case raftpb.MsgReadIndex:
		r.handleReadIndex(m)
	}
	return nil
}

func (r *raft) stepCandidate(m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgProp:
		return errNoLeader
	case raftpb.MsgApp:
		r.becomeFollower(m.Term, m.From)
		r.handleAppend(m)
	case raftpb.MsgHeartbeat:
		r.becomeFollower(m.Term, m.From)
		r.handleHeartbeat(m)
	case raftpb.MsgSnap:
		r.becomeFollower(m.Term, m.From)
		r.handleSnapshot(m)
	case raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
		r.handleVoteResponse(m)
	}
	return nil
}

func (r *raft) stepFollower(m raftpb.Message) error {
	switch m.Type {
	case raftpb.MsgProp:
		return r.forwardProposal(m)
	case raftpb.MsgApp:
		r.heardFromLeader(m.From)
		r.handleAppend(m)
	case raftpb.MsgHeartbeat:
		r.heardFromLeader(m.From)
		r.handleHeartbeat(m)
	case raftpb.MsgSnap:
		r.heardFromLeader(m.From)
		r.handleSnapshot(m)
	case raftpb.MsgReadIndexResp:
		r.handleReadIndexResp(m)
	case raftpb.MsgTimeoutNow:
		r.handleTimeoutNow(m)
	}
	return nil
}

func (r *raft) heardFromLeader(lead int64) {
	r.electionElapsed = 0
	r.promisedUntil = r.ticks + int64(r.electionTimeout)
	r.followLeader(lead)
}

// Elections.

// campaignBlocker returns why this node may not campaign now, or nil.
func (r *raft) campaignBlocker() error {
	switch {
	case !r.membership().isMember(r.id):
		return fmt.Errorf("%w: node %x is not a member (removed, or not yet added)", ErrCannotCampaign, r.id)
	case !r.isVoter():
		return fmt.Errorf("%w: node %x is a learner", ErrCannotCampaign, r.id)
	case r.term >= maxPlausible:
		return fmt.Errorf("%w: term %d is at the limit peers accept", ErrCannotCampaign, r.term)
	case r.joinIndex > 0 && r.log.applied < r.joinIndex:
		return fmt.Errorf("%w: node %x joined at entry %d and has applied only up to %d", ErrCannotCampaign, r.id, r.joinIndex, r.log.applied)
	}
	if c := r.log.lastConfigIndex(r.log.committed); c > r.confApplied {
		return fmt.Errorf("%w: committed config entry %d is not applied yet", ErrCannotCampaign, c)
	}
	if r.log.unstable.snapshot != nil {
		return fmt.Errorf("%w: a snapshot is not yet persisted", ErrCannotCampaign)
	}
	return nil
}

// hup starts an election, after a pre-vote round when pre-vote is on.
func (r *raft) hup() error {
	if r.state == StateLeader {
		return nil
	}
	if err := r.campaignBlocker(); err != nil {
		return err
	}
	if r.leasePromised() {
		return fmt.Errorf("%w: with LeaseReads, node %x keeps a leader's lease for an election timeout after it last heard from it (or after it started)", ErrCannotCampaign, r.id)
	}
	if r.preVote {
		r.campaign(campaignPre)
	} else {
		r.campaign(campaignElection)
	}
	return nil
}

// campaignKind is the kind of election a node starts.
type campaignKind uint8

const (
	campaignPre      campaignKind = iota // a pre-vote round, then the election
	campaignElection                     // an election
	campaignForced                       // an election the leader asked for
)

func (r *raft) campaign(kind campaignKind) {
	voteType, term := raftpb.MsgVote, r.term+1
	var ctx []byte
	switch kind {
	case campaignPre:
		r.becomePreCandidate()
		voteType = raftpb.MsgPreVote
	case campaignForced:
		ctx = campaignTransfer
		fallthrough
	default:
		r.becomeCandidate()
		term = r.term
		r.logger.Info("campaigning", "term", r.term)
	}
	if r.tally(r.id, true) == voteWon {
		r.wonElection(kind == campaignPre)
		return
	}
	last, lastTerm := r.log.lastIndex(), r.log.lastTerm()
	for _, id := range r.membership().voters {
		if id != r.id {
			r.send(raftpb.Message{To: id, Type: voteType, Term: term, Index: last, LogTerm: lastTerm, Context: ctx})
		}
	}
}

// forcedCampaign reports whether m asks for a vote in an election that
// the leader asked for.
func forcedCampaign(m raftpb.Message) bool {
	return m.Type == raftpb.MsgVote && bytes.Equal(m.Context, campaignTransfer)
}

func (r *raft) wonElection(pre bool) {
	if pre {
		r.campaign(campaignElection)
		return
	}
	r.becomeLeader()
	r.bcastAppend(true)
}

func (r *raft) tally(id int64, granted bool) voteResult {
	if _, ok := r.votes[id]; !ok {
		r.votes[id] = granted
	}
	return tallyVotes(r.membership().voters, r.votes)
}

// handleVoteRequest grants a vote only to a candidate whose log is at least
// as up to date as this node's (§5.4.1), and at most one vote per term
// (§5.2). A pre-vote for a later term is granted on the log alone.
func (r *raft) handleVoteRequest(m raftpb.Message) {
	respType := raftpb.MsgVoteResp
	if m.Type == raftpb.MsgPreVote {
		respType = raftpb.MsgPreVoteResp
	}
	canVote := r.vote == m.From ||
		(r.vote == None && r.lead == None) ||
		(m.Type == raftpb.MsgPreVote && m.Term > r.term)
	if canVote && r.log.isUpToDate(m.Index, m.LogTerm) {
		r.send(raftpb.Message{To: m.From, Type: respType, Term: m.Term})
		if m.Type == raftpb.MsgVote {
			r.electionElapsed = 0
			r.vote = m.From
		}
		return
	}
	r.send(raftpb.Message{To: m.From, Type: respType, Reject: true})
}

func (r *raft) handleVoteResponse(m raftpb.Message) {
	pre := r.state == StatePreCandidate
	if pre != (m.Type == raftpb.MsgPreVoteResp) {
		return // a response to an earlier round
	}
	switch r.tally(m.From, !m.Reject) {
	case voteWon:
		r.wonElection(pre)
	case voteLost:
		r.becomeFollower(r.term, None)
	}
}

// checkLeaderQuorum makes a leader that has not heard from a quorum since
// the last check step down.
func (r *raft) checkLeaderQuorum() {
	active := quorumActive(r.membership().voters, func(id int64) bool {
		pr := r.prs[id]
		return id == r.id || (pr != nil && pr.RecentActive)
	})
	for id, pr := range r.prs {
		if id != r.id {
			pr.RecentActive = false
		}
	}
	if !active {
		r.logger.Info("stepping down: no quorum heard from", "term", r.term)
		r.becomeFollower(r.term, None)
	}
}
