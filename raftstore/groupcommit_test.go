package raftstore

import (
	"sync"
	"testing"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Groups that save at the same time share the log's syncs: Pebble's commit
// pipeline makes the synced commits that arrive while a sync is in
// progress wait for the next one together. Sixteen groups saving at once
// need fewer syncs than Saves. (BenchmarkGroupCommit measures the rates.)
func TestGroupCommit(t *testing.T) {
	const groups, saves = 16, 40
	db, err := Open(t.TempDir(), nil)
	require.NoError(t, err)
	defer db.Close()
	stores := make([]*Store, groups)
	for g := range stores {
		s, _, err := db.Group(uint64(g + 1))
		require.NoError(t, err)
		require.NoError(t, s.Bootstrap([]int64{2, 3}, nil, 0))
		stores[g] = s
	}
	before := db.Stats()
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range stores {
		wg.Go(func() {
			<-start
			for i := int64(1); i <= saves; i++ {
				if err := s.Save(raft.Ready{Entries: mkEnts(i, i, 1), State: raftpb.HardState{Term: 1, Commit: i - 1}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	after := db.Stats()
	commits, syncs := after.Commits-before.Commits, after.WALSyncs-before.WALSyncs
	t.Logf("%d Saves of %d groups at once took %d syncs of the log (%.1f Saves a sync)", commits, groups, syncs, float64(commits)/float64(syncs))
	require.Equal(t, int64(groups*saves), commits)
	require.Less(t, syncs, commits, "no two Saves shared a sync")
}
