package raft

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/raftly/raft/raftpb"
)

// Bounds on what the node's callers may queue before its goroutine takes it.
const (
	// maxQueuedMessages: Step waits while this many messages are queued.
	maxQueuedMessages = 4096
	// maxTakenProposals: proposals taken in one turn of the loop.
	maxTakenProposals = 1024
)

// inputs is what the node's callers hand its goroutine: messages,
// proposals and ticks. Callers append under a mutex and wake the goroutine,
// which takes everything queued in one turn, so inputs that arrive while it
// is busy cost one hand-off together rather than one each.
type inputs struct {
	wake chan struct{} // holds a token while something may be queued

	mu        sync.Mutex
	messages  []raftpb.Message
	proposals []*proposal
	ticks     int
	roomFreed chan struct{} // closed when messages are taken; nil when no Step waits
	stopped   bool

	free sync.Pool // of *proposal whose outcome was received
}

// inputBatch is what the goroutine took in one turn. Its arrays are reused
// by the next take (they never leave the node).
type inputBatch struct {
	messages  []raftpb.Message
	proposals []*proposal
	ticks     int
}

func (in *inputs) signal() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// tick counts a tick. Ticks are never dropped: a node's clock must not
// run slow (a leader's lease counts on it).
func (in *inputs) tick() {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return
	}
	in.ticks++
	in.mu.Unlock()
	in.signal()
}

// takeTicks returns the ticks not yet taken.
func (in *inputs) takeTicks() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	ticks := in.ticks
	in.ticks = 0
	return ticks
}

// deliver queues m, waiting while the queue is full.
func (in *inputs) deliver(ctx context.Context, m raftpb.Message) error {
	in.mu.Lock()
	for len(in.messages) >= maxQueuedMessages && !in.stopped {
		if in.roomFreed == nil {
			in.roomFreed = make(chan struct{})
		}
		room := in.roomFreed
		in.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		in.mu.Lock()
	}
	if in.stopped {
		in.mu.Unlock()
		return ErrStopped
	}
	in.messages = append(in.messages, m)
	in.mu.Unlock()
	in.signal()
	return nil
}

func (in *inputs) propose(p *proposal) error {
	in.mu.Lock()
	if in.stopped {
		in.mu.Unlock()
		return ErrStopped
	}
	in.proposals = append(in.proposals, p)
	in.mu.Unlock()
	in.signal()
	return nil
}

// take moves what is queued into b, whose previous contents are spent, and
// returns it. Proposals stay queued unless withProposals (those withdrawn
// meanwhile are dropped); held reports whether any stayed, so that the
// caller wakes itself once it may take them.
func (in *inputs) take(b inputBatch, withProposals bool) (_ inputBatch, held bool) {
	in.mu.Lock()
	b.messages, in.messages = in.messages, b.messages[:0]
	b.ticks, in.ticks = in.ticks, 0
	if room := in.roomFreed; room != nil {
		close(room)
		in.roomFreed = nil
	}
	if withProposals {
		n := min(len(in.proposals), maxTakenProposals)
		for _, p := range in.proposals[:n] {
			if p.state.CompareAndSwap(proposalQueued, proposalTaken) {
				b.proposals = append(b.proposals, p)
			}
		}
		rest := copy(in.proposals, in.proposals[n:])
		clear(in.proposals[rest:])
		in.proposals = in.proposals[:rest]
	} else {
		kept := slices.DeleteFunc(in.proposals, func(p *proposal) bool { return p.state.Load() == proposalWithdrawn })
		clear(in.proposals[len(kept):])
		in.proposals = kept
	}
	held = len(in.proposals) > 0
	in.mu.Unlock()
	return b, held
}

// stop refuses every later input and releases any Step waiting for room.
func (in *inputs) stop() {
	in.mu.Lock()
	in.stopped = true
	if in.roomFreed != nil {
		close(in.roomFreed)
		in.roomFreed = nil
	}
	in.mu.Unlock()
}

func (b *inputBatch) clear() {
	clear(b.messages)
	b.messages = b.messages[:0]
	clear(b.proposals)
	b.proposals = b.proposals[:0]
	b.ticks = 0
}

// A proposal waits in the queue until the goroutine takes it, or until its
// proposer withdraws it (its ctx ended); exactly one of the two happens.
type proposal struct {
	entry  raftpb.Entry
	state  atomic.Int32
	result chan error // receives the outcome once taken; capacity 1
}

const (
	proposalQueued int32 = iota
	proposalTaken
	proposalWithdrawn
)

// newProposal returns a proposal of e, recycled when one is free, so that
// proposing allocates nothing in the steady state. (Each node keeps its
// own: a proposal's channel belongs with the node's goroutines.)
func (in *inputs) newProposal(e raftpb.Entry) *proposal {
	p, _ := in.free.Get().(*proposal)
	if p == nil {
		p = &proposal{result: make(chan error, 1)}
	}
	p.entry = e
	p.state.Store(proposalQueued)
	return p
}

// release recycles p once its outcome has been received.
func (in *inputs) release(p *proposal) {
	p.entry = raftpb.Entry{}
	in.free.Put(p)
}

// withdraw takes back a proposal not yet taken; false if it was taken.
func (p *proposal) withdraw() bool {
	return p.state.CompareAndSwap(proposalQueued, proposalWithdrawn)
}
