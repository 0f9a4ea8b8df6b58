package lincheck

import (
	"errors"
	"testing"

	"github.com/raftly/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// unsafeBound is the number of seeds within which reads served from a
// node's local state, without ReadIndex, must be caught.
const unsafeBound = 10

// The checker can fail: reads served at once from the local state of the
// node asked (a follower behind its leader, a deposed leader) are stale
// now and then, and porcupine must say so within a few seeds.
func TestUnsafeLocalReadsAreCaught(t *testing.T) {
	for seed := uint64(0); seed < unsafeBound; seed++ {
		cfg := config(seed, 3+2*int(seed%2))
		cfg.UnsafeLocalReads = true
		c, err := rafttest.Run(cfg, *flagSteps)
		require.NoError(t, err, "seed %d: a safety checker failed", seed)
		err = Check(c.History())
		if err == nil {
			continue
		}
		var nl *NotLinearizable
		require.True(t, errors.As(err, &nl), "seed %d: %v", seed, err)
		t.Logf("seed %d: reads served without ReadIndex caught after %d seeds (%d operations):\n%v", seed, seed+1, len(c.History()), err)
		return
	}
	t.Fatalf("reads served without ReadIndex were not caught in %d seeds", unsafeBound)
}
