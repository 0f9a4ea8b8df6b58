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
// exactly what was persisted. The application's own Storage (WithStorage)
// is read by a Node's goroutine while the application's loop writes to it,
// even while a write is in progress: it must be safe for that.
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

// CompactingStorage is an application Storage (WithStorage) that records
// the snapshots the node makes: Compact hands it the whole snapshot (index,
// term, voters, learners at the index, data) and fails with its error.
// raftstore's Store is one.
type CompactingStorage interface {
	Storage
	Compact(snap raftpb.Snapshot) error
}

// MemoryStorage is the Storage a node keeps by default: the node fills it
// itself from what it hands out in Ready, so the documented loop needs no
// extra call. It is owned by one node and is not safe for concurrent use,
// so it cannot serve as the application's storage of a Node (WithStorage),
// whose goroutine reads while the loop writes.
//
// The entries live in chunks of a bounded number of entries, so that a long
// log grows without ever copying what it holds, and compaction releases
// whole chunks. No array is written below the length of a slice of it that
// was handed out: truncation copies the chunk it cuts.
type MemoryStorage struct {
	snap raftpb.Snapshot
	// chunks hold the entries after snap in order: chunks[0] holds 1 to
	// chunkSize of them, every later chunk but the last exactly chunkSize,
	// the last 1 to chunkSize; no chunk is empty.
	chunks    [][]raftpb.Entry
	count     int64 // entries held
	chunkSize int
}

// defaultChunkSize is how many entries a chunk of MemoryStorage holds.
const defaultChunkSize = 4096

// NewMemoryStorage returns an empty storage.
func NewMemoryStorage() *MemoryStorage { return &MemoryStorage{chunkSize: defaultChunkSize} }

// locate returns the chunk and the position in it of the entry at index i,
// which must be held.
func (ms *MemoryStorage) locate(i int64) (chunk, pos int) {
	off := i - ms.snap.Index - 1
	if first := int64(len(ms.chunks[0])); off < first {
		return 0, int(off)
	} else {
		off -= first
	}
	size := int64(ms.chunkSize)
	return 1 + int(off/size), int(off % size)
}

// Entries implements Storage. A range within one chunk is a slice of it;
// one that spans chunks is copied.
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
	c, pos := ms.locate(lo)
	if in := ms.chunks[c][pos:]; int64(len(in)) >= hi-lo {
		ents := limitSize(in[:hi-lo], maxBytes)
		return ents[:len(ents):len(ents)], nil
	}
	// Spanning chunks: count what fits, then copy exactly that.
	n := ms.countWithin(c, pos, hi-lo, maxBytes)
	ents := make([]raftpb.Entry, 0, n)
	for int64(len(ents)) < n {
		part := ms.chunks[c][pos:]
		part = part[:min(int64(len(part)), n-int64(len(ents)))]
		ents = append(ents, part...)
		c, pos = c+1, 0
	}
	return ents, nil
}

// countWithin counts the entries from position pos of chunk c on, at most
// limit of them, whose encoded size fits in maxBytes (0: no limit), and at
// least one.
func (ms *MemoryStorage) countWithin(c, pos int, limit, maxBytes int64) int64 {
	if maxBytes <= 0 {
		return limit
	}
	var n, size int64
	for n < limit {
		part := ms.chunks[c][pos:]
		for j := range part {
			size += int64(part[j].Size())
			if n > 0 && size > maxBytes {
				return n
			}
			if n++; n == limit {
				return n
			}
		}
		c, pos = c+1, 0
	}
	return n
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
	c, pos := ms.locate(i)
	return ms.chunks[c][pos].Term, nil
}

// FirstIndex implements Storage.
func (ms *MemoryStorage) FirstIndex() int64 { return ms.snap.Index + 1 }

// LastIndex implements Storage.
func (ms *MemoryStorage) LastIndex() int64 { return ms.snap.Index + ms.count }

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
	if first <= ms.LastIndex() {
		ms.truncateFrom(first)
	}
	for len(ents) > 0 {
		n := len(ms.chunks)
		if n == 0 || len(ms.chunks[n-1]) == ms.chunkSize {
			ms.chunks = append(ms.chunks, nil)
			n++
		}
		last := &ms.chunks[n-1]
		take := min(len(ents), ms.chunkSize-len(*last))
		*last = append(*last, ents[:take]...)
		ms.count += int64(take)
		ents = ents[take:]
	}
}

// truncateFrom drops the entries from index i on. The chunk it cuts is
// copied, so that slices of it handed out keep their contents.
func (ms *MemoryStorage) truncateFrom(i int64) {
	c, pos := ms.locate(i)
	clear(ms.chunks[c+1:])
	if pos == 0 {
		ms.chunks = ms.chunks[:c]
	} else {
		ms.chunks[c] = append(make([]raftpb.Entry, 0, pos), ms.chunks[c][:pos]...)
		ms.chunks = ms.chunks[:c+1]
	}
	ms.count = i - ms.snap.Index - 1
}

// ApplySnapshot replaces the whole log with snap.
func (ms *MemoryStorage) ApplySnapshot(snap raftpb.Snapshot) {
	ms.snap = snap
	ms.chunks, ms.count = nil, 0
}

// Compact records snap, whose Index must lie within the stored log, and
// releases the entries up to it: the chunks it covers whole are dropped,
// and the rest of the chunk it cuts is copied to a fresh array.
func (ms *MemoryStorage) Compact(snap raftpb.Snapshot) {
	if snap.Index <= ms.snap.Index || snap.Index > ms.LastIndex() {
		panic(fmt.Sprintf("raft: compacting at %d outside the stored log (%d, %d]", snap.Index, ms.snap.Index, ms.LastIndex()))
	}
	if snap.Index == ms.LastIndex() {
		ms.ApplySnapshot(snap)
		return
	}
	c, pos := ms.locate(snap.Index + 1)
	rest := append([][]raftpb.Entry(nil), ms.chunks[c:]...)
	rest[0] = append([]raftpb.Entry(nil), rest[0][pos:]...)
	ms.count -= snap.Index - ms.snap.Index
	ms.chunks, ms.snap = rest, snap
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
