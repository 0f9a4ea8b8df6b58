package raft

import (
	"errors"
	"fmt"

	"github.com/raftly/raft/raftpb"
)

// ErrCompacted is returned by Storage when the requested index lies at or
// below the last snapshot and its entry is no longer kept.
var ErrCompacted = errors.New("raft: requested index is compacted")

// ErrUnavailable is returned by Storage when the requested entry does not
// exist yet.
var ErrUnavailable = errors.New("raft: requested entry is not available")

// Storage is the read side of the persisted log. The library reads old
// entries through it and never writes to it; implementations must return
// exactly what was persisted.
type Storage interface {
	// Entries returns the entries in [lo, hi): the longest prefix whose
	// encoded size is at most maxBytes, but at least one entry; maxBytes
	// <= 0 means no limit.
	Entries(lo, hi, maxBytes int64) ([]raftpb.Entry, error)
	// Term returns the term of the entry at index i, which must lie in
	// [FirstIndex()-1, LastIndex()]; the term at FirstIndex()-1 is the
	// snapshot's.
	Term(i int64) (int64, error)
	// FirstIndex is the index of the first entry kept (snapshot index + 1).
	FirstIndex() int64
	// LastIndex is the index of the last entry persisted, or the snapshot
	// index when no entry follows it.
	LastIndex() int64
	// Snapshot returns the most recent snapshot.
	Snapshot() raftpb.Snapshot
}

// MemoryStorage is the Storage a node keeps by default: the node fills it
// itself from what it hands out in Ready, so the documented loop needs no
// extra call. It is owned by one node and is not safe for concurrent use.
type MemoryStorage struct {
	snap raftpb.Snapshot
	// ents[i] has index snap.Index+1+i. The array behind ents is never
	// written below len(ents) once a slice of it has been handed out:
	// truncation and compaction copy.
	ents []raftpb.Entry
}

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{} }

// Entries implements Storage.
func (ms *MemoryStorage) Entries(lo, hi, maxBytes int64) ([]raftpb.Entry, error) {
	if lo <= ms.snap.Index {
		return nil, ErrCompacted
	}
	if hi > ms.LastIndex()+1 {
		return nil, ErrUnavailable
	}
	if lo >= hi {
		return nil, nil
	}
	ents := ms.ents[lo-ms.snap.Index-1 : hi-ms.snap.Index-1]
	ents = limitSize(ents, maxBytes)
	return ents[:len(ents):len(ents)], nil
}

// Term implements Storage.
func (ms *MemoryStorage) Term(i int64) (int64, error) {
	switch {
	case i < ms.snap.Index:
		return 0, ErrCompacted
	case i == ms.snap.Index:
		return ms.snap.Term, nil
	case i > ms.LastIndex():
		return 0, ErrUnavailable
	}
	return ms.ents[i-ms.snap.Index-1].Term, nil
}

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() int64 { return ms.snap.Index + 1 }

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() int64 { return ms.snap.Index + int64(len(ms.ents)) }

// Snapshot implements Storage.
func (ms *MemoryStorage) Snapshot() raftpb.Snapshot { return ms.snap }

// Append adds entries that follow or overlap the stored log; stored entries
// at the same or higher index than the first new one are replaced.
func (ms *MemoryStorage) Append(ents []raftpb.Entry) {
	if len(ents) == 0 {
		return
	}
	first := ents[0].Index
	if first <= ms.snap.Index {
		// The prefix is covered by the snapshot.
		skip := ms.snap.Index + 1 - first
		if skip >= int64(len(ents)) {
			return
		}
		ents = ents[skip:]
		first = ents[0].Index
	}
	if first > ms.LastIndex()+1 {
		panic(fmt.Sprintf("raft: storage invariant broken: appending entry %d leaves a gap after last index %d", first, ms.LastIndex()))
	}
	keep := first - ms.snap.Index - 1
	if keep < int64(len(ms.ents)) {
		// Replacing a suffix: copy, so that slices handed out keep their contents.
		ms.ents = append(ms.ents[:keep:keep], ents...)
		return
	}
	ms.ents = append(ms.ents, ents...)
}

// ApplySnapshot replaces the whole log with snap.
func (ms *MemoryStorage) ApplySnapshot(snap raftpb.Snapshot) {
	ms.snap = snap
	ms.ents = nil
}

// Compact records snap, whose Index must lie within the stored log, and
// releases the entries up to it.
func (ms *MemoryStorage) Compact(snap raftpb.Snapshot) {
	if snap.Index <= ms.snap.Index || snap.Index > ms.LastIndex() {
		panic(fmt.Sprintf("raft: compacting at %d outside the stored log (%d, %d]", snap.Index, ms.snap.Index, ms.LastIndex()))
	}
	rest := ms.ents[snap.Index-ms.snap.Index:]
	// A fresh array lets the compacted prefix be collected.
	ms.ents = append([]raftpb.Entry(nil), rest...)
	ms.snap = snap
}

// limitSize returns the longest prefix of ents whose encoded size fits in
// maxBytes, and at least one entry; maxBytes <= 0 means no limit.
func limitSize(ents []raftpb.Entry, maxBytes int64) []raftpb.Entry {
	if len(ents) == 0 || maxBytes <= 0 {
		return ents
	}
	size := int64(ents[0].Size())
	for i := 1; i < len(ents); i++ {
		size += int64(ents[i].Size())
		if size > maxBytes {
			return ents[:i]
		}
	}
	return ents
}
