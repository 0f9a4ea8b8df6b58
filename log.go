package raft

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/raftly/raft/raftpb"
)

// raftLog is a node's view of the log: the persisted part, read through
// Storage, followed by the part not yet persisted (unstable).
//
// Invariant: applied <= applying <= committed <= lastIndex().
// Entries at or below committed are never truncated.
type raftLog struct {
	storage  Storage
	unstable unstable

	committed int64
	// applying is the last entry handed out in Ready.CommittedEntries;
	// applied is the last one the application acknowledged.
	applying, applied int64

	// confIndexes lists, ascending, the indexes of the config entries in
	// the log after the snapshot.
	confIndexes []int64
	// lastCommitted is the last range nextCommitted read.
	lastCommitted committedRange
}

// unstable holds what was accepted but is not yet known to be persisted:
// an incoming snapshot and entries. offered marks what was already handed
// out in a Ready and awaits acknowledgement.
type unstable struct {
	snapshot    *raftpb.Snapshot
	snapOffered bool
	offset      int64 // index of entries[0]
	entries     []raftpb.Entry
	offeredUpTo int64 // last entry index handed out in Ready.Entries
}

func newLog(storage Storage) *raftLog {
	snap := storage.Snapshot()
	l := &raftLog{storage: storage}
	last := storage.LastIndex()
	l.unstable.offset = last + 1
	l.unstable.offeredUpTo = last
	l.committed = snap.Index
	l.applying = snap.Index
	l.applied = snap.Index
	// The config entries are found reading the log a page at a time, so
	// that a long log on disk is never all in memory.
	for lo := snap.Index + 1; lo <= last; {
		ents, err := storage.Entries(lo, last+1, restartPageBytes)
		if err != nil || len(ents) == 0 {
			panic(fmt.Sprintf("raft: storage invariant broken: cannot read entries [%d, %d]: %v", lo, last, err))
		}
		l.noteConfigs(ents)
		lo += int64(len(ents))
	}
	return l
}

// restartPageBytes bounds the entry bytes read at once when a node starts
// on a persisted log.
const restartPageBytes = 4 << 20

func (l *raftLog) String() string {
	return fmt.Sprintf("committed=%d applied=%d applying=%d unstable.offset=%d len(unstable)=%d",
		l.committed, l.applied, l.applying, l.unstable.offset, len(l.unstable.entries))
}

// snapshotIndex is the index the log starts after.
func (l *raftLog) snapshotIndex() int64 {
	if s := l.unstable.snapshot; s != nil {
		return s.Index
	}
	return l.storage.FirstIndex() - 1
}

func (l *raftLog) firstIndex() int64 { return l.snapshotIndex() + 1 }

func (l *raftLog) lastIndex() int64 {
	if n := len(l.unstable.entries); n > 0 {
		return l.unstable.offset + int64(n) - 1
	}
	if s := l.unstable.snapshot; s != nil {
		return s.Index
	}
	return l.storage.LastIndex()
}

// term returns the term of the entry at i, or an error when i is compacted
// (ErrCompacted) or beyond the log (ErrUnavailable).
func (l *raftLog) term(i int64) (int64, error) {
	if i < l.snapshotIndex() {
		return 0, ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, ErrUnavailable
	}
	if s := l.unstable.snapshot; s != nil && i == s.Index {
		return s.Term, nil
	}
	if i >= l.unstable.offset {
		return l.unstable.entries[i-l.unstable.offset].Term, nil
	}
	t, err := l.storage.Term(i)
	if err != nil && !errors.Is(err, ErrCompacted) && !errors.Is(err, ErrUnavailable) {
		panic(fmt.Sprintf("raft: storage invariant broken: Term(%d): %v", i, err))
	}
	return t, err
}

// termOrZero is term for callers to whom a missing entry means "no match".
func (l *raftLog) termOrZero(i int64) int64 {
	t, err := l.term(i)
	if err != nil {
		return 0
	}
	return t
}

func (l *raftLog) lastTerm() int64 { return l.termOrZero(l.lastIndex()) }

func (l *raftLog) matchTerm(i, t int64) bool {
	tt, err := l.term(i)
	return err == nil && tt == t
}

// isUpToDate reports whether a log ending at (lastIndex, lastTerm) is at
// least as up to date as this one (§5.4.1).
func (l *raftLog) isUpToDate(lastIndex, lastTerm int64) bool {
	myTerm := l.lastTerm()
	return lastTerm > myTerm || (lastTerm == myTerm && lastIndex >= l.lastIndex())
}

// slice returns the entries in [lo, hi), limited to maxBytes (0: no limit)
// but at least one. The result must not be modified.
func (l *raftLog) slice(lo, hi, maxBytes int64) ([]raftpb.Entry, error) {
	if lo < l.firstIndex() {
		return nil, ErrCompacted
	}
	if hi > l.lastIndex()+1 || lo > hi {
		return nil, ErrUnavailable
	}
	if lo == hi {
		return nil, nil
	}
	var ents []raftpb.Entry
	if lo < l.unstable.offset {
		stored, err := l.storage.Entries(lo, min(hi, l.unstable.offset), maxBytes)
		if err != nil {
			if errors.Is(err, ErrCompacted) {
				return nil, err
			}
			panic(fmt.Sprintf("raft: storage invariant broken: Entries(%d, %d): %v", lo, min(hi, l.unstable.offset), err))
		}
		if int64(len(stored)) < min(hi, l.unstable.offset)-lo {
			return stored, nil // cut by maxBytes
		}
		ents = stored
	}
	if hi > l.unstable.offset {
		from := max(lo, l.unstable.offset) - l.unstable.offset
		tail := l.unstable.entries[from : hi-l.unstable.offset]
		if len(ents) == 0 {
			ents = tail[:len(tail):len(tail)]
		} else {
			// Spanning storage and unstable: the only case that copies.
			joined := make([]raftpb.Entry, 0, len(ents)+len(tail))
			ents = append(append(joined, ents...), tail...)
		}
	}
	return limitSize(ents, maxBytes), nil
}

// findConflict returns the index of the first entry of ents whose term
// differs from the log's (or that the log lacks), or 0 when all match.
func (l *raftLog) findConflict(ents []raftpb.Entry) int64 {
	for i := range ents {
		if !l.matchTerm(ents[i].Index, ents[i].Term) {
			return ents[i].Index
		}
	}
	return 0
}

// findConflictByTerm returns the largest index <= i whose term is <= t (or
// the snapshot index), with its term. A leader uses it to skip, in one
// round trip, every entry of a term the follower does not have (§5.3).
func (l *raftLog) findConflictByTerm(i, t int64) (int64, int64) {
	i = min(i, l.lastIndex())
	for ; i > l.snapshotIndex(); i-- {
		tt, err := l.term(i)
		if err != nil {
			break
		}
		if tt <= t {
			return i, tt
		}
	}
	return i, l.termOrZero(i)
}

// maybeAppend appends ents after the entry (index, logTerm) when the log
// holds that entry, and advances commit up to the last new entry. It
// returns the last index known to match the leader's log, and false when
// the consistency check fails. An append that would truncate a committed
// entry is refused with an error: it can only come from a broken peer.
func (l *raftLog) maybeAppend(index, logTerm, commit int64, ents []raftpb.Entry) (int64, bool, error) {
	if !l.matchTerm(index, logTerm) {
		return 0, false, nil
	}
	lastNew := index + int64(len(ents))
	if c := l.findConflict(ents); c != 0 {
		if c <= l.committed {
			return 0, false, fmt.Errorf("raft: append conflicts with committed entry %d (committed %d)", c, l.committed)
		}
		l.append(ents[c-ents[0].Index:])
	}
	l.commitTo(min(commit, lastNew))
	return lastNew, true, nil
}

// append adds ents to the unstable log, replacing any entries at the same
// or higher index, and returns the new last index.
func (l *raftLog) append(ents []raftpb.Entry) int64 {
	if len(ents) == 0 {
		return l.lastIndex()
	}
	if after := ents[0].Index - 1; after < l.committed {
		panic(fmt.Sprintf("raft: invariant broken: appending after %d truncates committed entries (committed %d)", after, l.committed))
	}
	l.unstable.truncateAndAppend(ents)
	l.dropConfigsFrom(ents[0].Index)
	l.noteConfigs(ents)
	return l.lastIndex()
}

// appendProposals appends copies of ents, given term and the indexes after
// the last, and returns the new last index; ents is not modified. The
// copies go to the room left in the unstable array, which never holds
// anything handed out at or past its length.
func (l *raftLog) appendProposals(term int64, ents []raftpb.Entry) int64 {
	u := &l.unstable
	first := l.lastIndex() + 1
	if u.offset+int64(len(u.entries)) != first {
		panic(fmt.Sprintf("raft: invariant broken: unstable entries end at %d, the log at %d", u.offset+int64(len(u.entries))-1, first-1))
	}
	start := len(u.entries)
	if cap(u.entries)-start < len(ents) {
		grown := make([]raftpb.Entry, start, max(2*(start+len(ents)), minSpare))
		copy(grown, u.entries)
		u.entries = grown
	}
	u.entries = append(u.entries, ents...)
	added := u.entries[start:]
	for i := range added {
		added[i].Term = term
		added[i].Index = first + int64(i)
	}
	l.noteConfigs(added)
	return l.lastIndex()
}

func (l *raftLog) noteConfigs(ents []raftpb.Entry) {
	for i := range ents {
		if ents[i].Type == raftpb.EntryConfig {
			l.confIndexes = append(l.confIndexes, ents[i].Index)
		}
	}
}

func (l *raftLog) dropConfigsFrom(index int64) {
	k := sort.Search(len(l.confIndexes), func(k int) bool { return l.confIndexes[k] >= index })
	l.confIndexes = l.confIndexes[:k]
}

// forgetConfigsBefore drops the config entries that compaction at index
// covers, but the last of them: the one that may still be pending.
func (l *raftLog) forgetConfigsBefore(index int64) {
	k := sort.Search(len(l.confIndexes), func(k int) bool { return l.confIndexes[k] > index })
	if k > 1 {
		l.confIndexes = slices.Clone(l.confIndexes[k-1:])
	}
}

// lastConfigIndex returns the index of the last config entry in the log at
// or below limit, or 0.
func (l *raftLog) lastConfigIndex(limit int64) int64 {
	k := sort.Search(len(l.confIndexes), func(k int) bool { return l.confIndexes[k] > limit })
	if k == 0 {
		return 0
	}
	return l.confIndexes[k-1]
}

// firstConfigIndex returns the index of the first config entry in
// (after, limit], or 0.
func (l *raftLog) firstConfigIndex(after, limit int64) int64 {
	k := sort.Search(len(l.confIndexes), func(k int) bool { return l.confIndexes[k] > after })
	if k < len(l.confIndexes) && l.confIndexes[k] <= limit {
		return l.confIndexes[k]
	}
	return 0
}

// secondLastConfigIndex is the last-but-one config entry of the log, or 0.
// It is known to be committed: a leader appends a config entry only after
// applying the one before it.
func (l *raftLog) secondLastConfigIndex() int64 {
	if n := len(l.confIndexes); n >= 2 {
		return l.confIndexes[n-2]
	}
	return 0
}

// commitTo raises the commit index; it never lowers it.
func (l *raftLog) commitTo(c int64) {
	if c <= l.committed {
		return
	}
	if c > l.lastIndex() {
		panic(fmt.Sprintf("raft: invariant broken: commit %d beyond last index %d", c, l.lastIndex()))
	}
	l.committed = c
}

// raiseCommitToConfigs applies the rule that a config entry followed by
// another one is committed.
func (l *raftLog) raiseCommitToConfigs() {
	l.commitTo(l.secondLastConfigIndex())
}

// restore replaces the log with snap.
func (l *raftLog) restore(snap raftpb.Snapshot) {
	l.lastCommitted = committedRange{}
	l.unstable.snapshot = &snap
	l.unstable.snapOffered = false
	l.unstable.entries = nil
	l.unstable.offset = snap.Index + 1
	l.unstable.offeredUpTo = snap.Index
	l.committed = snap.Index
	l.applying = snap.Index
	l.confIndexes = nil
}

// Hand-out bookkeeping, driven by RawNode.

// unofferedEntries returns the unstable entries not yet handed out.
func (l *raftLog) unofferedEntries() []raftpb.Entry {
	u := &l.unstable
	from := u.offeredUpTo + 1 - u.offset
	if from >= int64(len(u.entries)) {
		return nil
	}
	ents := u.entries[from:]
	return ents[:len(ents):len(ents)]
}

// nextCommitted returns the committed entries not yet handed out, ending at
// the first config entry among them.
func (l *raftLog) nextCommitted() []raftpb.Entry {
	if l.applying >= l.committed {
		return nil
	}
	hi := l.committed
	if c := l.firstConfigIndex(l.applying, hi); c != 0 {
		hi = c
	}
	// A Node assembles its next Ready after every input while the
	// application works: committed entries never change, so the range read
	// last is served again rather than read again (from disk, perhaps).
	if r := &l.lastCommitted; r.lo == l.applying+1 && r.hi == hi+1 {
		return r.ents
	}
	ents, err := l.slice(l.applying+1, hi+1, 0)
	if err != nil {
		panic(fmt.Sprintf("raft: invariant broken: committed entries (%d, %d] unreadable: %v", l.applying, hi, err))
	}
	l.lastCommitted = committedRange{lo: l.applying + 1, hi: hi + 1, ents: ents}
	return ents
}

// committedRange is a range [lo, hi) of committed entries read from the log.
type committedRange struct {
	lo, hi int64
	ents   []raftpb.Entry
}

func (l *raftLog) hasNextCommitted() bool { return l.applying < l.committed }

// stableTo marks the unstable entries up to (i, t) as persisted and drops
// them from memory; it ignores a mark that no longer matches the log.
func (u *unstable) stableTo(i, t int64) {
	if i < u.offset || i >= u.offset+int64(len(u.entries)) || u.entries[i-u.offset].Term != t {
		return
	}
	// The room after the entries stays for later appends.
	u.entries = u.entries[i+1-u.offset:]
	u.offset = i + 1
}

func (u *unstable) snapshotStable(index int64) {
	if u.snapshot != nil && u.snapshot.Index == index {
		u.snapshot = nil
		u.snapOffered = false
	}
}

// truncateAndAppend appends ents, dropping unstable entries they replace.
// It never writes into an array that a Ready or a Step caller can see.
func (u *unstable) truncateAndAppend(ents []raftpb.Entry) {
	first := ents[0].Index
	switch {
	case first == u.offset+int64(len(u.entries)):
		if len(u.entries) == 0 {
			u.entries = ents[:len(ents):len(ents)]
		} else {
			u.entries = append(u.entries, ents...)
		}
	case first <= u.offset:
		u.offset = first
		u.entries = ents[:len(ents):len(ents)]
	default:
		keep := first - u.offset
		u.entries = append(u.entries[:keep:keep], ents...)
	}
	u.offeredUpTo = min(u.offeredUpTo, first-1)
}

// emptyAfter returns an empty slice to append to once s has been handed
// out (capped at its length): the unused rest of s's array when it has
// room for a batch as large again, else a new array with room for several.
// Appends to it never write where s can see.
func emptyAfter[T any](s []T) []T {
	if len(s) == 0 {
		return s
	}
	if rest := s[len(s):]; cap(rest) >= len(s) {
		return rest
	}
	return make([]T, 0, max(2*len(s), minSpare))
}

// dropHandedOut returns what follows the first n elements of s, which were
// handed out; when nothing does, the room after them (emptyAfter).
func dropHandedOut[T any](s []T, n int) []T {
	if n == len(s) {
		return emptyAfter(s)
	}
	return s[n:]
}

// minSpare is the least room emptyAfter makes, so that batches of one or
// two do not cost an array each.
const minSpare = 16
