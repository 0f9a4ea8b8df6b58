package raftstore

import (
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// Store is the durable log of one Raft group. It implements raft.Storage.
//
// The read methods (Entries, Term, FirstIndex, LastIndex, Snapshot) are
// safe from any goroutine at any time, also while a write is in progress:
// they see the log before or after the write, and never an index that the
// write changes before it is durable. The writes (Bootstrap, Save, Compact,
// SetApplied) are meant for the application's loop, one at a time; calls
// that overlap are serialised.
type Store struct {
	db    *DB
	id    uint64
	hsKey []byte

	// wmu serialises the writers. The fields below it change only under
	// wmu; the writer reads them without mu.
	wmu          sync.Mutex
	batch        *pebble.Batch
	boot         *bootstrap
	hs           raftpb.HardState
	lastTerm     int64 // the term of the entry at last (the snapshot's when none)
	applied      int64 // the applied index written
	staged       int64 // the applied index to write with the next write (applied when none)
	err          error // a failed commit: the store takes no more writes
	appliedKey   []byte
	snapKey      []byte
	bootstrapKey []byte

	// mu guards what readers see, below. A writer narrows it under mu
	// before committing (dropping what the write removes or replaces) and
	// widens it after (adding what the write added), so that a reader
	// never looks at an index while its content changes.
	mu     sync.RWMutex
	closed bool
	snap   raftpb.Snapshot
	last   int64
	cache  entryCache
}

var _ raft.CompactingStorage = (*Store)(nil)

func newStore(db *DB, id uint64, g *groupState) *Store {
	s := &Store{
		db:           db,
		id:           id,
		hsKey:        metaKey(id, kindHardState),
		appliedKey:   metaKey(id, kindApplied),
		snapKey:      metaKey(id, kindSnapshot),
		bootstrapKey: metaKey(id, kindBootstrap),
		batch:        db.pdb.NewBatch(),
		boot:         g.boot,
		hs:           g.hs,
		lastTerm:     g.lastTerm,
		applied:      g.applied,
		staged:       g.applied,
		snap:         g.snap,
		last:         g.last,
		cache:        entryCache{maxEntries: db.opts.CacheEntries, maxBytes: db.opts.CacheBytes},
	}
	s.cache.append(g.tail)
	return s
}

// FirstIndex implements raft.Storage: the index after the snapshot.
func (s *Store) FirstIndex() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap.Index + 1
}

// LastIndex implements raft.Storage: the last entry's index, or the
// snapshot's when no entry follows it.
func (s *Store) LastIndex() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.last
}

// Snapshot implements raft.Storage: the latest snapshot (empty if none).
func (s *Store) Snapshot() raftpb.Snapshot {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snap
}

// Term implements raft.Storage: the term of entry i, for i in
// [FirstIndex()-1, LastIndex()]. It fails with raft.ErrCompacted below
// that range, raft.ErrUnavailable above it, and with an error wrapping
// ErrCorrupt (or ErrClosed) when the entry cannot be read.
func (s *Store) Term(i int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return 0, ErrClosed
	case i < s.snap.Index:
		return 0, raft.ErrCompacted
	case i == s.snap.Index:
		return s.snap.Term, nil
	case i > s.last:
		return 0, raft.ErrUnavailable
	}
	if e, ok := s.cache.get(i); ok {
		return e.Term, nil
	}
	ents, err := s.db.readEntries(s.id, i, i+1, 0)
	if err != nil {
		return 0, err
	}
	return ents[0].Term, nil
}

// Entries implements raft.Storage: the entries [lo, hi), the longest
// prefix of at most maxBytes of encoded size (at least one entry; maxBytes
// <= 0: no limit). Errors are as for Term. The entries returned are the
// caller's; their Data must not be modified.
func (s *Store) Entries(lo, hi, maxBytes int64) ([]raftpb.Entry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case lo <= s.snap.Index:
		return nil, raft.ErrCompacted
	case hi > s.last+1:
		return nil, raft.ErrUnavailable
	case lo >= hi:
		return nil, nil
	}
	var ents []raftpb.Entry
	var size int64
	cached := hi // first index served from the cache
	if len(s.cache.ents) > 0 {
		cached = max(lo, s.cache.first())
	}
	if lo < cached {
		var err error
		ents, err = s.db.readEntries(s.id, lo, cached, maxBytes)
		if err != nil {
			return nil, err
		}
		if int64(len(ents)) < cached-lo {
			return ents, nil // cut by maxBytes
		}
		for i := range ents {
			size += int64(ents[i].Size())
		}
	}
	if cached < hi {
		k := int(cached - s.cache.first())
		run := s.cache.ents[k : k+int(hi-cached)]
		if ents == nil {
			ents = make([]raftpb.Entry, 0, len(run))
		}
		for i := range run {
			size += int64(run[i].Size())
			if maxBytes > 0 && size > maxBytes && len(ents) > 0 {
				break
			}
			ents = append(ents, run[i])
		}
	}
	return ents, nil
}

// close writes the staged applied index, stops the store and returns its
// summary for the close record.
func (s *Store) close() (summary, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var err error
	if s.err == nil && s.staged != s.applied {
		err = s.commit(func(*pebble.Batch) error { return nil }, nil, nil, true)
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	_ = s.batch.Close()
	if err == nil {
		err = s.err
	}
	return summary{
		Bootstrapped: s.boot != nil,
		SnapIndex:    s.snap.Index, SnapTerm: s.snap.Term,
		Term: s.hs.Term, Vote: s.hs.Vote, Commit: s.hs.Commit,
		Last: s.last, LastTerm: s.lastTerm, Applied: s.applied,
	}, err
}

// usable returns why the store takes no writes, if it does not.
func (s *Store) usable() error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return s.err
}

// invalid returns an error wrapping ErrInvalid.
func (s *Store) invalid(format string, args ...any) error {
	return fmt.Errorf("%w: group %d: %s", ErrInvalid, s.id, fmt.Sprintf(format, args...))
}
