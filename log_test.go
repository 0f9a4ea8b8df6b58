package raft

import (
	"fmt"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Unit tests of the log (log.go): the persisted part read through Storage
// followed by the unstable part.

// logOf returns a log whose storage holds entries 1..len(stored) with the
// given terms, compacted up to compactTo (0: not compacted), followed by
// unstable entries with the given terms.
func logOf(t *testing.T, stored []int64, compactTo int64, unstable []int64) *raftLog {
	t.Helper()
	ms := NewMemoryStorage()
	ents := paperEnts(stored...)
	for i := range ents {
		ents[i].Data = []byte(fmt.Sprintf("data%02d", ents[i].Index))
	}
	ms.Append(ents)
	if compactTo > 0 {
		ms.Compact(raftpb.Snapshot{Index: compactTo, Term: stored[compactTo-1], Nodes: []int64{1}})
	}
	l := newLog(ms)
	if len(unstable) > 0 {
		more := make([]raftpb.Entry, len(unstable))
		for i, term := range unstable {
			index := int64(len(stored) + 1 + i)
			more[i] = raftpb.Entry{Term: term, Index: index, Data: []byte(fmt.Sprintf("data%02d", index))}
		}
		l.append(more)
	}
	return l
}

func entryIndexes(ents []raftpb.Entry) []int64 {
	var idx []int64
	for _, e := range ents {
		idx = append(idx, e.Index)
	}
	return idx
}

// requireEntryRange checks the outcome of reading a range of entries: the
// error wantErr, or the indexes want. It reports whether entries came back.
func requireEntryRange(t *testing.T, ents []raftpb.Entry, err error, want []int64, wantErr error) bool {
	t.Helper()
	if wantErr != nil {
		require.ErrorIs(t, err, wantErr)
		return false
	}
	require.NoError(t, err)
	require.Equal(t, want, entryIndexes(ents))
	return true
}

// slice reads [lo, hi) across storage and the unstable entries, refuses
// what was compacted or does not exist, and limits the bytes returned (but
// returns at least one entry).
func TestLogSliceAcrossStorageAndUnstable(t *testing.T) {
	// Storage: 1..5 (term 1), compacted up to 2; unstable: 6..8 (term 2).
	l := logOf(t, []int64{1, 1, 1, 1, 1}, 2, []int64{2, 2, 2})
	require.Equal(t, int64(3), l.firstIndex())
	require.Equal(t, int64(8), l.lastIndex())
	size := int64((&raftpb.Entry{Term: 2, Index: 8, Data: []byte("data08")}).Size()) // every entry's size

	tests := []struct {
		lo, hi, maxBytes int64
		want             []int64
		wantErr          error
	}{
		{2, 4, 0, nil, ErrCompacted},
		{1, 9, 0, nil, ErrCompacted},
		{3, 6, 0, []int64{3, 4, 5}, nil},          // storage only
		{6, 9, 0, []int64{6, 7, 8}, nil},          // unstable only
		{4, 8, 0, []int64{4, 5, 6, 7}, nil},       // spanning
		{3, 9, 0, []int64{3, 4, 5, 6, 7, 8}, nil}, // everything
		{5, 5, 0, nil, nil},
		{9, 9, 0, nil, nil},
		{8, 10, 0, nil, ErrUnavailable},
		{9, 10, 0, nil, ErrUnavailable},
		{3, 9, 2 * size, []int64{3, 4}, nil},    // cut in storage
		{4, 9, 3 * size, []int64{4, 5, 6}, nil}, // cut across
		{6, 9, 2*size + 1, []int64{6, 7}, nil},  // cut in unstable
		{4, 9, 1, []int64{4}, nil},              // at least one
		{7, 9, 1, []int64{7}, nil},              // at least one, unstable
		{3, 9, 100 * size, []int64{3, 4, 5, 6, 7, 8}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d/%d", tc.lo, tc.hi, tc.maxBytes), func(t *testing.T) {
			ents, err := l.slice(tc.lo, tc.hi, tc.maxBytes)
			if !requireEntryRange(t, ents, err, tc.want, tc.wantErr) {
				return
			}
			for _, e := range ents {
				require.Equal(t, fmt.Sprintf("data%02d", e.Index), string(e.Data))
				require.Equal(t, map[bool]int64{true: 1, false: 2}[e.Index <= 5], e.Term)
			}
		})
	}
}

// term answers for the snapshot's index and every entry after it, and
// refuses what was compacted or does not exist.
func TestLogTerm(t *testing.T) {
	l := logOf(t, []int64{1, 1, 2, 2, 3}, 2, []int64{4, 4})
	tests := []struct {
		index, want int64
		wantErr     error
	}{
		{1, 0, ErrCompacted},
		{2, 1, nil}, // the snapshot's
		{3, 2, nil},
		{5, 3, nil},
		{6, 4, nil},
		{7, 4, nil},
		{8, 0, ErrUnavailable},
	}
	for _, tc := range tests {
		got, err := l.term(tc.index)
		if tc.wantErr != nil {
			require.ErrorIs(t, err, tc.wantErr, "term(%d)", tc.index)
			continue
		}
		require.NoError(t, err, "term(%d)", tc.index)
		require.Equal(t, tc.want, got, "term(%d)", tc.index)
	}
	require.Equal(t, int64(4), l.lastTerm())
}

// §5.3: findConflict returns the first entry whose term differs from the
// log's, or that the log lacks; 0 when the log already holds them all.
func TestLogFindConflict(t *testing.T) {
	e := func(index, term int64) raftpb.Entry { return raftpb.Entry{Index: index, Term: term} }
	l := logOf(t, []int64{1, 2, 3}, 0, nil)
	tests := []struct {
		ents []raftpb.Entry
		want int64
	}{
		{nil, 0},
		{[]raftpb.Entry{e(1, 1), e(2, 2), e(3, 3)}, 0},
		{[]raftpb.Entry{e(2, 2), e(3, 3)}, 0},
		{[]raftpb.Entry{e(3, 3)}, 0},
		{[]raftpb.Entry{e(1, 1), e(2, 2), e(3, 3), e(4, 4), e(5, 4)}, 4}, // new entries
		{[]raftpb.Entry{e(2, 2), e(3, 3), e(4, 4)}, 4},
		{[]raftpb.Entry{e(4, 4)}, 4},
		{[]raftpb.Entry{e(1, 4), e(2, 4)}, 1}, // conflicts
		{[]raftpb.Entry{e(2, 1), e(3, 4), e(4, 4)}, 2},
		{[]raftpb.Entry{e(3, 1), e(4, 2), e(5, 4)}, 3},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, l.findConflict(tc.ents), "%v", entryIndexes(tc.ents))
	}
}

// §5.3 (the optimization): findConflictByTerm returns the last index at or
// below i whose term is at most t, with its term, never going below the
// snapshot; it is how both sides skip a whole conflicting term.
func TestLogFindConflictByTerm(t *testing.T) {
	// Snapshot at 2 (term 2); entries 3..7 of terms 3, 3, 4, 4, 5.
	l := logOf(t, []int64{1, 2, 3, 3, 4, 4, 5}, 2, nil)
	tests := []struct {
		i, term             int64
		wantIndex, wantTerm int64
	}{
		{7, 5, 7, 5},
		{7, 9, 7, 5},
		{7, 4, 6, 4},
		{6, 4, 6, 4},
		{7, 3, 4, 3},
		{5, 3, 4, 3},
		{7, 2, 2, 2}, // down to the snapshot
		{7, 1, 2, 2}, // not below it
		{3, 1, 2, 2},
		{12, 4, 6, 4}, // beyond the log: from its last entry
		{12, 9, 7, 5},
	}
	for _, tc := range tests {
		idx, term := l.findConflictByTerm(tc.i, tc.term)
		require.Equal(t, [2]int64{tc.wantIndex, tc.wantTerm}, [2]int64{idx, term}, "findConflictByTerm(%d, %d)", tc.i, tc.term)
	}
}

// §5.3: maybeAppend applies the consistency check on (index, logTerm),
// replaces a conflicting suffix, keeps entries that match, and commits up
// to the leader's commit index but not beyond the last entry it knows to
// match the leader's log. An append that would replace a committed entry
// is refused.
func TestLogMaybeAppend(t *testing.T) {
	e := func(index, term int64) raftpb.Entry { return raftpb.Entry{Index: index, Term: term} }
	tests := []struct {
		name                   string
		index, logTerm, commit int64
		ents                   []raftpb.Entry
		wantOK                 bool
		wantErr                bool
		wantLast, wantCommit   int64
		wantLog                []int64
	}{
		{"match, commit", 3, 3, 3, nil, true, false, 3, 3, []int64{1, 2, 3}},
		{"commit capped by the last new entry", 2, 2, 3, nil, true, false, 2, 2, []int64{1, 2, 3}},
		{"commit capped by the log", 3, 3, 9, nil, true, false, 3, 3, []int64{1, 2, 3}},
		{"commit never lowered", 1, 1, 0, nil, true, false, 1, 1, []int64{1, 2, 3}},
		{"new entries", 3, 3, 5, []raftpb.Entry{e(4, 4), e(5, 4)}, true, false, 5, 5, []int64{1, 2, 3, 4, 4}},
		{"conflict replaced", 2, 2, 4, []raftpb.Entry{e(3, 4), e(4, 4)}, true, false, 4, 4, []int64{1, 2, 4, 4}},
		{"matching prefix keeps the rest", 1, 1, 2, []raftpb.Entry{e(2, 2)}, true, false, 2, 2, []int64{1, 2, 3}},
		{"previous term differs", 3, 2, 3, []raftpb.Entry{e(4, 4)}, false, false, 0, 1, []int64{1, 2, 3}},
		{"previous entry missing", 4, 3, 3, []raftpb.Entry{e(5, 4)}, false, false, 0, 1, []int64{1, 2, 3}},
		{"conflicts with a committed entry", 0, 0, 3, []raftpb.Entry{e(1, 4)}, false, true, 0, 1, []int64{1, 2, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := logOf(t, []int64{1, 2}, 0, []int64{3})
			l.commitTo(1)
			last, ok, err := l.maybeAppend(tc.index, tc.logTerm, tc.commit, tc.ents)
			require.Equal(t, tc.wantErr, err != nil, "err %v", err)
			require.Equal(t, tc.wantOK, ok)
			require.Equal(t, tc.wantLast, last)
			require.Equal(t, tc.wantCommit, l.committed)
			ents, err := l.slice(1, l.lastIndex()+1, 0)
			require.NoError(t, err)
			var terms []int64
			for _, e := range ents {
				terms = append(terms, e.Term)
			}
			require.Equal(t, tc.wantLog, terms)
		})
	}
}

// Invariant: commitTo never lowers the commit index, and a commit beyond
// the last entry is a broken invariant (it panics).
func TestLogCommitToNeverLowers(t *testing.T) {
	l := logOf(t, []int64{1, 1, 1}, 0, nil)
	l.commitTo(2)
	l.commitTo(1)
	require.Equal(t, int64(2), l.committed)
	l.commitTo(3)
	require.Equal(t, int64(3), l.committed)
	require.Panics(t, func() { l.commitTo(4) })
	require.Equal(t, int64(3), l.committed)
}

// §5.4.1: logs compare by the term of their last entries, then by length.
func TestLogIsUpToDate(t *testing.T) {
	l := logOf(t, []int64{1, 2, 2}, 0, nil) // last 3/2
	tests := []struct {
		index, term int64
		want        bool
	}{
		{3, 2, true}, {4, 2, true}, {2, 2, false},
		{1, 3, true}, {9, 1, false}, {0, 0, false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, l.isUpToDate(tc.index, tc.term), "%d/%d", tc.term, tc.index)
	}
}

// stableTo drops persisted entries from the unstable part, and ignores a
// mark that no longer matches the log (the entries were replaced since).
func TestUnstableStableTo(t *testing.T) {
	tests := []struct {
		name        string
		index, term int64
		wantOffset  int64
		wantLen     int
	}{
		{"all", 7, 2, 8, 0},
		{"a prefix", 6, 2, 7, 1},
		{"term mismatch", 6, 1, 5, 3},
		{"before the unstable entries", 4, 1, 5, 3},
		{"beyond them", 8, 2, 5, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := logOf(t, []int64{1, 1, 1, 1}, 0, []int64{2, 2, 2})
			l.unstable.stableTo(tc.index, tc.term)
			require.Equal(t, tc.wantOffset, l.unstable.offset)
			require.Len(t, l.unstable.entries, tc.wantLen)
		})
	}
}

// API.md, Ownership: "The application may keep anything a Ready hands it
// ... the library never modifies or reuses it". The entries of a Ready keep
// their contents after a new leader's conflicting append replaces them,
// whether the Ready was acknowledged (entries in storage) or not yet
// (entries still unstable); so do the entries of a message the node sent.
func TestReadyEntriesKeepContentsAfterConflictingAppend(t *testing.T) {
	for _, advance := range []bool{false, true} {
		t.Run(fmt.Sprintf("advanced=%v", advance), func(t *testing.T) {
			rn := NewRawNode(2, []int64{1, 3}, 10, 1, Seed(2))
			first := []raftpb.Entry{
				{Term: 1, Index: 1, Data: []byte("a")},
				{Term: 1, Index: 2, Data: []byte("b")},
				{Term: 1, Index: 3, Data: []byte("c")},
				{Term: 1, Index: 4, Data: []byte("d")},
			}
			require.NoError(t, rn.Step(raftpb.Message{From: 1, To: 2, Type: raftpb.MsgApp, Term: 1, Entries: first}))
			rd := rn.Ready()
			handed := rd.Entries
			want := []raftpb.Entry{
				{Term: 1, Index: 1, Data: []byte("a")},
				{Term: 1, Index: 2, Data: []byte("b")},
				{Term: 1, Index: 3, Data: []byte("c")},
				{Term: 1, Index: 4, Data: []byte("d")},
			}
			require.Equal(t, want, handed)
			if advance {
				rn.Advance()
			}

			// A leader of term 2 replaces entries 3 and 4, then appends more.
			require.NoError(t, rn.Step(raftpb.Message{From: 3, To: 2, Type: raftpb.MsgApp, Term: 2, Index: 2, LogTerm: 1,
				Entries: []raftpb.Entry{{Term: 2, Index: 3, Data: []byte("X")}}}))
			require.NoError(t, rn.Step(raftpb.Message{From: 3, To: 2, Type: raftpb.MsgApp, Term: 2, Index: 3, LogTerm: 2,
				Entries: []raftpb.Entry{{Term: 2, Index: 4, Data: []byte("Y")}, {Term: 2, Index: 5, Data: []byte("Z")}}}))
			if !advance {
				rn.Advance()
			}
			for rn.HasReady() {
				rd := rn.Ready()
				for _, e := range rd.Entries {
					require.Equal(t, int64(2), e.Term)
				}
				rn.Advance()
			}
			require.Equal(t, want, handed, "a Ready's entries were overwritten")
			require.Equal(t, []int64{1, 1, 2, 2, 2}, paperLogTerms(t, rn))
		})
	}
}

// The same for a leader: entries handed out in its Ready and carried by its
// appends keep their contents after it is deposed and its uncommitted tail
// is replaced.
func TestDeposedLeaderEntriesKeepContents(t *testing.T) {
	rn := paperLeader(t, []int64{1, 2, 3}, 1, []int64{1}) // term 2, entry 2 empty
	require.NoError(t, rn.Step(raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 2}))
	paperTake(rn)
	require.NoError(t, rn.Propose([]byte("p3")))
	require.NoError(t, rn.Propose([]byte("p4")))
	rd := rn.Ready()
	handed := rd.Entries
	apps := paperSelect(rd.Messages, raftpb.MsgApp, 2)
	require.Len(t, apps, 1)
	sent := apps[0].Entries
	want := []raftpb.Entry{{Term: 2, Index: 3, Data: []byte("p3")}, {Term: 2, Index: 4, Data: []byte("p4")}}
	require.Equal(t, want, handed)
	require.Equal(t, want, sent)

	// The new leader of term 3 never had entries 3 and 4.
	require.NoError(t, rn.Step(raftpb.Message{From: 3, To: 1, Type: raftpb.MsgApp, Term: 3, Index: 2, LogTerm: 2,
		Entries: []raftpb.Entry{{Term: 3, Index: 3, Data: []byte("n3")}, {Term: 3, Index: 4, Data: []byte("n4")}}}))
	require.Equal(t, StateFollower, rn.raft.state)
	rn.Advance()
	paperTake(rn)
	require.Equal(t, []int64{1, 2, 3, 3}, paperLogTerms(t, rn))
	require.Equal(t, want, handed, "the leader's Ready entries were overwritten")
	require.Equal(t, want, sent, "the entries of a sent append were overwritten")
}
