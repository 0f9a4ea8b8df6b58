package raftstore

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// Bootstrap records the membership the group is first started with: the
// peers and learners given to StartNode and the Joining index (0 when the
// node does not join a running cluster). Call it before StartNode and the
// first Save; State returns it at restart for as long as no snapshot is
// stored. Calling it again with the same membership does nothing; with a
// different one it fails.
func (s *Store) Bootstrap(peers, learners []int64, joining int64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	b := bootstrap{Peers: slices.Clone(peers), Learners: slices.Clone(learners), Joining: joining}
	if s.boot != nil {
		if slices.Equal(s.boot.Peers, b.Peers) && slices.Equal(s.boot.Learners, b.Learners) && s.boot.Joining == b.Joining {
			return nil
		}
		return s.invalid("already bootstrapped with peers %v, learners %v, joining %d", s.boot.Peers, s.boot.Learners, s.boot.Joining)
	}
	for _, id := range append(slices.Clone(peers), learners...) {
		if id == raft.None {
			return s.invalid("node id 0 among peers %v or learners %v", peers, learners)
		}
	}
	for _, id := range learners {
		if slices.Contains(peers, id) {
			return s.invalid("node %d is both a peer and a learner", id)
		}
	}
	if joining < 0 {
		return s.invalid("negative joining index %d", joining)
	}
	err := s.commit(func(batch *pebble.Batch) error {
		return batch.Set(s.bootstrapKey, b.marshal(), nil)
	}, nil, nil, true)
	if err == nil {
		s.boot = &b
	}
	return err
}

// SetApplied records that the application has applied the log up to
// index. It is written with the next Save or Compact that writes anything
// (it costs no sync of its own), or by DB.Close, and returned as State.Applied at restart: a
// lower bound of what was applied, for an application whose state machine
// is durable and re-applies idempotently from there. An index that goes
// back, or beyond the commit index saved, is refused.
func (s *Store) SetApplied(index int64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	switch {
	case index < s.staged:
		return s.invalid("applied index %d goes back from %d", index, s.staged)
	case index > max(s.hs.Commit, s.snap.Index):
		return s.invalid("applied index %d is beyond the commit index saved, %d", index, max(s.hs.Commit, s.snap.Index))
	}
	s.staged = index
	return nil
}

// Save persists what a Ready asks to: its Snapshot (which replaces the
// whole log), its Entries (which replace the stored entries from their
// first index on) and its State, with the applied index set since the
// last write, in one atomic batch, synced before Save returns; except a
// Ready whose only change is a higher commit index in State (same term
// and vote), which is written without waiting for a sync and may be lost
// in a crash until the next synced write (Raft needs the commit index
// correct, not durable). A Ready with none of the three writes nothing. Input that would leave an invalid
// log is refused with an error wrapping ErrInvalid before anything is
// written: entries with a gap or terms going down, entries that do not
// follow the log or replace committed ones, a HardState whose term or
// commit goes back or that commits beyond the log, a snapshot not newer
// than the stored one. A failed write leaves the store refusing writes.
// The store keeps the entries' Data in its cache: like everything a Ready
// hands out, it must not be modified.
func (s *Store) Save(rd raft.Ready) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	hasSnap, hasHS := !raft.IsEmptySnap(rd.Snapshot), !raft.IsEmptyHardState(rd.State)
	if !hasSnap && len(rd.Entries) == 0 && !hasHS {
		return nil
	}
	if s.boot == nil {
		return fmt.Errorf("%w: group %d: Save before Bootstrap recorded the starting membership", ErrNotBootstrapped, s.id)
	}
	p, err := s.plan(rd, hasSnap, hasHS)
	if err != nil {
		return err
	}
	ents := rd.Entries
	build := func(b *pebble.Batch) error {
		if hasSnap {
			v, err := rd.Snapshot.Marshal()
			if err != nil {
				return err
			}
			if err := b.Set(s.snapKey, v, nil); err != nil {
				return err
			}
		}
		switch {
		case hasSnap:
			if err := b.DeleteRange(metaKey(s.id, kindEntry), metaKey(s.id, kindEntry+1), nil); err != nil {
				return err
			}
		case p.cut > 0:
			if err := b.DeleteRange(entryKey(s.id, p.cut), metaKey(s.id, kindEntry+1), nil); err != nil {
				return err
			}
		}
		if len(ents) > 0 {
			op := b.SetDeferred(entryKeyLen, blockSize(ents))
			putEntryKey(op.Key, s.id, ents[0].Index)
			putBlock(op.Value, ents)
			if err := op.Finish(); err != nil {
				return err
			}
		}
		if hasHS {
			op := b.SetDeferred(len(s.hsKey), rd.State.Size())
			copy(op.Key, s.hsKey)
			if _, err := rd.State.MarshalToSizedBuffer(op.Value); err != nil {
				return err
			}
			if err := op.Finish(); err != nil {
				return err
			}
		}
		return nil
	}
	var narrow func() // readers lose what the Save drops before it goes
	switch {
	case hasSnap:
		narrow = func() {
			s.snap, s.last = rd.Snapshot, rd.Snapshot.Index
			s.cache.reset()
		}
	case p.cut > 0:
		narrow = func() {
			s.last = p.cut - 1
			s.cache.truncateFrom(p.cut)
		}
	}
	widen := func() {
		s.last = p.last
		s.cache.append(ents)
	}
	// Raft needs the commit index only to be correct, not durable (a
	// restarted node learns it again): a Save that only raises it is
	// written without waiting for a sync. The next synced write makes it
	// durable with itself.
	sync := hasSnap || len(ents) > 0 || (hasHS && (rd.State.Term != s.hs.Term || rd.State.Vote != s.hs.Vote))
	if err := s.commit(build, narrow, widen, sync); err != nil {
		return err
	}
	s.lastTerm = p.lastTerm
	if hasHS {
		s.hs = rd.State
	}
	return nil
}

// savePlan is what a validated Save changes.
type savePlan struct {
	last, lastTerm int64 // the log's last entry after the Save
	cut            int64 // without a snapshot: the first stored index the Save replaces; 0: none
}

// plan validates rd against the stored log and returns what saving it
// changes.
func (s *Store) plan(rd raft.Ready, hasSnap, hasHS bool) (savePlan, error) {
	p := savePlan{last: s.last, lastTerm: s.lastTerm}
	base, baseTerm := s.snap.Index, s.snap.Term
	if hasSnap {
		sn := &rd.Snapshot
		switch {
		case sn.Index <= s.snap.Index:
			return p, s.invalid("snapshot %d/%d is not newer than the stored snapshot %d/%d", sn.Term, sn.Index, s.snap.Term, s.snap.Index)
		case sn.Term < s.snap.Term || sn.Term <= 0:
			return p, s.invalid("snapshot %d/%d has a term below the stored snapshot's, %d", sn.Term, sn.Index, s.snap.Term)
		case sn.Index < s.hs.Commit:
			return p, s.invalid("snapshot %d/%d is below the commit index %d: committed entries would be lost", sn.Term, sn.Index, s.hs.Commit)
		case len(sn.Nodes) == 0:
			return p, s.invalid("snapshot %d/%d names no voters", sn.Term, sn.Index)
		}
		base, baseTerm = sn.Index, sn.Term
		p.last, p.lastTerm = base, baseTerm
	}
	if ents := rd.Entries; len(ents) > 0 {
		first := ents[0].Index
		for k := range ents {
			switch {
			case ents[k].Term <= 0:
				return p, s.invalid("entry %d has term %d", ents[k].Index, ents[k].Term)
			case k > 0 && ents[k].Index != ents[k-1].Index+1:
				return p, s.invalid("entry %d follows entry %d: the entries must be contiguous", ents[k].Index, ents[k-1].Index)
			case k > 0 && ents[k].Term < ents[k-1].Term:
				return p, s.invalid("entry %d has term %d, below the term %d of entry %d", ents[k].Index, ents[k].Term, ents[k-1].Term, ents[k-1].Index)
			}
		}
		prevTerm := baseTerm
		switch {
		case hasSnap && first != base+1:
			return p, s.invalid("entries start at %d, not right after the snapshot %d", first, base)
		case first <= base:
			return p, s.invalid("entry %d is at or below the snapshot %d", first, base)
		case !hasSnap && first > s.last+1:
			return p, s.invalid("entry %d leaves a gap after the last entry %d", first, s.last)
		case !hasSnap && first <= s.hs.Commit:
			return p, s.invalid("entry %d would replace a committed entry (commit %d)", first, s.hs.Commit)
		case !hasSnap && first-1 == s.last && s.last > base:
			prevTerm = s.lastTerm // an append: the writer knows the last term
		case !hasSnap && first-1 > base:
			t, err := s.Term(first - 1)
			if err != nil {
				return p, err
			}
			prevTerm = t
		}
		if ents[0].Term < prevTerm {
			return p, s.invalid("entry %d has term %d, below the term %d of entry %d before it", first, ents[0].Term, prevTerm, first-1)
		}
		last := ents[len(ents)-1]
		if !hasSnap && first <= s.last {
			p.cut = first
		}
		p.last, p.lastTerm = last.Index, last.Term
	}
	hs := s.hs
	if hasHS {
		st := rd.State
		switch {
		case st.Term < hs.Term:
			return p, s.invalid("HardState term %d goes back from %d", st.Term, hs.Term)
		case st.Term == hs.Term && hs.Vote != raft.None && st.Vote != hs.Vote:
			return p, s.invalid("HardState vote changes from %d to %d in term %d", hs.Vote, st.Vote, st.Term)
		case st.Commit < hs.Commit:
			return p, s.invalid("HardState commit %d goes back from %d", st.Commit, hs.Commit)
		}
		hs = st
	}
	if hs.Commit > p.last {
		return p, s.invalid("HardState commit %d is beyond the last entry %d after this Save", hs.Commit, p.last)
	}
	return p, nil
}

// Compact records snap, a snapshot the application made with
// raft.Node.Compact, and drops the entries it covers, in one synced batch.
// snap.Index must lie within the stored log, at or below the commit index
// saved and above the stored snapshot; snap.Term must be the term of the
// entry at snap.Index (0 means: take it from the log); snap.Nodes the
// voters there, snap.Learners the learners.
func (s *Store) Compact(snap raftpb.Snapshot) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	switch {
	case snap.Index <= s.snap.Index:
		return s.invalid("compacting at %d, not above the stored snapshot %d", snap.Index, s.snap.Index)
	case snap.Index > s.last:
		return s.invalid("compacting at %d, beyond the last entry %d", snap.Index, s.last)
	case snap.Index > s.hs.Commit:
		return s.invalid("compacting at %d, beyond the commit index saved, %d", snap.Index, s.hs.Commit)
	case len(snap.Nodes) == 0:
		return s.invalid("snapshot at %d names no voters", snap.Index)
	}
	term, err := s.Term(snap.Index)
	if err != nil {
		return err
	}
	if snap.Term == 0 {
		snap.Term = term
	} else if snap.Term != term {
		return s.invalid("snapshot at %d has term %d, but the entry there has term %d", snap.Index, snap.Term, term)
	}
	v, err := snap.Marshal()
	if err != nil {
		return err
	}
	// Delete the blocks before the one that holds the first entry kept;
	// with no entry kept, all of them.
	end := metaKey(s.id, kindEntry+1)
	if snap.Index < s.last {
		first, err := s.db.blockStart(s.id, snap.Index+1)
		if err != nil {
			return err
		}
		end = entryKey(s.id, first)
	}
	build := func(b *pebble.Batch) error {
		if err := b.Set(s.snapKey, v, nil); err != nil {
			return err
		}
		return b.DeleteRange(metaKey(s.id, kindEntry), end, nil)
	}
	narrow := func() {
		s.snap = snap
		s.cache.dropTo(snap.Index)
	}
	return s.commit(build, narrow, nil, true)
}

// commit builds a batch with build, adds the staged applied index, runs
// narrow under mu, commits (waiting for a sync if sync), then runs widen
// under mu.
func (s *Store) commit(build func(*pebble.Batch) error, narrow, widen func(), sync bool) error {
	b := s.batch
	defer b.Reset()
	err := build(b)
	if err == nil && s.staged != s.applied {
		err = s.putApplied(b)
	}
	if err != nil {
		return fmt.Errorf("raftstore: group %d: building a batch: %w", s.id, err)
	}
	if narrow != nil {
		s.mu.Lock()
		narrow()
		s.mu.Unlock()
	}
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.Commit(opts); err != nil {
		s.err = s.db.wrap(err, "group %d: committing", s.id)
		return s.err
	}
	if sync {
		s.db.commits.Add(1)
	}
	s.applied = s.staged
	if widen != nil {
		s.mu.Lock()
		widen()
		s.mu.Unlock()
	}
	return nil
}

func (s *Store) putApplied(b *pebble.Batch) error {
	return b.Set(s.appliedKey, binary.AppendVarint(nil, s.staged), nil)
}
