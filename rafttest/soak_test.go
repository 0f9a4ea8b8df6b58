package rafttest

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSoak sweeps seeds for a given time or number of seeds, sharded and
// resumable; it runs only when -soak is given:
//
//	go test ./rafttest -run TestSoak -soak 30m [-seeds 100000] [-first 0]
//	    [-shard 2/4] [-steps 2000] [-nodes 3,5,7] [-timeout 0]
//
// Shard i/n runs the seeds equal to i modulo n. The report gives the seeds
// covered, the violations found (with their seeds), and the -first that
// resumes the sweep where it stopped.
var (
	flagSoak  = flag.Duration("soak", 0, "run TestSoak for this long (0: TestSoak is skipped)")
	flagShard = flag.String("shard", "0/1", "TestSoak runs the seeds equal to i modulo n, for -shard i/n")
)

func TestSoak(t *testing.T) {
	if *flagSoak <= 0 {
		t.Skip("soak: run with -soak <duration>")
	}
	shard, shards, err := ParseShard(*flagShard)
	if err != nil {
		t.Fatalf("-shard: %v", err)
	}
	sizes := clusterSizes(t)
	limit := *flagSeeds // 0: no limit but time
	deadline := time.Now().Add(*flagSoak)
	start := time.Now()

	var (
		mu         sync.Mutex
		failures   []string
		steps      int64
		violations int
	)
	covered := SweepSeeds(*flagFirst, shard, shards, limit, deadline, func(seed uint64) {
		var n int64
		var errs []string
		for _, size := range sizes {
			c, err := Run(randomConfig(seed, size), *flagSteps)
			n += int64(c.Steps())
			if err != nil {
				errs = append(errs, fmt.Sprintf("seed %d, %d nodes: %v\nreplay: go test ./rafttest -run 'TestRandom$' -seed %d -nodes %d -steps %d",
					seed, size, err, seed, size, *flagSteps))
			}
		}
		mu.Lock()
		steps += n
		violations += len(errs)
		failures = append(failures, errs...)
		mu.Unlock()
	})
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("soak: shard %d/%d, %d seeds from %d (sizes %v, %d random steps each), %d steps in all, %d violations, %v; resume with -first %d",
		shard, shards, covered, *flagFirst, sizes, *flagSteps, steps, violations,
		time.Since(start).Round(time.Second), *flagFirst+uint64(covered)*shards)
	if len(failures) > 0 {
		t.Logf("failing seeds:\n%s", strings.Join(failingSeeds(failures), "\n"))
	}
}

func failingSeeds(failures []string) []string {
	var out []string
	for _, f := range failures {
		out = append(out, strings.SplitN(f, ":", 2)[0])
	}
	return out
}
