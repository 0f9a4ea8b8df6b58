package raftstore

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// mkEnts returns entries lo..hi of term, with data naming index and term.
func mkEnts(lo, hi, term int64) []raftpb.Entry {
	var ents []raftpb.Entry
	for i := lo; i <= hi; i++ {
		ents = append(ents, raftpb.Entry{Index: i, Term: term, Data: []byte(fmt.Sprintf("%d/%d", i, term))})
	}
	return ents
}

// openGroup opens dir and group 1, bootstrapped with peers 1, 2, 3.
func openGroup(t *testing.T, dir string, opts *Options) (*DB, *Store, State) {
	t.Helper()
	db, err := Open(dir, opts)
	require.NoError(t, err)
	s, st, err := db.Group(1)
	require.NoError(t, err)
	if !st.Bootstrapped {
		require.NoError(t, s.Bootstrap([]int64{2, 3}, nil, 0))
	}
	return db, s, st
}

// requireLog checks that s holds exactly want after the snapshot.
func requireLog(t *testing.T, s *Store, snapIndex int64, want []raftpb.Entry) {
	t.Helper()
	require.Equal(t, snapIndex+1, s.FirstIndex())
	require.Equal(t, snapIndex+int64(len(want)), s.LastIndex())
	if len(want) == 0 {
		return
	}
	got, err := s.Entries(snapIndex+1, s.LastIndex()+1, 0)
	require.NoError(t, err)
	require.Equal(t, want, got)
	for _, e := range want {
		tm, err := s.Term(e.Index)
		require.NoError(t, err)
		require.Equal(t, e.Term, tm)
	}
}

var cacheSettings = []struct {
	name string
	opts *Options
}{
	{"cache", nil},
	{"small-cache", &Options{CacheEntries: 3}},
	{"no-cache", &Options{CacheEntries: -1}},
}

func TestSaveAndReopen(t *testing.T) {
	for _, c := range cacheSettings {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db, s, st := openGroup(t, dir, c.opts)
			require.False(t, st.Bootstrapped)
			require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(1, 10, 1), State: raftpb.HardState{Term: 1, Vote: 1, Commit: 3}}))
			requireLog(t, s, 0, mkEnts(1, 10, 1))

			// A conflicting suffix is replaced: entries 9 and 10 go.
			require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(6, 8, 2), State: raftpb.HardState{Term: 2, Commit: 5}}))
			want := append(mkEnts(1, 5, 1), mkEnts(6, 8, 2)...)
			requireLog(t, s, 0, want)
			require.NoError(t, s.SetApplied(5))
			require.NoError(t, db.Close())

			db, s, st = openGroup(t, dir, c.opts)
			require.True(t, st.Bootstrapped)
			require.Nil(t, st.Snapshot)
			require.Equal(t, raftpb.HardState{Term: 2, Commit: 5}, st.HardState)
			require.Equal(t, []int64{2, 3}, st.Peers)
			require.Equal(t, int64(5), st.Applied)
			require.Equal(t, int64(1), st.FirstIndex)
			require.Equal(t, int64(8), st.LastIndex)
			requireLog(t, s, 0, want)

			// Compact, then a snapshot from the leader replaces the log.
			require.NoError(t, s.Compact(raftpb.Snapshot{Index: 4, Nodes: []int64{1, 2, 3}, Data: []byte("sm@4")}))
			requireLog(t, s, 4, want[4:])
			_, err := s.Entries(4, 6, 0)
			require.ErrorIs(t, err, raft.ErrCompacted)
			_, err = s.Term(3)
			require.ErrorIs(t, err, raft.ErrCompacted)
			tm, err := s.Term(4)
			require.NoError(t, err)
			require.Equal(t, int64(1), tm)
			_, err = s.Term(9)
			require.ErrorIs(t, err, raft.ErrUnavailable)

			snap := raftpb.Snapshot{Index: 20, Term: 3, Nodes: []int64{1, 2, 3}, Learners: []int64{4}, Data: []byte("sm@20")}
			require.NoError(t, s.Save(raft.Ready{Snapshot: snap, Entries: mkEnts(21, 22, 3), State: raftpb.HardState{Term: 3, Commit: 20}}))
			requireLog(t, s, 20, mkEnts(21, 22, 3))
			require.NoError(t, db.Close())

			db, s, st = openGroup(t, dir, c.opts)
			require.Equal(t, &snap, st.Snapshot)
			require.Equal(t, []int64{1, 2, 3}, st.Peers)
			require.Equal(t, []int64{4}, st.Learners)
			require.Equal(t, int64(5), st.Applied)
			requireLog(t, s, 20, mkEnts(21, 22, 3))
			require.Equal(t, snap, s.Snapshot())
			require.NoError(t, db.Close())
		})
	}
}

func TestEntriesMaxBytes(t *testing.T) {
	for _, c := range cacheSettings {
		t.Run(c.name, func(t *testing.T) {
			db, s, _ := openGroup(t, t.TempDir(), c.opts)
			defer db.Close()
			all := mkEnts(1, 10, 1)
			require.NoError(t, s.Save(raft.Ready{Entries: all}))
			size := int64(all[0].Size())
			for _, tc := range []struct {
				maxBytes int64
				n        int
			}{{0, 10}, {1, 1}, {size, 1}, {2*size + 1, 2}, {100 * size, 10}} {
				got, err := s.Entries(1, 11, tc.maxBytes)
				require.NoError(t, err)
				require.Equal(t, all[:tc.n], got, "maxBytes %d", tc.maxBytes)
			}
		})
	}
}

// Bad input is refused before anything is written.
func TestSaveRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	db, s, _ := openGroup(t, dir, nil)
	snap := raftpb.Snapshot{Index: 2, Term: 1, Nodes: []int64{1, 2, 3}}
	require.NoError(t, s.Save(raft.Ready{Snapshot: snap, Entries: mkEnts(3, 10, 2), State: raftpb.HardState{Term: 2, Vote: 1, Commit: 6}}))
	before := mkEnts(3, 10, 2)

	bad := map[string]raft.Ready{
		"gap inside the entries":           {Entries: []raftpb.Entry{{Index: 11, Term: 2}, {Index: 13, Term: 2}}},
		"terms going down":                 {Entries: []raftpb.Entry{{Index: 11, Term: 3}, {Index: 12, Term: 2}}},
		"term 0":                           {Entries: []raftpb.Entry{{Index: 11}}},
		"gap after the log":                {Entries: mkEnts(12, 13, 2)},
		"below the snapshot":               {Entries: mkEnts(2, 4, 2)},
		"replacing committed entries":      {Entries: mkEnts(6, 7, 3)},
		"term below the entry before":      {Entries: mkEnts(11, 11, 1)},
		"commit beyond the log":            {State: raftpb.HardState{Term: 2, Vote: 1, Commit: 11}},
		"commit beyond the replaced log":   {Entries: mkEnts(8, 8, 3), State: raftpb.HardState{Term: 3, Commit: 9}},
		"HardState term going back":        {State: raftpb.HardState{Term: 1, Commit: 6}},
		"vote changing within a term":      {State: raftpb.HardState{Term: 2, Vote: 3, Commit: 6}},
		"commit going back":                {State: raftpb.HardState{Term: 2, Vote: 1, Commit: 5}},
		"snapshot older than the stored":   {Snapshot: raftpb.Snapshot{Index: 1, Term: 1, Nodes: []int64{1}}},
		"snapshot equal to the stored":     {Snapshot: snap},
		"snapshot below the commit":        {Snapshot: raftpb.Snapshot{Index: 5, Term: 2, Nodes: []int64{1}}},
		"snapshot without voters":          {Snapshot: raftpb.Snapshot{Index: 30, Term: 2}},
		"entries not following a snapshot": {Snapshot: raftpb.Snapshot{Index: 30, Term: 2, Nodes: []int64{1}}, Entries: mkEnts(32, 33, 2)},
	}
	for name, rd := range bad {
		err := s.Save(rd)
		require.ErrorIs(t, err, ErrInvalid, name)
		t.Logf("%s: %v", name, err)
		requireLog(t, s, 2, before)
	}
	require.ErrorIs(t, s.Compact(raftpb.Snapshot{Index: 7, Nodes: []int64{1}}), ErrInvalid, "beyond commit")
	require.ErrorIs(t, s.Compact(raftpb.Snapshot{Index: 2, Nodes: []int64{1}}), ErrInvalid, "not above the snapshot")
	require.ErrorIs(t, s.Compact(raftpb.Snapshot{Index: 5, Term: 1, Nodes: []int64{1}}), ErrInvalid, "wrong term")
	require.ErrorIs(t, s.Compact(raftpb.Snapshot{Index: 5}), ErrInvalid, "no voters")
	require.ErrorIs(t, s.SetApplied(7), ErrInvalid, "applied beyond commit")
	require.NoError(t, s.SetApplied(5))
	require.ErrorIs(t, s.SetApplied(4), ErrInvalid, "applied going back from the staged index, not yet written")
	require.NoError(t, s.SetApplied(5), "the staged index again")
	require.ErrorIs(t, s.Bootstrap([]int64{5}, nil, 0), ErrInvalid, "bootstrapped differently")
	require.NoError(t, s.Bootstrap([]int64{2, 3}, nil, 0), "the same bootstrap again")
	require.NoError(t, db.Close())

	_, s, st := openGroup(t, dir, nil)
	require.Equal(t, raftpb.HardState{Term: 2, Vote: 1, Commit: 6}, st.HardState)
	require.Equal(t, int64(5), st.Applied, "the staged applied index, written by Close")
	requireLog(t, s, 2, before)

	// A group that was never bootstrapped takes no Save.
	s2, _, err := s.db.Group(2)
	require.NoError(t, err)
	require.ErrorIs(t, s2.Save(raft.Ready{Entries: mkEnts(1, 1, 1)}), ErrNotBootstrapped)
	require.ErrorIs(t, s2.Bootstrap([]int64{1}, []int64{1}, 0), ErrInvalid, "a peer and a learner")
	require.NoError(t, s.db.Close())
	require.ErrorIs(t, s.Save(raft.Ready{Entries: mkEnts(11, 11, 2)}), ErrClosed)
	_, err = s.Entries(3, 4, 0)
	require.ErrorIs(t, err, ErrClosed)
}

// Groups share one DB without seeing each other, and a group is opened once.
func TestGroupsAreSeparate(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	require.NoError(t, err)
	for id := uint64(1); id <= 3; id++ {
		s, _, err := db.Group(id)
		require.NoError(t, err)
		require.NoError(t, s.Bootstrap([]int64{int64(id)}, nil, 0))
		require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(1, int64(id), int64(id))}))
	}
	_, _, err = db.Group(2)
	require.Error(t, err)
	require.NoError(t, db.Close())

	db, err = Open(dir, nil)
	require.NoError(t, err)
	defer db.Close()
	for id := uint64(3); id >= 1; id-- {
		s, st, err := db.Group(id)
		require.NoError(t, err)
		require.Equal(t, []int64{int64(id)}, st.Peers)
		requireLog(t, s, 0, mkEnts(1, int64(id), int64(id)))
	}
}

// Readers see the log before or after each write, never an index whose
// content a write is changing: a node's goroutine reads while the
// application's loop writes.
func TestReadsDuringWrites(t *testing.T) {
	for _, c := range cacheSettings {
		t.Run(c.name, func(t *testing.T) {
			db, s, _ := openGroup(t, t.TempDir(), c.opts)
			defer db.Close()
			var wg sync.WaitGroup
			done := make(chan struct{})
			var bad error
			var reads int
			wg.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					lo, hi := s.FirstIndex(), s.LastIndex()+1
					ents, err := s.Entries(lo, hi, 0)
					if errors.Is(err, raft.ErrCompacted) || errors.Is(err, raft.ErrUnavailable) {
						continue
					}
					if err != nil {
						bad = err
						return
					}
					reads++
					for k, e := range ents {
						if e.Index != lo+int64(k) || string(e.Data) != fmt.Sprintf("%d/%d", e.Index, e.Term) ||
							(k > 0 && e.Term < ents[k-1].Term) {
							bad = fmt.Errorf("read [%d, %d): entry %d is %v", lo, hi, k, e)
							return
						}
					}
				}
			})
			term, last, commit := int64(1), int64(0), int64(0)
			for round := range 200 {
				switch {
				case round%7 == 6 && last > 10:
					// Replace a suffix with a later term.
					term++
					from := last - 4
					require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(from, from+1, term), State: raftpb.HardState{Term: term, Commit: commit}}))
					last = from + 1
				case round%11 == 10 && commit > s.FirstIndex():
					require.NoError(t, s.Compact(raftpb.Snapshot{Index: commit, Nodes: []int64{1}}))
				default:
					commit = max(commit, last-4)
					require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(last+1, last+5, term), State: raftpb.HardState{Term: term, Commit: commit}}))
					last += 5
				}
			}
			close(done)
			wg.Wait()
			require.NoError(t, bad)
			require.NotZero(t, reads, "the reader checked nothing")
			t.Logf("%d consistent reads", reads)
		})
	}
}

// TestCommitOnlySaveDoesNotSync: a Save that only raises the commit index
// costs no sync; one that changes the term or vote, or appends, does.
func TestCommitOnlySaveDoesNotSync(t *testing.T) {
	db, s, _ := openGroup(t, t.TempDir(), nil)
	defer db.Close()
	require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(1, 3, 1), State: raftpb.HardState{Term: 1, Vote: 1, Commit: 1}}))
	syncs := func(rd raft.Ready) int64 {
		before := db.Stats().WALSyncs
		require.NoError(t, s.Save(rd))
		return db.Stats().WALSyncs - before
	}
	require.Zero(t, syncs(raft.Ready{State: raftpb.HardState{Term: 1, Vote: 1, Commit: 3}}), "commit only")
	require.Equal(t, int64(1), syncs(raft.Ready{State: raftpb.HardState{Term: 2, Commit: 3}}), "new term")
	require.Equal(t, int64(1), syncs(raft.Ready{State: raftpb.HardState{Term: 2, Vote: 2, Commit: 3}}), "new vote")
	require.Equal(t, int64(1), syncs(raft.Ready{Entries: mkEnts(4, 4, 2)}), "entries")
}
