package lincheck

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/raftly/raft/rafttest"
)

// TestSoak sweeps seeds of TestLinearizable for a given time or number of
// seeds, sharded and resumable; it runs only when -soak is given:
//
//	cd rafttest/lincheck
//	go test -run TestSoak -soak 30m [-seeds 100000] [-first 0] [-shard 2/4]
//	    [-steps 2500] [-nodes 3,5] [-timeout 0]
//
// Shard i/n runs the seeds equal to i modulo n. The report gives the seeds
// covered, what their histories held, the violations found (each with the
// command that replays it), and the -first that resumes the sweep.
var (
	flagSoak  = flag.Duration("soak", 0, "run TestSoak for this long (0: TestSoak is skipped)")
	flagShard = flag.String("shard", "0/1", "TestSoak runs the seeds equal to i modulo n, for -shard i/n")
)

func TestSoak(t *testing.T) {
	if *flagSoak <= 0 {
		t.Skip("soak: run with -soak <duration>")
	}
	shard, shards, err := rafttest.ParseShard(*flagShard)
	if err != nil {
		t.Fatalf("-shard: %v", err)
	}
	nodes := parseNodes(t)
	limit := *flagSeeds // 0: no limit but time
	deadline := time.Now().Add(*flagSoak)
	start := time.Now()

	var tot totals
	covered := rafttest.SweepSeeds(*flagFirst, shard, shards, limit, deadline, func(seed uint64) {
		for _, size := range sizesOf(seed, nodes) {
			tot.add(runSeed(seed, size, false))
		}
	})
	for _, f := range tot.failures {
		t.Error(f)
	}
	t.Logf("soak: shard %d/%d, %d seeds from %d (%d random steps each): %s; %v; resume with -first %d",
		shard, shards, covered, *flagFirst, *flagSteps, &tot, time.Since(start).Round(time.Second), *flagFirst+uint64(covered)*shards)
	if len(tot.failures) > 0 {
		var seeds []string
		for _, f := range tot.failures {
			seeds = append(seeds, strings.SplitN(f, ":", 2)[0])
		}
		t.Logf("failing seeds:\n%s", strings.Join(seeds, "\n"))
	}
}
