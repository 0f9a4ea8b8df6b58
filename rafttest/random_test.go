package rafttest

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftly/raft"
)

// go test ./rafttest -run Random                      the default sweep
// go test ./rafttest -run Random -seed 17 -nodes 5    replay one seed
// go test ./rafttest -run Random -seeds 5000 -steps 4000 -nodes 3,5,7
var (
	flagSeed  = flag.Int64("seed", -1, "replay this one seed in TestRandom")
	flagSeeds = flag.Int("seeds", 0, "number of seeds TestRandom runs per cluster size (default 500; 100 under -race, 50 with -short)")
	flagFirst = flag.Uint64("first", 0, "first seed of TestRandom's range")
	flagSteps = flag.Int("steps", 2000, "random steps per seed in TestRandom")
	flagNodes = flag.String("nodes", "3,5", "comma-separated cluster sizes (founding voters) for TestRandom")
	flagDump  = flag.String("dump", "", "write the whole trace of a failing seed of TestRandom to this file")
)

func defaultSeeds() int {
	switch {
	case *flagSeeds > 0:
		return *flagSeeds
	case raceEnabled:
		return 100
	case testing.Short():
		return 50
	}
	return 500
}

func clusterSizes(t *testing.T) []int {
	var sizes []int
	for _, f := range strings.Split(*flagNodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			t.Fatalf("-nodes %q: want a comma-separated list of cluster sizes", *flagNodes)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// randomConfig is the configuration of one seed of TestRandom: most seeds
// run the defaults; some turn protections off on some nodes, limit flow
// control, start with a learner, or serve reads under a lease. Every
// other seed sends a leader's appends before persisting them.
func randomConfig(seed uint64, voters int) Config {
	cfg := Config{Seed: seed, Voters: voters, Faults: FaultProfiles[1], SendEarly: seed/8%2 == 1}
	switch seed % 8 {
	case 3:
		cfg.Learners = 1
	case 4:
		// Reads served under a lease, with clocks that do not drift.
		cfg.Options = func(int64) []raft.Option { return []raft.Option{raft.LeaseReads()} }
		cfg.SteadyClocks = true
	case 5:
		// Pre-vote off on the even nodes: their higher terms disturb the
		// others, but must not win with a stale log.
		cfg.Options = func(id int64) []raft.Option {
			if id%2 == 0 {
				return []raft.Option{raft.WithoutPreVote()}
			}
			return nil
		}
	case 6:
		cfg.Options = func(int64) []raft.Option {
			return []raft.Option{raft.MaxMsgBytes(60), raft.MaxInflight(2), raft.MaxUncommittedBytes(400)}
		}
	case 7:
		// Plain Raft: neither pre-vote nor check-quorum.
		cfg.Options = func(int64) []raft.Option {
			return []raft.Option{raft.WithoutPreVote(), raft.WithoutCheckQuorum()}
		}
	}
	return cfg
}

// TestRandom runs random interleavings of everything a cluster goes
// through, checking Raft's safety properties on every step and liveness
// at the end of each seed.
func TestRandom(t *testing.T) {
	sizes := clusterSizes(t)
	var seeds []uint64
	if *flagSeed >= 0 {
		seeds = []uint64{uint64(*flagSeed)}
	} else {
		for i := range defaultSeeds() {
			seeds = append(seeds, *flagFirst+uint64(i))
		}
	}
	const chunk = 10
	var failures, runs, steps, compactions, restores, idle atomic.Int64
	var reads, transfers atomic.Int64
	start := time.Now()
	t.Run("sweep", func(t *testing.T) {
		for _, size := range sizes {
			for lo := 0; lo < len(seeds); lo += chunk {
				part := seeds[lo:min(lo+chunk, len(seeds))]
				name := fmt.Sprintf("nodes=%d/seeds=%d..%d", size, part[0], part[len(part)-1])
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					for _, seed := range part {
						c, err := Run(randomConfig(seed, size), *flagSteps)
						runs.Add(1)
						steps.Add(int64(c.Steps()))
						if err != nil {
							failures.Add(1)
							reportFailure(t, c, err, size)
						}
						// Every run compacts, so that every run also
						// exercises snapshots; except, rarely, one whose
						// cluster committed next to nothing (a storm of
						// crashes, partitions throughout).
						st := c.Stats()
						if st.Compactions == 0 {
							idle.Add(1)
							if st.Committed >= idleCommits {
								t.Errorf("seed %d, %d nodes: the run committed %d entries but never compacted", seed, size, st.Committed)
							}
						}
						compactions.Add(int64(st.Compactions))
						restores.Add(int64(st.Restores))
						reads.Add(int64(st.ReadsServed))
						transfers.Add(int64(st.Transfers))
					}
				})
			}
		}
	})
	if k, n := idle.Load(), runs.Load(); k > 0 && k*200 > n {
		t.Errorf("%d of %d runs never compacted: more than 0.5%%", k, n)
	}
	t.Logf("%d runs (%d seeds x sizes %v, %d random steps each), %d steps in all with the liveness tails, %d compactions (%d runs without), %d snapshots restored from a leader, %d reads served, %d leadership transfers, %d violations, %v",
		runs.Load(), len(seeds), sizes, *flagSteps, steps.Load(), compactions.Load(), idle.Load(), restores.Load(), reads.Load(), transfers.Load(), failures.Load(), time.Since(start).Round(time.Millisecond))
}

// idleCommits: a run that committed fewer entries may not compact.
const idleCommits = 50

func reportFailure(t *testing.T, c *Cluster, err error, size int) {
	t.Helper()
	if *flagDump != "" {
		trace := strings.Join(c.Trace(0), "\n") + "\n"
		if werr := os.WriteFile(*flagDump, []byte(trace), 0o644); werr != nil {
			t.Logf("writing %s: %v", *flagDump, werr)
		}
	}
	t.Errorf("%v\nreplay: go test ./rafttest -run 'TestRandom$' -seed %d -nodes %d -steps %d [-dump trace.txt]",
		err, c.Seed(), size, *flagSteps)
}

// The same seed replays the same run exactly.
func TestRandomReplays(t *testing.T) {
	for seed := uint64(0); seed < 6; seed++ {
		var hashes [2]uint64
		var traces [2][]string
		for i := range 2 {
			c, _ := Run(randomConfig(seed, 3+2*int(seed%2)), 1000)
			hashes[i], traces[i] = c.TraceHash(), c.Trace(0)
		}
		if hashes[0] != hashes[1] {
			t.Fatalf("seed %d: trace hashes differ: %x, %x", seed, hashes[0], hashes[1])
		}
		if strings.Join(traces[0], "\n") != strings.Join(traces[1], "\n") {
			t.Fatalf("seed %d: traces differ with equal hashes", seed)
		}
		if len(traces[0]) < 200 {
			t.Fatalf("seed %d: a trace of only %d lines", seed, len(traces[0]))
		}
	}
}
