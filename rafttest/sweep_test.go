package rafttest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// SweepSeeds runs the shard's seeds in order, each once, up to the limit,
// and reports them all covered.
func TestSweepSeeds(t *testing.T) {
	var mu sync.Mutex
	var seen []uint64
	covered := SweepSeeds(10, 1, 3, 5, time.Now().Add(time.Hour), func(seed uint64) {
		mu.Lock()
		seen = append(seen, seed)
		mu.Unlock()
	})
	require.Equal(t, 5, covered)
	require.ElementsMatch(t, []uint64{11, 14, 17, 20, 23}, seen)

	covered = SweepSeeds(0, 0, 1, 0, time.Now().Add(-time.Second), func(uint64) { t.Error("ran after the deadline") })
	require.Zero(t, covered)
}

func TestParseShard(t *testing.T) {
	shard, shards, err := ParseShard("2/4")
	require.NoError(t, err)
	require.Equal(t, [2]uint64{2, 4}, [2]uint64{shard, shards})
	for _, bad := range []string{"4/4", "1/0", "x", ""} {
		_, _, err := ParseShard(bad)
		require.Error(t, err, "%q", bad)
	}
}
