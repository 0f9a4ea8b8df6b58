package raft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/raftly/raft/raftpb"
)

// ReadState is a linearizable read made safe: once the application has
// applied the log up to Index, it may serve the read that it requested
// with RequestCtx.
type ReadState struct {
	Index      int64
	RequestCtx []byte
}

var (
	// ErrReadInFlight: a read with the same request context is still in
	// flight on this node.
	ErrReadInFlight = errors.New("raft: a read with this request context is already in flight")
	// ErrReadDropped wraps the reason a read request was refused.
	ErrReadDropped = errors.New("raft: read dropped")
)

// How a leader confirms that it still leads before it answers reads.
type readMode uint8

const (
	// readConfirmed: one heartbeat round acknowledged by a quorum, started
	// after the read arrived, confirms it (the default).
	readConfirmed readMode = iota
	// readLease: the leader answers at once while it heard from a quorum
	// recently enough that no other leader can have been elected since,
	// assuming clocks that drift boundedly (LeaseReads).
	readLease
)

// readRequest is a read waiting at the leader.
type readRequest struct {
	from  int64 // the node that asked (this one, or a follower)
	rctx  []byte
	index int64 // the commit index when the read arrived
	round uint64
}

// readRounds is the leader's side of reads confirmed by heartbeats. A
// round confirms only reads that arrived before its heartbeats went out:
// a round starts when the Ready is assembled, with every read that arrived
// since the last one started, and reads that arrive while a round is in
// flight wait for the next. Many reads share one round.
type readRounds struct {
	// waiting are the reads not yet answered, in arrival order (so in
	// round order).
	waiting []readRequest
	// sent is the last round started (its heartbeats queued); handedOut
	// the last whose heartbeats were handed out in a Ready; acked the
	// acknowledgements of the round in flight.
	sent, handedOut uint64
	acked           map[int64]bool
	// beforeCommit are reads that arrived before the leader committed an
	// entry of its term; they are taken up once it has.
	beforeCommit []readRequest
}

// readAttempt is a read this node asked for and waits for: its request
// context, the attempt's number and its age in ticks.
type readAttempt struct {
	rctx   []byte
	number uint64
	age    int
}

// requestRead asks for a read on this node; see RawNode.ReadIndex. The
// request carries the request context and the attempt's number, so that
// a late answer to an earlier attempt with the same context (given up
// meanwhile) is not taken for this one's: its index may be older than a
// write that completed since.
func (r *raft) requestRead(rctx []byte) error {
	key := string(rctx)
	if _, ok := r.readsInFlight[key]; ok {
		return ErrReadInFlight
	}
	if r.state != StateLeader && r.lead == None {
		return fmt.Errorf("%w: no leader known", ErrReadDropped)
	}
	r.readAttempts++
	r.readsInFlight[key] = &readAttempt{rctx: rctx, number: r.readAttempts}
	token := binary.BigEndian.AppendUint64(append(make([]byte, 0, len(rctx)+8), rctx...), r.readAttempts)
	if r.state == StateLeader {
		r.handleReadIndex(raftpb.Message{From: r.id, Context: token})
		return nil
	}
	r.send(raftpb.Message{To: r.lead, Type: raftpb.MsgReadIndex, Context: token})
	return nil
}

// handleReadIndex takes a read on the leader, from itself or forwarded.
func (r *raft) handleReadIndex(m raftpb.Message) {
	req := readRequest{from: m.From, rctx: m.Context}
	if r.log.termOrZero(r.log.committed) != r.term {
		// Its commit index may lag what earlier leaders committed.
		r.reads.beforeCommit = append(r.reads.beforeCommit, req)
		return
	}
	req.index = r.log.committed
	if r.soleVoter() || (r.readMode == readLease && r.leaseHeld()) {
		r.answerRead(req)
		return
	}
	// A read may join the round in flight while its heartbeats have not
	// been handed out yet: they leave after the read arrived.
	req.round = r.reads.sent
	if r.reads.sent == r.reads.handedOut {
		req.round++
	}
	r.reads.waiting = append(r.reads.waiting, req)
}

// readRoundHandedOut records that the heartbeats of the round in flight
// were handed out in a Ready. It holds because a round starts only while
// a Ready is assembled (readyWithoutAccept), never between assembling and
// accepting one.
func (r *raft) readRoundHandedOut() { r.reads.handedOut = r.reads.sent }

// soleVoter reports whether this node is the only voter: its own word is
// a quorum. (A leader that removed itself is not a voter at all.)
func (r *raft) soleVoter() bool {
	v := r.membership().voters
	return len(v) == 1 && v[0] == r.id
}

// flushReadRound starts a round for the reads waiting, unless one is in
// flight; it runs when a Ready is assembled, so that the reads that
// arrived together share the round.
func (r *raft) flushReadRound() {
	if r.state == StateLeader && len(r.reads.waiting) > 0 && !r.roundInFlight() {
		r.startReadRound()
	}
}

// roundInFlight reports whether the last round sent still waits for
// acknowledgements of reads in it.
func (r *raft) roundInFlight() bool {
	return len(r.reads.waiting) > 0 && r.reads.waiting[0].round <= r.reads.sent
}

func (r *raft) startReadRound() {
	r.reads.sent++
	r.reads.acked = map[int64]bool{r.id: true}
	r.bcastHeartbeat()
}

// heartbeatContext is what a heartbeat carries, echoed in its answer: the
// read round in flight (0: none) and the leader's tick when it was sent.
func heartbeatContext(round uint64, sentAt int64) []byte {
	ctx := binary.BigEndian.AppendUint64(make([]byte, 0, 16), round)
	return binary.BigEndian.AppendUint64(ctx, uint64(sentAt))
}

// heartbeatAcked records a follower's answer to a heartbeat carrying ctx:
// toward the read round in flight, and as the start of its lease.
func (r *raft) heartbeatAcked(pr *Progress, from int64, ctx []byte) {
	if len(ctx) != 16 {
		return
	}
	round, sentAt := binary.BigEndian.Uint64(ctx), int64(binary.BigEndian.Uint64(ctx[8:]))
	if sentAt <= r.ticks {
		pr.leaseFrom = max(pr.leaseFrom, sentAt)
	}
	if r.roundInFlight() && round == r.reads.sent {
		r.reads.acked[from] = true
		r.confirmReads()
	}
}

// confirmReads answers the reads of the round in flight once a quorum of
// voters acknowledged it.
func (r *raft) confirmReads() {
	if !r.roundInFlight() || !quorumActive(r.membership().voters, func(id int64) bool { return r.reads.acked[id] }) {
		return
	}
	k := 0
	for k < len(r.reads.waiting) && r.reads.waiting[k].round <= r.reads.sent {
		r.answerRead(r.reads.waiting[k])
		k++
	}
	r.reads.waiting = append(r.reads.waiting[:0:0], r.reads.waiting[k:]...)
}

// answerRead hands out a confirmed read: as a ReadState when this node
// asked for it, in a MsgReadIndexResp otherwise.
func (r *raft) answerRead(req readRequest) {
	if req.from == r.id {
		r.readDone(req.index, req.rctx)
		return
	}
	r.send(raftpb.Message{To: req.from, Type: raftpb.MsgReadIndexResp, Index: req.index, Context: req.rctx})
}

// readDone hands out the ReadState of the read attempt named by token,
// unless it was given up meanwhile.
func (r *raft) readDone(index int64, token []byte) {
	if len(token) < 8 {
		return
	}
	cut := len(token) - 8
	key := string(token[:cut])
	a := r.readsInFlight[key]
	if a == nil || a.number != binary.BigEndian.Uint64(token[cut:]) {
		return
	}
	delete(r.readsInFlight, key)
	r.readStates = append(r.readStates, ReadState{Index: index, RequestCtx: a.rctx})
}

// handleReadIndexResp takes the leader's answer to a read this follower
// forwarded.
func (r *raft) handleReadIndexResp(m raftpb.Message) {
	if m.From != r.lead {
		return
	}
	r.readDone(m.Index, m.Context)
}

// takeUpReadsBeforeCommit answers the reads that waited for the leader's
// first commit in its term, once it happened.
func (r *raft) takeUpReadsBeforeCommit() {
	if len(r.reads.beforeCommit) == 0 || r.log.termOrZero(r.log.committed) != r.term {
		return
	}
	reqs := r.reads.beforeCommit
	r.reads.beforeCommit = nil
	for _, req := range reqs {
		r.handleReadIndex(raftpb.Message{From: req.from, Context: req.rctx})
	}
}

// leaseHeld reports whether this leader may answer a read at once: a
// quorum of voters answered heartbeats it sent within the lease, an
// election timeout less a margin for clock drift. Each of them ignores vote
// requests for an election timeout after such a heartbeat (inLease), so no
// other leader can have been elected since. A leader that asked a
// follower to campaign (a transfer) holds no lease for the rest of its
// term.
func (r *raft) leaseHeld() bool {
	if r.leaseRevoked {
		return false
	}
	lease := int64(r.electionTimeout - max(1, r.electionTimeout/leaseDriftDivisor))
	return quorumActive(r.membership().voters, func(id int64) bool {
		if id == r.id {
			return true
		}
		pr := r.prs[id]
		return pr != nil && pr.leaseFrom > 0 && r.ticks-pr.leaseFrom < lease
	})
}

// leaseDriftDivisor: the lease is shorter than the election timeout by
// this fraction of it (at least one tick), for clocks that drift.
const leaseDriftDivisor = 10

// expireReads gives up reads this node asked for that have waited for
// two election timeouts (their request or answer was lost); the
// application, which times out on its own, may then ask again with the
// same request context.
func (r *raft) expireReads() {
	for key, a := range r.readsInFlight {
		if a.age++; a.age >= 2*r.electionTimeout {
			delete(r.readsInFlight, key)
		}
	}
}
