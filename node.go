package raft

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/raftly/raft/raftpb"
)

// Node is a Raft node driven by its own goroutine. Its methods are safe for
// concurrent use. The application runs the loop: on each Ready it persists,
// applies and sends, in that order (see the package documentation).
type Node interface {
	// Tick advances the node's clock by one tick. It never waits: ticks
	// the node's goroutine has not yet taken are counted, never dropped.
	Tick()
	// Campaign starts an election at once; it does nothing on a leader
	// and returns an error wrapping ErrCannotCampaign when the node may
	// not campaign.
	Campaign(ctx context.Context) error
	// Propose proposes data for the log. It returns nil once the entry is
	// in the leader's log (on the leader) or handed to the leader: not
	// once it is committed. While no leader is known it waits for one or
	// for ctx. data must not be modified after the call.
	Propose(ctx context.Context, data []byte) error
	// Configure proposes a config entry (data in the application's own
	// encoding); it is refused with ErrProposalDropped while another
	// change is pending.
	Configure(ctx context.Context, data []byte) error
	// Step feeds in a message from the network. A message that cannot be
	// sane is refused with an error wrapping ErrInvalidMessage. Step
	// queues the message and returns; it waits only while thousands of
	// messages are queued, until there is room or ctx ends.
	Step(ctx context.Context, m raftpb.Message) error
	// Ready returns the channel of Readys; the same channel on every call.
	// Receiving the next Ready acknowledges the previous one.
	Ready() <-chan Ready
	// AddNode adds id as a voter, for the config entry being applied; call
	// it from the loop while applying that entry.
	AddNode(id int64)
	// RemoveNode removes id, for the config entry being applied.
	RemoveNode(id int64)
	// Compact discards the log up to index in favour of a snapshot of data;
	// nodes are the voters at index.
	Compact(index int64, nodes []int64, data []byte) error
	// Stop ends the node's goroutine; it is idempotent. Afterwards every
	// call returns ErrStopped, or returns at once.
	Stop()

	// ReadIndex requests a linearizable read identified by rctx: once it is
	// safe, a Ready's ReadStates carries rctx with the index to serve it
	// at (see RawNode.ReadIndex). It returns once the request is made.
	ReadIndex(ctx context.Context, rctx []byte) error
	// TransferLeadership hands leadership to node to and returns nil once
	// this node knows to as leader; an error when the transfer is refused
	// or abandoned, or ctx ends (see RawNode.TransferLeadership). It waits
	// for Readys to be taken: do not call it from the loop.
	TransferLeadership(ctx context.Context, to int64) error
	// AddLearner adds id as a learner, for the config entry being applied.
	AddLearner(id int64)
	// PromoteLearner makes learner id a voter, for the config entry being
	// applied.
	PromoteLearner(id int64)

	// ReportUnreachable tells the leader that a message to id was lost.
	ReportUnreachable(id int64)
	// ReportSnapshot tells the leader how sending a snapshot to id went.
	ReportSnapshot(id int64, status SnapshotStatus)
	// Status returns the node's current status (zero after Stop).
	Status() Status
}

// StartNode starts a node of a new cluster whose voters are ({id} ∪ peers)
// minus the Learners option's; every member starts with the same peers and
// an empty log. election and heartbeat are counted in calls to Tick.
func StartNode(id int64, peers []int64, election, heartbeat int, opts ...Option) Node {
	return startNode(NewRawNode(id, peers, election, heartbeat, opts...))
}

// RestartNode restarts a node from exactly what it persisted: the latest
// snapshot (nil if none), the latest non-empty HardState and the entries
// after the snapshot. peers is the membership at the start of that log.
// Committed entries after the snapshot are handed out again.
func RestartNode(id int64, peers []int64, election, heartbeat int,
	snapshot *raftpb.Snapshot, st raftpb.HardState, ents []raftpb.Entry, opts ...Option) Node {
	return startNode(RestartRawNode(id, peers, election, heartbeat, snapshot, st, ents, opts...))
}

type node struct {
	id     int64
	inputs inputs
	callc  chan func(*RawNode)
	readyc chan Ready
	stopc  chan struct{}
	done   chan struct{}
	stop   sync.Once
	// transfers wait for their outcome; only the goroutine touches them.
	transfers []transferWait
	// proposed is the goroutine's array for the entries of one proposal
	// message, reused: the log copies what it keeps.
	proposed []raftpb.Entry
}

// transferWait is a TransferLeadership call waiting for its outcome.
type transferWait struct {
	to   int64
	done chan error // capacity 1
}

func startNode(rn *RawNode) *node {
	n := &node{
		id:     rn.raft.id,
		callc:  make(chan func(*RawNode)),
		readyc: make(chan Ready),
		stopc:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	n.inputs.wake = make(chan struct{}, 1)
	go n.run(rn)
	return n
}

// run owns the RawNode. It takes the queued inputs together, offers a Ready
// when there is one, and takes the application's receiving it as the
// acknowledgement of the previous one.
func (n *node) run(rn *RawNode) {
	defer close(n.done)
	defer n.inputs.stop()
	var (
		rd            Ready
		haveReady     bool
		stale         = true // rd must be rebuilt before it is offered
		afterConfig   bool   // the last Ready handed out a config entry
		batch         inputBatch
		heldProposals bool // proposals wait in the queue for a leader
	)
	for {
		if stale {
			rd = rn.readyWithoutAccept()
			haveReady = afterConfig || rd.containsUpdates()
			stale = false
		}
		var readyc chan Ready
		if haveReady {
			readyc = n.readyc
		}
		select {
		case <-n.inputs.wake:
			// Proposals wait while no leader is known.
			var held bool
			batch, held = n.inputs.take(batch, rn.raft.lead != None)
			n.process(rn, &batch)
			heldProposals = held

		case f := <-n.callc:
			// Time that has passed counts first (a lease read must see it).
			for range n.inputs.takeTicks() {
				rn.Tick()
			}
			f(rn)
		case readyc <- rd:
			rn.Advance()
			rn.acceptReady(rd)
			afterConfig = len(rd.CommittedEntries) > 0 &&
				rd.CommittedEntries[len(rd.CommittedEntries)-1].Type == raftpb.EntryConfig
		case <-n.stopc:
			return
		}
		stale = true
		if len(n.transfers) > 0 {
			n.settleTransfers(rn.raft)
		}
		if heldProposals && rn.raft.lead != None {
			heldProposals = false
			n.inputs.signal()
		}
	}
}

// process steps a batch of inputs: the proposals first, while the leader
// they were taken for is still known (consecutive normal entries together
// in one proposal message); then the ticks, since time passed before the
// messages of the batch were taken (a tick counted after a leader's
// message would shorten the time this node keeps its promise to that
// leader); then the messages.
func (n *node) process(rn *RawNode, b *inputBatch) {
	props := b.proposals
	for len(props) > 0 {
		run := proposalRun(props, rn.raft.maxMsgBytes)
		n.propose(rn, props[:run])
		props = props[run:]
	}
	for range b.ticks {
		rn.Tick()
	}
	for i := range b.messages {
		_ = rn.raft.Step(b.messages[i])
	}
	b.clear()
}

// proposalRun returns how many of props go in one proposal message: a
// config entry alone, or consecutive normal entries whose encoded size
// stays within maxBytes (at least one), so that a follower forwards messages of
// a size the transport takes.
func proposalRun(props []*proposal, maxBytes int64) int {
	if props[0].entry.Type != raftpb.EntryNormal {
		return 1
	}
	run, size := 1, int64(props[0].entry.Size())
	for run < len(props) && props[run].entry.Type == raftpb.EntryNormal {
		if size += int64(props[run].entry.Size()); maxBytes > 0 && size > maxBytes {
			break
		}
		run++
	}
	return run
}

// propose steps one proposal message carrying the entries of props and
// tells each proposer the outcome. Proposals that fail together (too many
// uncommitted bytes, say) are tried one by one, so that those that fit
// still go in.
func (n *node) propose(rn *RawNode, props []*proposal) {
	n.proposed = n.proposed[:0]
	for _, p := range props {
		n.proposed = append(n.proposed, p.entry)
	}
	err := rn.raft.Step(raftpb.Message{Type: raftpb.MsgProp, From: n.id, Entries: n.proposed})
	clear(n.proposed) // drop the references to the proposals' data
	if err != nil && len(props) > 1 {
		for _, p := range props {
			n.propose(rn, []*proposal{p})
		}
		return
	}
	for _, p := range props {
		p.result <- err
	}
}

func (n *node) Tick() { n.inputs.tick() }

func (n *node) Propose(ctx context.Context, data []byte) error {
	return n.submit(ctx, raftpb.Entry{Type: raftpb.EntryNormal, Data: data})
}

func (n *node) Configure(ctx context.Context, data []byte) error {
	return n.submit(ctx, raftpb.Entry{Type: raftpb.EntryConfig, Data: data})
}

func (n *node) submit(ctx context.Context, e raftpb.Entry) error {
	p := n.inputs.newProposal(e)
	if err := n.inputs.propose(p); err != nil {
		return err
	}
	select {
	case err := <-p.result:
		n.inputs.release(p)
		return err
	case <-ctx.Done():
		if p.withdraw() {
			return ctx.Err()
		}
		// Already taken: its outcome is moments away, and it is the truth.
		select {
		case err := <-p.result:
			n.inputs.release(p)
			return err
		case <-n.done:
			return ErrStopped
		}
	case <-n.done:
		return ErrStopped
	}
}

func (n *node) Step(ctx context.Context, m raftpb.Message) error {
	if err := validateMessage(m, n.id); err != nil {
		return err
	}
	return n.inputs.deliver(ctx, m)
}

func (n *node) Ready() <-chan Ready { return n.readyc }

func (n *node) ReadIndex(ctx context.Context, rctx []byte) error {
	var err error
	if cerr := n.call(ctx, func(rn *RawNode) { err = rn.ReadIndex(rctx) }); cerr != nil {
		return cerr
	}
	return err
}

func (n *node) TransferLeadership(ctx context.Context, to int64) error {
	w := transferWait{to: to, done: make(chan error, 1)}
	var err error
	if cerr := n.call(ctx, func(rn *RawNode) {
		if err = rn.TransferLeadership(to); err == nil {
			n.transfers = append(n.transfers, w)
			n.settleTransfers(rn.raft)
		}
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return err
	}
	select {
	case err := <-w.done:
		return err
	case <-ctx.Done():
		_ = n.call(context.Background(), func(*RawNode) {
			n.transfers = slices.DeleteFunc(n.transfers, func(o transferWait) bool { return o.done == w.done })
		})
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

// settleTransfers tells the waiting transfers whose outcome is known: to
// leads, or the transfer was abandoned (this node still leads without
// transferring to to, or another node leads).
func (n *node) settleTransfers(r *raft) {
	n.transfers = slices.DeleteFunc(n.transfers, func(w transferWait) bool {
		switch {
		case r.lead == w.to:
			w.done <- nil
		case r.state == StateLeader && r.leadTransferee != w.to,
			r.state != StateLeader && r.lead != None:
			w.done <- fmt.Errorf("%w: node %x leads, not %x", ErrTransferAbandoned, r.lead, w.to)
		default:
			return false
		}
		return true
	})
}

// call runs f on the node's goroutine and waits for it; ErrStopped after
// Stop.
func (n *node) call(ctx context.Context, f func(*RawNode)) error {
	finished := make(chan struct{})
	wrapped := func(rn *RawNode) { f(rn); close(finished) }
	select {
	case n.callc <- wrapped:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
	<-finished // the goroutine runs f before it looks at anything else
	return nil
}

func (n *node) Campaign(ctx context.Context) error {
	var err error
	if cerr := n.call(ctx, func(rn *RawNode) { err = rn.Campaign() }); cerr != nil {
		return cerr
	}
	return err
}

func (n *node) AddNode(id int64)        { n.applyMembership(addVoter, id) }
func (n *node) AddLearner(id int64)     { n.applyMembership(addLearner, id) }
func (n *node) PromoteLearner(id int64) { n.applyMembership(promoteLearner, id) }
func (n *node) RemoveNode(id int64)     { n.applyMembership(removeNode, id) }

func (n *node) applyMembership(change membershipChange, id int64) {
	var err error
	if n.call(context.Background(), func(rn *RawNode) { err = rn.raft.applyMembershipChange(change, id) }) != nil {
		return // stopped
	}
	if err != nil {
		panic(err.Error())
	}
}

func (n *node) Compact(index int64, nodes []int64, data []byte) error {
	var err error
	if cerr := n.call(context.Background(), func(rn *RawNode) { err = rn.Compact(index, nodes, data) }); cerr != nil {
		return cerr
	}
	return err
}

func (n *node) ReportUnreachable(id int64) {
	_ = n.call(context.Background(), func(rn *RawNode) { rn.ReportUnreachable(id) })
}

func (n *node) ReportSnapshot(id int64, status SnapshotStatus) {
	_ = n.call(context.Background(), func(rn *RawNode) { rn.ReportSnapshot(id, status) })
}

func (n *node) Status() Status {
	var s Status
	_ = n.call(context.Background(), func(rn *RawNode) { s = rn.Status() })
	return s
}

func (n *node) Stop() {
	n.stop.Do(func() { close(n.stopc) })
	<-n.done
}
