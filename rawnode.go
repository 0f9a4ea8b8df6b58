package raft

import (
	"fmt"
	"slices"

	"github.com/raftly/raft/raftpb"
)

// Ready is a batch of work for the application: persist Snapshot, Entries
// and State (in that order, or atomically), apply CommittedEntries, then
// send Messages. Everything in it may be kept but must not be modified.
type Ready struct {
	// SoftState is nil when unchanged since the last Ready.
	*SoftState
	// State is the HardState to persist; empty when unchanged.
	State raftpb.HardState
	// Entries are to be persisted BEFORE Messages are sent. They replace
	// any persisted entries at the same or higher index.
	Entries []raftpb.Entry
	// Snapshot, when not empty, replaces the whole persisted log: persist
	// it, drop every persisted entry, restore the state machine from it.
	Snapshot raftpb.Snapshot
	// CommittedEntries are to be applied in order. They end at the first
	// EntryConfig entry: a Ready hands out at most one, as its last.
	CommittedEntries []raftpb.Entry
	// Messages are to be sent AFTER Snapshot, Entries and State are
	// persisted: the node counts on it (a leader counts its own entries
	// as persisted as soon as they are handed out). SplitMessages tells
	// which of them may leave before.
	Messages []raftpb.Message
	// ReadStates are the reads requested with ReadIndex that are now safe:
	// serve each once the entries up to its Index are applied.
	ReadStates []ReadState

	// keepsTermAndVote: the term and vote are those handed out in an
	// earlier Ready, which the loop persisted before taking this one.
	keepsTermAndVote bool
}

// SplitMessages splits Messages, keeping their order within each part,
// into those that may be sent before the Ready is persisted and those that
// must wait until it is. The early ones are a leader's appends,
// heartbeats, snapshots and read-index answers, when the Ready changes
// neither its term nor its vote: the leader then writes its log while its
// followers write theirs (Raft thesis, section 10.2.1). This is safe because
// none of them promises anything about this Ready's own writes, and what
// the leader counts its unpersisted entries toward (commit, read indexes)
// leaves the node only in a later Ready, which the loop takes once this one
// is persisted. Sending all of Messages after persisting is correct too.
func (rd Ready) SplitMessages() (early, afterPersist []raftpb.Message) {
	if !rd.keepsTermAndVote {
		return nil, rd.Messages
	}
	n := 0
	for i := range rd.Messages {
		if sendableEarly(rd.Messages[i].Type) {
			n++
		}
	}
	switch n {
	case 0:
		return nil, rd.Messages
	case len(rd.Messages):
		return rd.Messages, nil
	}
	early = make([]raftpb.Message, 0, n)
	afterPersist = make([]raftpb.Message, 0, len(rd.Messages)-n)
	for _, m := range rd.Messages {
		if sendableEarly(m.Type) {
			early = append(early, m)
		} else {
			afterPersist = append(afterPersist, m)
		}
	}
	return early, afterPersist
}

// sendableEarly reports whether a message of type t (only a leader sends
// them) may leave before the Ready carrying it is persisted, in a term
// already persisted: it acknowledges no write of that Ready.
func sendableEarly(t raftpb.MessageType) bool {
	switch t {
	case raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgSnap, raftpb.MsgReadIndexResp:
		return true
	}
	return false
}

func (rd Ready) containsUpdates() bool {
	return rd.SoftState != nil || !IsEmptyHardState(rd.State) || len(rd.Entries) > 0 ||
		!IsEmptySnap(rd.Snapshot) || len(rd.CommittedEntries) > 0 || len(rd.Messages) > 0 ||
		len(rd.ReadStates) > 0
}

// IsEmptyHardState reports whether st is the zero HardState (unchanged).
func IsEmptyHardState(st raftpb.HardState) bool { return st == raftpb.HardState{} }

// IsEmptySnap reports whether snap carries no snapshot.
func IsEmptySnap(snap raftpb.Snapshot) bool { return snap.Index == 0 }

// RawNode is the synchronous, single-threaded form of a node, for
// applications that run their own loop and for deterministic tests: call
// Tick, Step and Propose; when HasReady, take Ready, persist, apply and
// send it, and call Advance before the next Ready. Node is built on it.
// A RawNode is not safe for concurrent use.
type RawNode struct {
	raft *raft
	// storage is where the persisted log is read from: mem, the node's
	// own, or the application's (WithStorage), with mem nil.
	storage Storage
	mem     *MemoryStorage

	prevSoft SoftState
	prevHard raftpb.HardState
	// offered is the Ready handed out and not yet advanced.
	offered      Ready
	offeredValid bool
}

// NewRawNode starts a node of a new cluster, like StartNode.
func NewRawNode(id int64, peers []int64, election, heartbeat int, opts ...Option) *RawNode {
	c := newConfig(id, peers, election, heartbeat, opts)
	if c.appliedIndex != 0 {
		panic("raft: StartNode: the Applied option is for RestartNode: a new node has applied nothing")
	}
	if s := c.storage; s != nil && (s.LastIndex() != 0 || !IsEmptySnap(s.Snapshot())) {
		panic(fmt.Sprintf("raft: StartNode: the storage given with WithStorage holds a log (up to %d): a new node starts from an empty one; restart a node with RestartNode", s.LastIndex()))
	}
	return newRawNode(c, NewMemoryStorage(), raftpb.HardState{}, c.initialMembership())
}

// RestartRawNode restarts a node from what it persisted, like RestartNode.
func RestartRawNode(id int64, peers []int64, election, heartbeat int,
	snapshot *raftpb.Snapshot, st raftpb.HardState, ents []raftpb.Entry, opts ...Option) *RawNode {
	c := newConfig(id, peers, election, heartbeat, opts)
	var snap raftpb.Snapshot
	if snapshot != nil {
		snap = *snapshot
	}
	base := c.initialMembership()
	switch {
	case c.appliedIndex > snap.Index:
		// peers and Learners are the membership at the applied index, and
		// it is exact: the joining rules end there too.
		if c.appliedIndex >= c.joinIndex {
			c.joinIndex = 0
		}
	case !IsEmptySnap(snap):
		base = snapshotMembership(c, snap)
		// A snapshot ends the joining rules: its membership is exact.
		c.joinIndex = 0
	}
	var start raftpb.HardState
	mem := NewMemoryStorage()
	if s := c.storage; s != nil {
		if len(ents) > 0 {
			panic("raft: RestartNode: with WithStorage the node reads its entries from the storage: pass nil entries")
		}
		if got := s.Snapshot(); got.Index != snap.Index || got.Term != snap.Term {
			panic(fmt.Sprintf("raft: RestartNode: the snapshot given (%d/%d) is not the storage's (%d/%d)", snap.Term, snap.Index, got.Term, got.Index))
		}
		last := s.LastIndex()
		lastTerm, err := s.Term(last)
		if err != nil {
			panic(fmt.Sprintf("raft: storage invariant broken: Term(%d) of the last index: %v", last, err))
		}
		start = checkRestartState(snap, st, last, lastTerm)
	} else {
		checkContiguous(snap, ents)
		last, lastTerm := snap.Index, snap.Term
		if n := len(ents); n > 0 {
			last, lastTerm = ents[n-1].Index, ents[n-1].Term
		}
		start = checkRestartState(snap, st, last, lastTerm)
		if !IsEmptySnap(snap) {
			mem.ApplySnapshot(snap)
		}
		mem.Append(ents)
	}
	if c.appliedIndex != 0 && (c.appliedIndex < snap.Index || c.appliedIndex > start.Commit) {
		panic(fmt.Sprintf("raft: RestartNode: Applied(%d) outside [snapshot %d, commit %d]: the state machine holds entries the persisted log does not commit", c.appliedIndex, snap.Index, start.Commit))
	}
	rn := newRawNode(c, mem, start, base)
	// What is on disk is st: the first Ready hands out any adjustment of it.
	rn.prevHard = st
	return rn
}

// snapshotMembership returns the snapshot's membership, and panics when
// the peers and learners given differ from it. The node's own id may be
// left out of peers, and is not a voter unless the snapshot says so (a
// node can hold a snapshot from before it was added).
func snapshotMembership(c config, snap raftpb.Snapshot) membership {
	m := newMembership(snap.Nodes, snap.Learners)
	voters := slices.Clone(c.peers)
	if m.isVoter(c.id) {
		voters = append(voters, c.id)
	}
	if !slices.Equal(sortedSet(voters), m.voters) {
		panic(fmt.Sprintf("raft: RestartNode: voters %v differ from the snapshot's %v: pass the snapshot's Nodes as peers", sortedSet(voters), m.voters))
	}
	learners := slices.Clone(c.learners)
	if m.isLearner(c.id) {
		learners = append(learners, c.id)
	}
	if !slices.Equal(sortedSet(learners), m.learners) {
		panic(fmt.Sprintf("raft: RestartNode: learners %v differ from the snapshot's %v: pass the snapshot's Learners through the Learners option", sortedSet(learners), m.learners))
	}
	return m
}

// checkContiguous panics unless ents follow the snapshot without a gap
// and with terms that never go down.
func checkContiguous(snap raftpb.Snapshot, ents []raftpb.Entry) {
	prevIndex, prevTerm := snap.Index, snap.Term
	for i := range ents {
		if ents[i].Index != prevIndex+1 {
			panic(fmt.Sprintf("raft: RestartNode: entry %d follows %d: the persisted entries must be contiguous and start right after the snapshot (%d); was an entry lost or a stale one kept?", ents[i].Index, prevIndex, snap.Index))
		}
		if ents[i].Term < prevTerm {
			panic(fmt.Sprintf("raft: RestartNode: entry %d has term %d, below the term %d before it: the persisted log is corrupt", ents[i].Index, ents[i].Term, prevTerm))
		}
		prevIndex, prevTerm = ents[i].Index, ents[i].Term
	}
}

// checkRestartState panics on inconsistent persisted state and returns the
// HardState to start from: a commit below the snapshot counts as the
// snapshot index, a term below the last persisted entry's (or the
// snapshot's) as that term with no vote. last and lastTerm are the index
// and term of the last persisted entry (or the snapshot's).
func checkRestartState(snap raftpb.Snapshot, st raftpb.HardState, last, lastTerm int64) raftpb.HardState {
	if st.Commit > last {
		panic(fmt.Sprintf("raft: RestartNode: commit %d is beyond the last persisted entry %d: the HardState reached the disk before the entries it commits", st.Commit, last))
	}
	// A crash can persist a Ready's snapshot or entries without its
	// HardState; nothing of that Ready left the node, so it neither voted
	// nor acted in the newer term, and starts there with no vote.
	if st.Term < lastTerm {
		st.Term, st.Vote = lastTerm, None
	}
	st.Commit = max(st.Commit, snap.Index)
	return st
}

// newRawNode builds a node on the application's storage (WithStorage), or
// on mem, its own, which it fills itself.
func newRawNode(c config, mem *MemoryStorage, st raftpb.HardState, base membership) *RawNode {
	var storage Storage = mem
	if c.storage != nil {
		storage, mem = c.storage, nil
	}
	r := newRaft(c, storage, st, base)
	return &RawNode{raft: r, storage: storage, mem: mem, prevSoft: r.softState(), prevHard: st}
}

// Tick advances the node's clock by one tick.
func (rn *RawNode) Tick() { rn.raft.tick() }

// Campaign starts an election at once (after a pre-vote round when pre-vote
// is on); it does nothing on a leader, and returns an error wrapping
// ErrCannotCampaign when the node may not campaign.
func (rn *RawNode) Campaign() error {
	return rn.raft.Step(raftpb.Message{Type: raftpb.MsgHup})
}

// Propose proposes data to be appended to the log.
func (rn *RawNode) Propose(data []byte) error {
	return rn.propose(raftpb.Entry{Type: raftpb.EntryNormal, Data: data})
}

// ProposeConfig proposes a config entry; data is the application's own
// encoding of the change.
func (rn *RawNode) ProposeConfig(data []byte) error {
	return rn.propose(raftpb.Entry{Type: raftpb.EntryConfig, Data: data})
}

func (rn *RawNode) propose(e raftpb.Entry) error {
	return rn.raft.Step(raftpb.Message{Type: raftpb.MsgProp, From: rn.raft.id, Entries: []raftpb.Entry{e}})
}

// Step feeds a message from the network into the node. A message that
// cannot be sane is refused with an error wrapping ErrInvalidMessage and
// changes nothing. The message must not be modified after the call.
func (rn *RawNode) Step(m raftpb.Message) error {
	if err := validateMessage(m, rn.raft.id); err != nil {
		return err
	}
	// Only a local proposal can fail in the core; a forwarded one that
	// cannot be carried is dropped, as a lost message would be.
	_ = rn.raft.Step(m)
	return nil
}

// ReportUnreachable tells the leader that the last message to id could
// not be delivered.
func (rn *RawNode) ReportUnreachable(id int64) {
	_ = rn.raft.Step(raftpb.Message{Type: raftpb.MsgUnreachable, From: id})
}

// SnapshotStatus is how sending a snapshot went.
type SnapshotStatus bool

const (
	SnapshotFinish  SnapshotStatus = true
	SnapshotFailure SnapshotStatus = false
)

// ReportSnapshot tells the leader how sending a snapshot to id went; after
// a failure it probes the follower again later.
func (rn *RawNode) ReportSnapshot(id int64, status SnapshotStatus) {
	_ = rn.raft.Step(raftpb.Message{Type: raftpb.MsgSnapStatus, From: id, Reject: !bool(status)})
}

// HasReady reports whether a Ready with something in it is waiting.
func (rn *RawNode) HasReady() bool { return rn.readyWithoutAccept().containsUpdates() }

// Ready returns what the application must persist, apply and send, and
// marks it handed out. Call Advance once it is done, before the next Ready.
func (rn *RawNode) Ready() Ready {
	rd := rn.readyWithoutAccept()
	rn.acceptReady(rd)
	return rd
}

// readyWithoutAccept assembles a Ready from what changed since the last
// one handed out, without changing any state.
func (rn *RawNode) readyWithoutAccept() Ready {
	r := rn.raft
	r.flushAppends()
	r.flushReadRound()
	rd := Ready{
		Entries:          r.log.unofferedEntries(),
		CommittedEntries: r.log.nextCommitted(),
		Messages:         r.msgs[:len(r.msgs):len(r.msgs)],
		ReadStates:       r.readStates[:len(r.readStates):len(r.readStates)],
	}
	if len(rd.Messages) == 0 {
		rd.Messages = nil
	}
	if len(rd.ReadStates) == 0 {
		rd.ReadStates = nil
	}
	if soft := r.softState(); soft != rn.prevSoft {
		changed := soft // allocated only when it changed
		rd.SoftState = &changed
	}
	hs := r.hardState()
	if hs != rn.prevHard {
		rd.State = hs
	}
	rd.keepsTermAndVote = hs.Term == rn.prevHard.Term && hs.Vote == rn.prevHard.Vote
	if u := &r.log.unstable; u.snapshot != nil && !u.snapOffered {
		rd.Snapshot = *u.snapshot
	}
	return rd
}

// acceptReady records that rd was handed out.
func (rn *RawNode) acceptReady(rd Ready) {
	r := rn.raft
	if rd.SoftState != nil {
		rn.prevSoft = *rd.SoftState
	}
	if !IsEmptyHardState(rd.State) {
		rn.prevHard = rd.State
	}
	if !IsEmptySnap(rd.Snapshot) {
		r.log.unstable.snapOffered = true
	}
	if n := len(rd.Entries); n > 0 {
		r.log.unstable.offeredUpTo = rd.Entries[n-1].Index
	}
	if n := len(rd.CommittedEntries); n > 0 {
		last := rd.CommittedEntries[n-1]
		r.log.applying = last.Index
		if last.Type == raftpb.EntryConfig {
			r.awaitingConf = last.Index
		}
		if r.state == StateLeader {
			r.releaseUncommitted(rd.CommittedEntries)
		}
	}
	// What was queued after rd was assembled stays for the next Ready.
	r.msgs = dropHandedOut(r.msgs, len(rd.Messages))
	r.readRoundHandedOut()
	r.readStates = dropHandedOut(r.readStates, len(rd.ReadStates))
	rn.offered, rn.offeredValid = rd, true
	if n := len(rd.Entries); n > 0 {
		r.selfAcknowledge(rd.Entries[n-1].Index)
	}
}

// Advance acknowledges the last Ready: it is persisted and its committed
// entries are applied.
func (rn *RawNode) Advance() {
	if !rn.offeredValid {
		return
	}
	rd := rn.offered
	rn.offered, rn.offeredValid = Ready{}, false
	rn.persist(rd)
	r := rn.raft
	if !IsEmptySnap(rd.Snapshot) {
		r.log.applied = max(r.log.applied, rd.Snapshot.Index)
	}
	if n := len(rd.CommittedEntries); n > 0 {
		last := rd.CommittedEntries[n-1]
		r.log.applied = last.Index
		if last.Type == raftpb.EntryConfig {
			r.settleConfig(last.Index)
		}
	}
}

// persist records that rd is persisted: into the node's own storage, or,
// with WithStorage, by the application already.
func (rn *RawNode) persist(rd Ready) {
	u := &rn.raft.log.unstable
	if s := rd.Snapshot; !IsEmptySnap(s) {
		if rn.mem != nil {
			rn.mem.ApplySnapshot(s)
		}
		u.snapshotStable(s.Index)
	}
	if n := len(rd.Entries); n > 0 {
		if rn.mem != nil {
			rn.mem.Append(rd.Entries)
		}
		u.stableTo(rd.Entries[n-1].Index, rd.Entries[n-1].Term)
	}
}

// persistOffered records that the Ready being processed is persisted, which
// the documented loop guarantees before the application applies it.
func (rn *RawNode) persistOffered() {
	if rn.offeredValid {
		rn.persist(rn.offered)
		rn.offered.Snapshot, rn.offered.Entries = raftpb.Snapshot{}, nil
	}
}

// AddNode adds id as a voter, for the config entry being applied. It panics
// when no config entry is waiting to be applied.
func (rn *RawNode) AddNode(id int64) { rn.mustApplyMembership(addVoter, id) }

// AddLearner adds id as a learner, for the config entry being applied; a
// member is left as it is. It panics when no config entry is waiting to
// be applied.
func (rn *RawNode) AddLearner(id int64) { rn.mustApplyMembership(addLearner, id) }

// PromoteLearner makes learner id a voter, for the config entry being
// applied; anything but a learner is left as it is. It panics when no
// config entry is waiting to be applied.
func (rn *RawNode) PromoteLearner(id int64) { rn.mustApplyMembership(promoteLearner, id) }

// RemoveNode removes id, voter or learner, for the config entry being
// applied. It panics when no config entry is waiting to be applied.
func (rn *RawNode) RemoveNode(id int64) { rn.mustApplyMembership(removeNode, id) }

func (rn *RawNode) mustApplyMembership(change membershipChange, id int64) {
	if err := rn.raft.applyMembershipChange(change, id); err != nil {
		panic(err.Error())
	}
}

// ReadIndex requests a linearizable read, identified by rctx: once it is
// safe, a Ready carries a ReadState with rctx, to serve once the log is
// applied up to its Index. A read with the same rctx still in flight is
// refused with ErrReadInFlight; with no leader known the read is refused
// with an error wrapping ErrReadDropped. A read whose answer cannot come
// (a leader change, a lost message) is given up without a ReadState: the
// application times out and asks again.
func (rn *RawNode) ReadIndex(rctx []byte) error { return rn.raft.requestRead(rctx) }

// TransferLeadership asks the leader to hand leadership to node to:
// proposals are refused meanwhile, to is brought up to date and told to
// campaign at once. It returns an error wrapping ErrNotLeader on a
// follower, and one wrapping ErrTransferRefused for a learner or a
// non-member; a transfer that has not completed after an election timeout
// is abandoned.
func (rn *RawNode) TransferLeadership(to int64) error { return rn.raft.transferLeadership(to) }

// Compact discards the log up to index in favour of a snapshot of data;
// nodes are the voters at index. See API.md, Compaction.
func (rn *RawNode) Compact(index int64, nodes []int64, data []byte) error {
	r := rn.raft
	switch {
	case index > r.log.applying:
		return fmt.Errorf("raft: cannot compact to %d: beyond the last entry handed out for applying (%d)", index, r.log.applying)
	case index <= r.log.snapshotIndex():
		return fmt.Errorf("raft: cannot compact to %d: not above the last snapshot (%d)", index, r.log.snapshotIndex())
	case r.joinIndex > 0 && index < r.joinIndex:
		return fmt.Errorf("raft: cannot compact to %d: the node joined at %d and compacts only from there", index, r.joinIndex)
	}
	m, ok := r.members.at(index)
	if !ok {
		return fmt.Errorf("raft: cannot compact to %d: no membership recorded there", index)
	}
	given := slices.Clone(nodes)
	if m.isVoter(r.id) {
		given = append(given, r.id)
	}
	if !slices.Equal(sortedSet(given), m.voters) {
		return fmt.Errorf("raft: cannot compact to %d: nodes %v differ from the voters there, %v", index, sortedSet(nodes), m.voters)
	}
	if rn.mem != nil {
		rn.persistOffered()
	}
	term, err := r.log.term(index)
	if err != nil {
		return fmt.Errorf("raft: cannot compact to %d: %w", index, err)
	}
	snap := raftpb.Snapshot{
		Data: data, Nodes: slices.Clone(m.voters), Learners: slices.Clone(m.learners),
		Index: index, Term: term,
	}
	// With WithStorage the application persists into the storage itself,
	// which compacts too if it can.
	if rn.mem != nil {
		rn.mem.Compact(snap)
	} else if cs, ok := rn.storage.(CompactingStorage); ok {
		if err := cs.Compact(snap); err != nil {
			return fmt.Errorf("raft: cannot compact to %d: the storage refused the snapshot: %w", index, err)
		}
	}
	r.members = r.members.since(index)
	r.log.forgetConfigsBefore(index)
	return nil
}

// Status is a snapshot of a node's state, for monitoring.
type Status struct {
	ID int64
	raftpb.HardState
	SoftState
	Applied  int64
	Voters   []int64
	Learners []int64
	// Removed: this node applied its own removal. A removed leader keeps
	// leading until the remaining voters know its removal committed. (A
	// joining node that is not a member yet is not removed.)
	Removed bool
	// Progress is the leader's view of each member; nil on other nodes.
	Progress map[int64]Progress
}

// Status returns the node's current status.
func (rn *RawNode) Status() Status {
	r := rn.raft
	m := r.membership()
	s := Status{
		ID: r.id, HardState: r.hardState(), SoftState: r.softState(), Applied: r.log.applied,
		Voters: slices.Clone(m.voters), Learners: slices.Clone(m.learners), Removed: r.removed,
	}
	if r.state == StateLeader {
		s.Progress = make(map[int64]Progress, len(r.prs))
		for id, pr := range r.prs {
			p := *pr
			p.inflights = inflights{}
			s.Progress[id] = p
		}
	}
	return s
}
