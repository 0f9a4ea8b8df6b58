package raft

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Unit tests of MemoryStorage (storage.go).

// storageOf returns a storage holding entries 1..len(terms), each with
// data "e<index>", compacted up to compactTo (0: not compacted).
func storageOf(terms []int64, compactTo int64) *MemoryStorage {
	ms := NewMemoryStorage()
	ents := paperEnts(terms...)
	for i := range ents {
		ents[i].Data = []byte(fmt.Sprintf("e%d", ents[i].Index))
	}
	ms.Append(ents)
	if compactTo > 0 {
		ms.Compact(raftpb.Snapshot{Index: compactTo, Term: terms[compactTo-1], Nodes: []int64{1, 2, 3}, Data: []byte("snap")})
	}
	return ms
}

// Entries returns [lo, hi), refuses what was compacted (the snapshot's own
// index included) or does not exist yet, and limits the bytes returned
// while returning at least one entry.
func TestMemoryStorageEntries(t *testing.T) {
	ms := storageOf([]int64{1, 1, 2, 2, 3, 3}, 2) // entries 3..6 kept
	size := int64((&raftpb.Entry{Term: 3, Index: 6, Data: []byte("e6")}).Size())
	tests := []struct {
		lo, hi, maxBytes int64
		want             []int64
		wantErr          error
	}{
		{1, 4, 0, nil, ErrCompacted},
		{2, 4, 0, nil, ErrCompacted},
		{3, 4, 0, []int64{3}, nil},
		{3, 7, 0, []int64{3, 4, 5, 6}, nil},
		{4, 6, 0, []int64{4, 5}, nil},
		{5, 5, 0, nil, nil},
		{7, 7, 0, nil, nil},
		{6, 8, 0, nil, ErrUnavailable},
		{3, 7, 2 * size, []int64{3, 4}, nil},
		{3, 7, 2*size - 1, []int64{3}, nil},
		{3, 7, 1, []int64{3}, nil},
		{3, 7, 4 * size, []int64{3, 4, 5, 6}, nil},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%d-%d/%d", tc.lo, tc.hi, tc.maxBytes), func(t *testing.T) {
			ents, err := ms.Entries(tc.lo, tc.hi, tc.maxBytes)
			if !requireEntryRange(t, ents, err, tc.want, tc.wantErr) {
				return
			}
			for _, e := range ents {
				require.Equal(t, fmt.Sprintf("e%d", e.Index), string(e.Data))
			}
			require.Equal(t, len(ents), cap(ents), "a returned slice has no room to be appended into")
		})
	}
}

// Term answers from the snapshot's index to the last entry.
func TestMemoryStorageTerm(t *testing.T) {
	ms := storageOf([]int64{1, 1, 2, 2, 3, 3}, 2)
	tests := []struct {
		index, want int64
		wantErr     error
	}{
		{1, 0, ErrCompacted},
		{2, 1, nil}, // the snapshot's term
		{3, 2, nil},
		{6, 3, nil},
		{7, 0, ErrUnavailable},
	}
	for _, tc := range tests {
		got, err := ms.Term(tc.index)
		if tc.wantErr != nil {
			require.ErrorIs(t, err, tc.wantErr, "Term(%d)", tc.index)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "Term(%d)", tc.index)
	}
	require.Equal(t, int64(3), ms.FirstIndex())
	require.Equal(t, int64(6), ms.LastIndex())

	empty := NewMemoryStorage()
	require.Equal(t, int64(1), empty.FirstIndex())
	require.Equal(t, int64(0), empty.LastIndex())
	term, err := empty.Term(0)
	require.NoError(t, err)
	require.Zero(t, term)
}

// Append adds entries after the last, replaces a suffix from the first
// overlapping index on, skips what the snapshot covers, and refuses a gap.
func TestMemoryStorageAppend(t *testing.T) {
	e := func(index, term int64) raftpb.Entry { return raftpb.Entry{Index: index, Term: term} }
	tests := []struct {
		name      string
		ents      []raftpb.Entry
		wantTerms []int64 // of entries 3, 4, ...
		wantPanic bool
	}{
		{"nothing", nil, []int64{2, 2, 3}, false},
		{"after the last", []raftpb.Entry{e(6, 3), e(7, 4)}, []int64{2, 2, 3, 3, 4}, false},
		{"same entries", []raftpb.Entry{e(3, 2), e(4, 2), e(5, 3)}, []int64{2, 2, 3}, false},
		{"replaces a suffix", []raftpb.Entry{e(4, 5)}, []int64{2, 5}, false},
		{"replaces and extends", []raftpb.Entry{e(5, 5), e(6, 5), e(7, 5)}, []int64{2, 2, 5, 5, 5}, false},
		{"from the first kept", []raftpb.Entry{e(3, 6)}, []int64{6}, false},
		{"prefix covered by the snapshot", []raftpb.Entry{e(1, 1), e(2, 1), e(3, 7), e(4, 7)}, []int64{7, 7}, false},
		{"wholly covered by the snapshot", []raftpb.Entry{e(1, 1), e(2, 1)}, []int64{2, 2, 3}, false},
		{"a gap", []raftpb.Entry{e(7, 4)}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms := storageOf([]int64{1, 1, 2, 2, 3}, 2) // entries 3..5 kept
			if tc.wantPanic {
				require.Panics(t, func() { ms.Append(tc.ents) })
				return
			}
			ms.Append(tc.ents)
			require.Equal(t, int64(3), ms.FirstIndex())
			require.Equal(t, int64(2+len(tc.wantTerms)), ms.LastIndex())
			ents, err := ms.Entries(3, ms.LastIndex()+1, 0)
			require.NoError(t, err)
			var terms []int64
			for i, e := range ents {
				require.Equal(t, int64(3+i), e.Index)
				terms = append(terms, e.Term)
			}
			require.Equal(t, tc.wantTerms, terms)
		})
	}
}

// Entries handed out keep their contents when Append later replaces the
// entries they came from, or appends after them.
func TestMemoryStorageAppendDoesNotWriteIntoHandedOutEntries(t *testing.T) {
	ms := storageOf([]int64{1, 1, 1, 1}, 0)
	handed, err := ms.Entries(1, 5, 0)
	require.NoError(t, err)
	want := append([]raftpb.Entry(nil), handed...)

	ms.Append([]raftpb.Entry{{Index: 3, Term: 2, Data: []byte("new3")}})
	ms.Append([]raftpb.Entry{{Index: 4, Term: 2, Data: []byte("new4")}})
	require.Equal(t, want, handed)
	got, err := ms.Entries(1, 5, 0)
	require.NoError(t, err)
	require.Equal(t, "new3", string(got[2].Data))
	require.Equal(t, "new4", string(got[3].Data))
}

// Compact records the snapshot, keeps the entries after it, and releases
// the compacted prefix: the chunks it covers whole are dropped (with the
// entries' data). Entries handed out before keep their contents. Compacting
// outside the stored log is a broken invariant.
func TestMemoryStorageCompact(t *testing.T) {
	ms := NewMemoryStorage()
	ms.chunkSize = 3
	ms.Append(storageOf([]int64{1, 1, 2, 2, 3, 3, 3}, 0).mustEntries(1, 8))
	require.Len(t, ms.chunks, 3)
	entry5 := &ms.chunks[1][1]
	handed, err := ms.Entries(1, 8, 0)
	require.NoError(t, err)
	want := append([]raftpb.Entry(nil), handed...)

	snap := raftpb.Snapshot{Index: 4, Term: 2, Nodes: []int64{1, 2, 3}, Data: []byte("state")}
	ms.Compact(snap)
	require.Equal(t, snap, ms.Snapshot())
	require.Equal(t, int64(5), ms.FirstIndex())
	require.Equal(t, int64(7), ms.LastIndex())
	term, err := ms.Term(4)
	require.NoError(t, err)
	require.Equal(t, int64(2), term)
	_, err = ms.Entries(4, 6, 0)
	require.ErrorIs(t, err, ErrCompacted)
	kept, err := ms.Entries(5, 8, 0)
	require.NoError(t, err)
	require.Equal(t, []int64{5, 6, 7}, entryIndexes(kept))

	require.Len(t, ms.chunks, 2, "the first chunk, entries 1-3, is released")
	require.NotSame(t, entry5, &ms.chunks[0][0], "entry 5 still sits in the array that holds entry 4")
	require.Equal(t, want[4:], kept)

	// Appending after compaction writes into neither array handed out.
	ms.Append([]raftpb.Entry{{Index: 6, Term: 4, Data: []byte("x")}})
	require.Equal(t, want, handed)
	require.Equal(t, "e6", string(kept[1].Data))

	require.Panics(t, func() { ms.Compact(raftpb.Snapshot{Index: 4, Term: 2}) }, "not above the snapshot")
	require.Panics(t, func() { ms.Compact(raftpb.Snapshot{Index: 3, Term: 2}) }, "below the snapshot")
	require.Panics(t, func() { ms.Compact(raftpb.Snapshot{Index: 7, Term: 4}) }, "beyond the last entry")
	ms.Compact(raftpb.Snapshot{Index: 6, Term: 4, Nodes: []int64{1}})
	require.Equal(t, int64(6), ms.LastIndex())
	require.Empty(t, ms.chunks)
}

func (ms *MemoryStorage) mustEntries(lo, hi int64) []raftpb.Entry {
	ents, err := ms.Entries(lo, hi, 0)
	if err != nil {
		panic(err)
	}
	return ents
}

// MemoryStorage with chunks of a few entries behaves exactly as a plain
// slice of entries would, whatever the appends (overlapping, truncating),
// compactions and reads, and nothing it handed out ever changes.
func TestMemoryStorageMatchesAPlainLog(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 0))
		ms := NewMemoryStorage()
		ms.chunkSize = 1 + rng.IntN(4)
		var (
			snapIndex int64
			model     []raftpb.Entry // entries after snapIndex
			handed    [][]raftpb.Entry
			copies    [][]raftpb.Entry
			term      int64 = 1
		)
		for step := range 300 {
			last := snapIndex + int64(len(model))
			switch op := rng.IntN(10); {
			case op < 5: // append, possibly replacing a suffix
				first := snapIndex + 1 + rng.Int64N(int64(len(model))+1)
				term++
				var ents []raftpb.Entry
				for i := range 1 + rng.IntN(6) {
					idx := first + int64(i)
					ents = append(ents, raftpb.Entry{Index: idx, Term: term, Data: []byte(fmt.Sprintf("%d/%d", idx, term))})
				}
				ms.Append(ents)
				model = append(slices.Clone(model[:first-snapIndex-1]), ents...)
			case op < 6 && last > snapIndex: // compact
				at := snapIndex + 1 + rng.Int64N(last-snapIndex)
				snap := raftpb.Snapshot{Index: at, Term: model[at-snapIndex-1].Term}
				ms.Compact(snap)
				model = slices.Clone(model[at-snapIndex:])
				snapIndex = at
			case last > snapIndex: // read
				lo := snapIndex + 1 + rng.Int64N(last-snapIndex)
				hi := lo + 1 + rng.Int64N(last-lo+1)
				var maxBytes int64
				if rng.IntN(2) == 0 {
					maxBytes = rng.Int64N(60)
				}
				got, err := ms.Entries(lo, hi, maxBytes)
				require.NoError(t, err, "seed %d step %d", seed, step)
				want := limitSize(model[lo-snapIndex-1:hi-snapIndex-1], maxBytes)
				require.Equal(t, want, got, "seed %d step %d: Entries(%d, %d, %d)", seed, step, lo, hi, maxBytes)
				require.Equal(t, len(got), cap(got), "seed %d step %d: room past the result is held", seed, step)
				handed = append(handed, got)
				copies = append(copies, slices.Clone(got))
			}
			require.Equal(t, snapIndex+int64(len(model)), ms.LastIndex(), "seed %d step %d", seed, step)
			for i := snapIndex; i <= ms.LastIndex(); i++ {
				want := int64(0)
				if i == snapIndex {
					want = ms.Snapshot().Term
				} else {
					want = model[i-snapIndex-1].Term
				}
				got, err := ms.Term(i)
				require.NoError(t, err)
				require.Equal(t, want, got, "seed %d step %d: Term(%d)", seed, step, i)
			}
		}
		require.Equal(t, copies, handed, "seed %d: a slice handed out changed", seed)
	}
}

// ApplySnapshot replaces the whole log: the entries after the snapshot
// arrive by Append.
func TestMemoryStorageApplySnapshot(t *testing.T) {
	ms := storageOf([]int64{1, 1, 2, 2}, 0)
	handed, err := ms.Entries(1, 5, 0)
	require.NoError(t, err)
	want := append([]raftpb.Entry(nil), handed...)

	snap := raftpb.Snapshot{Index: 10, Term: 5, Nodes: []int64{1, 2, 3}, Learners: []int64{4}, Data: []byte("state")}
	ms.ApplySnapshot(snap)
	require.Equal(t, snap, ms.Snapshot())
	require.Equal(t, int64(11), ms.FirstIndex())
	require.Equal(t, int64(10), ms.LastIndex())
	term, err := ms.Term(10)
	require.NoError(t, err)
	require.Equal(t, int64(5), term)
	_, err = ms.Term(4)
	require.ErrorIs(t, err, ErrCompacted)
	_, err = ms.Entries(4, 5, 0)
	require.ErrorIs(t, err, ErrCompacted)

	ms.Append([]raftpb.Entry{{Index: 11, Term: 5}, {Index: 12, Term: 6}})
	require.Equal(t, int64(12), ms.LastIndex())
	term, err = ms.Term(12)
	require.NoError(t, err)
	require.Equal(t, int64(6), term)
	require.Equal(t, want, handed)

	// A snapshot behind the stored log replaces it all the same.
	ms.ApplySnapshot(raftpb.Snapshot{Index: 3, Term: 2, Nodes: []int64{1}})
	require.Equal(t, int64(3), ms.LastIndex())
	require.Equal(t, int64(4), ms.FirstIndex())
}

// limitSize returns the longest prefix whose encoded size fits in maxBytes,
// at least one entry; 0 means no limit.
func TestLimitSize(t *testing.T) {
	ents := []raftpb.Entry{
		{Index: 1, Term: 1, Data: []byte("aa")},
		{Index: 2, Term: 1, Data: []byte("bb")},
		{Index: 3, Term: 1, Data: []byte("cc")},
	}
	s := int64(ents[0].Size())
	tests := []struct {
		maxBytes int64
		want     int
	}{
		{0, 3}, {1, 1}, {s, 1}, {2*s - 1, 1}, {2 * s, 2}, {3*s - 1, 2}, {3 * s, 3}, {100 * s, 3},
	}
	for _, tc := range tests {
		require.Len(t, limitSize(ents, tc.maxBytes), tc.want, "maxBytes %d", tc.maxBytes)
	}
	require.Empty(t, limitSize(nil, 5))
}
