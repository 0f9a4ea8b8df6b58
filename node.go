package raft

import (
	"context"
	"sync"

	"github.com/raftly/raft/raftpb"
)

// Node is a Raft node driven by its own goroutine. Its methods are safe for
// concurrent use. The application runs the loop: on each Ready it persists,
// applies and sends, in that order (see the package documentation).
type Node interface {
	// Tick advances the node's clock by one tick.
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
	// sane is refused with an error wrapping ErrInvalidMessage.
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

type proposal struct {
	entry  raftpb.Entry
	result chan error
}

type node struct {
	id     int64
	propc  chan proposal
	recvc  chan raftpb.Message
	tickc  chan struct{}
	callc  chan func(*RawNode)
	readyc chan Ready
	stopc  chan struct{}
	done   chan struct{}
	stop   sync.Once
}

// drainLimit bounds how many queued inputs of one kind are taken together.
const drainLimit = 512

func startNode(rn *RawNode) *node {
	n := &node{
		id:     rn.raft.id,
		propc:  make(chan proposal),
		recvc:  make(chan raftpb.Message),
		tickc:  make(chan struct{}, 128),
		callc:  make(chan func(*RawNode)),
		readyc: make(chan Ready),
		stopc:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	go n.run(rn)
	return n
}

// run owns the RawNode. It offers a Ready when there is one, and takes the
// application's receiving it as the acknowledgement of the previous one.
func (n *node) run(rn *RawNode) {
	defer close(n.done)
	var (
		rd          Ready
		haveReady   bool
		stale       = true // rd must be rebuilt before it is offered
		afterConfig bool   // the last Ready handed out a config entry
	)
	for {
		if stale {
			haveReady = rn.HasReady() || afterConfig
			if haveReady {
				rd = rn.readyWithoutAccept()
			}
			stale = false
		}
		var readyc chan Ready
		if haveReady {
			readyc = n.readyc
		}
		// Proposals wait while no leader is known.
		var propc chan proposal
		if rn.raft.lead != None {
			propc = n.propc
		}
		select {
		case p := <-propc:
			n.propose(rn, p)
		drainProposals:
			for i := 0; i < drainLimit; i++ {
				select {
				case p := <-propc:
					n.propose(rn, p)
				default:
					break drainProposals
				}
			}
		case m := <-n.recvc:
			_ = rn.raft.Step(m)
		drainMessages:
			for i := 0; i < drainLimit; i++ {
				select {
				case m := <-n.recvc:
					_ = rn.raft.Step(m)
				default:
					break drainMessages
				}
			}
		case <-n.tickc:
			rn.Tick()
		case f := <-n.callc:
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
	}
}

func (n *node) propose(rn *RawNode, p proposal) {
	p.result <- rn.raft.Step(raftpb.Message{Type: raftpb.MsgProp, From: n.id, Entries: []raftpb.Entry{p.entry}})
}

func (n *node) Tick() {
	select {
	case n.tickc <- struct{}{}:
	case <-n.done:
	}
}

func (n *node) Propose(ctx context.Context, data []byte) error {
	return n.submit(ctx, raftpb.Entry{Type: raftpb.EntryNormal, Data: data})
}

func (n *node) Configure(ctx context.Context, data []byte) error {
	return n.submit(ctx, raftpb.Entry{Type: raftpb.EntryConfig, Data: data})
}

func (n *node) submit(ctx context.Context, e raftpb.Entry) error {
	p := proposal{entry: e, result: make(chan error, 1)}
	select {
	case n.propc <- p:
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
	select {
	case err := <-p.result:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

func (n *node) Step(ctx context.Context, m raftpb.Message) error {
	if err := validateMessage(m, n.id); err != nil {
		return err
	}
	select {
	case n.recvc <- m:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.done:
		return ErrStopped
	}
}

func (n *node) Ready() <-chan Ready { return n.readyc }

// call runs f on the node's goroutine and waits for it; false after Stop.
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

func (n *node) AddNode(id int64)    { n.applyMembership(true, id) }
func (n *node) RemoveNode(id int64) { n.applyMembership(false, id) }

func (n *node) applyMembership(add bool, id int64) {
	var err error
	if n.call(context.Background(), func(rn *RawNode) { err = rn.raft.applyMembershipChange(add, id) }) != nil {
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
