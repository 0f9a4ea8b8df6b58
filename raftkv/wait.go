package raftkv

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/raftly/raft"
)

// wakeApplied wakes the requests waiting for the state machine to apply
// an index up to applied.
func (s *Server) wakeApplied(applied int64) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	kept := s.appWait[:0]
	for _, w := range s.appWait {
		if w.index <= applied {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.appWait[len(kept):])
	s.appWait = kept
}

// answerRead hands a read index to the round that asked for it; an answer
// nobody waits for any more (the round gave up) is dropped.
func (s *Server) answerRead(rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	seq := binary.LittleEndian.Uint64(rs.RequestCtx)
	s.waitMu.Lock()
	ch := s.reads[seq]
	delete(s.reads, seq)
	s.waitMu.Unlock()
	if ch != nil {
		ch <- rs.Index
	}
}

// propose proposes c and waits until it is applied. errRefused means it
// was not written; errUnknownOutcome that it may have been.
func (s *Server) propose(ctx context.Context, c command) (applyResult, error) {
	c.id = requestID{session: s.session, seq: s.seq.Add(1)}
	ch := make(chan applyResult, 1)
	s.waitMu.Lock()
	s.writes[c.id.seq] = ch
	s.waitMu.Unlock()
	// apply forgets a waiter it answers; one that gives up forgets itself.
	forget := func() {
		s.waitMu.Lock()
		delete(s.writes, c.id.seq)
		s.waitMu.Unlock()
	}
	submit := s.node.Propose
	if c.isMembership() {
		submit = s.node.Configure
	}
	data := c.marshal()
	if err := submit(ctx, data); err != nil {
		forget()
		if errors.Is(err, raft.ErrStopped) {
			return applyResult{}, errStopped
		}
		// Dropped, or withdrawn when ctx ended while no leader was known:
		// not in any log.
		return applyResult{}, errRefused
	}
	// A membership change is proposed again, under the same id, until it
	// is applied: a leader drops one that reaches it before it has
	// committed an entry of its term, without telling the follower that
	// forwarded it. The state machine applies an id once.
	var again <-chan time.Time
	if c.isMembership() {
		ticker := time.NewTicker(retryTicks * s.cfg.Tick)
		defer ticker.Stop()
		again = ticker.C
	}
	for {
		select {
		case res := <-ch:
			return res, nil
		case <-again:
			_ = submit(ctx, data)
		case <-ctx.Done():
			forget()
			return applyResult{}, errUnknownOutcome
		case <-s.done:
			forget()
			return applyResult{}, errUnknownOutcome
		}
	}
}

// retryTicks is how long a read waits for its index, or a membership
// change to be applied, before it is asked again: a read pending when
// leadership changes is never answered, a change may be dropped.
const retryTicks = 3 * electionTicks

// readRound is one read index asked of the leader, for every read that
// arrived before it was asked.
type readRound struct {
	done  chan struct{} // closed once index or err is set
	index int64
	err   error
}

func newReadRound() *readRound { return &readRound{done: make(chan struct{})} }

// readIndex returns an index that the state must reach before a read that
// arrived now can be served from it, asked of the leader after the read
// arrived, in a round shared with the reads that arrived with it.
func (s *Server) readIndex(ctx context.Context) (int64, error) {
	s.readMu.Lock()
	round := s.nextRound
	s.readMu.Unlock()
	select {
	case s.readWake <- struct{}{}:
	default:
	}
	select {
	case <-round.done:
		return round.index, round.err
	case <-ctx.Done():
		return 0, errUnknownOutcome
	}
}

// readRounds asks the leader for one read index at a time, for the reads
// waiting for the next round.
func (s *Server) readRounds() {
	defer close(s.readsDone)
	for {
		select {
		case <-s.readWake:
		case <-s.stop:
			return
		}
		s.readMu.Lock()
		round := s.nextRound
		s.nextRound = newReadRound()
		s.readMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
		round.index, round.err = s.linearizableIndex(ctx)
		cancel()
		close(round.done)
	}
}

// linearizableIndex returns an index that the state must reach before a
// read can be served from it: the leader's commit index when it
// confirmed it was still leader after the read arrived.
func (s *Server) linearizableIndex(ctx context.Context) (int64, error) {
	for {
		seq := s.seq.Add(1)
		ch := make(chan int64, 1)
		s.waitMu.Lock()
		s.reads[seq] = ch
		s.waitMu.Unlock()
		forget := func() {
			s.waitMu.Lock()
			delete(s.reads, seq)
			s.waitMu.Unlock()
		}
		rctx := binary.LittleEndian.AppendUint64(nil, seq)
		if err := s.node.ReadIndex(ctx, rctx); err != nil {
			forget()
			switch {
			case errors.Is(err, raft.ErrReadDropped):
				return 0, errRefused
			case errors.Is(err, raft.ErrStopped):
				return 0, errStopped
			}
			return 0, errUnknownOutcome
		}
		retry := time.NewTimer(retryTicks * s.cfg.Tick)
		select {
		case index := <-ch:
			retry.Stop()
			return index, nil
		case <-retry.C:
			forget()
		case <-ctx.Done():
			retry.Stop()
			forget()
			return 0, errUnknownOutcome
		case <-s.done:
			return 0, errStopped
		}
	}
}

// awaitLinearizable waits until the state can serve a linearizable read
// that arrived now: it has applied a read index asked after that.
func (s *Server) awaitLinearizable(ctx context.Context) error {
	index, err := s.readIndex(ctx)
	if err != nil {
		return err
	}
	return s.waitApplied(ctx, index)
}

// waitApplied waits until the state machine has applied index.
func (s *Server) waitApplied(ctx context.Context, index int64) error {
	s.waitMu.Lock()
	s.mu.RLock()
	applied := s.applied
	s.mu.RUnlock()
	if applied >= index {
		s.waitMu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	s.appWait = append(s.appWait, appliedWaiter{index: index, ch: ch})
	s.waitMu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.waitMu.Lock()
		s.appWait = slices.DeleteFunc(s.appWait, func(w appliedWaiter) bool { return w.ch == ch })
		s.waitMu.Unlock()
		return errUnknownOutcome
	case <-s.done:
		return errStopped
	}
}
