package lincheck

import (
	"flag"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
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
	var shard, shards uint64
	if _, err := fmt.Sscanf(*flagShard, "%d/%d", &shard, &shards); err != nil || shards == 0 || shard >= shards {
		t.Fatalf("-shard %q: want i/n with 0 <= i < n", *flagShard)
	}
	nodes := parseNodes(t)
	limit := *flagSeeds // 0: no limit but time
	deadline := time.Now().Add(*flagSoak)
	start := time.Now()

	// Seeds are handed out in order; done[k] marks the k-th seed of the
	// shard finished, so that the sweep resumes after the last seed below
	// which every seed is done.
	var (
		mu   sync.Mutex
		next int
		done []bool
		tot  totals
	)
	seedAt := func(k int) uint64 { return *flagFirst + shard + uint64(k)*shards }
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				mu.Lock()
				if time.Now().After(deadline) || (limit > 0 && next >= limit) {
					mu.Unlock()
					return
				}
				k := next
				next++
				done = append(done, false)
				mu.Unlock()
				seed := seedAt(k)
				for _, size := range sizesOf(seed, nodes) {
					tot.add(runSeed(seed, size, false))
				}
				mu.Lock()
				done[k] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	covered := 0
	for covered < len(done) && done[covered] {
		covered++
	}
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
