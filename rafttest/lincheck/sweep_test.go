package lincheck

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/rafttest"
)

// cd rafttest/lincheck
// go test -run 'TestLinearizable$'                     the default sweep
// go test -run 'TestLinearizable$' -seed 17 -nodes 5   replay one seed
//
//	[-html history.html] [-dump trace.txt]
//
// go test -run 'TestLinearizable$' -seeds 5000 -steps 4000 -nodes 3,5,7
var (
	flagSeed  = flag.Int64("seed", -1, "replay this one seed in TestLinearizable")
	flagSeeds = flag.Int("seeds", 0, "number of seeds TestLinearizable runs (default 2000, half with 3 nodes and half with 5; fewer under -race and -short); with -soak, a limit")
	flagFirst = flag.Uint64("first", 0, "first seed")
	flagSteps = flag.Int("steps", 2500, "random steps per seed")
	flagNodes = flag.String("nodes", "", "comma-separated cluster sizes (founding voters): every seed runs with each (default: 3 or 5 nodes, by seed)")
	flagHTML  = flag.String("html", "", "write porcupine's visualization of a non-linearizable history to this file")
	flagDump  = flag.String("dump", "", "write the whole trace of the seed replayed with -seed to this file")
)

func defaultSeeds() int {
	switch {
	case *flagSeeds > 0:
		return *flagSeeds
	case raceEnabled:
		return 150
	case testing.Short():
		return 100
	}
	return 2000
}

// parseNodes parses -nodes: nil when not given.
func parseNodes(t testing.TB) []int {
	if *flagNodes == "" {
		return nil
	}
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

// sizesOf returns the cluster sizes a seed runs with: nodes (from -nodes),
// else 3 nodes for even seeds and 5 for odd ones.
func sizesOf(seed uint64, nodes []int) []int {
	if nodes == nil {
		return []int{3 + 2*int(seed%2)}
	}
	return nodes
}

// config is the configuration of one seed: reads confirmed by a round of
// heartbeats (ReadIndex) on half the seeds, and served under a lease
// (raft.LeaseReads, with clocks that do not drift) on the other half;
// some seeds also start with a learner, limit flow control, or turn
// pre-vote, or pre-vote and check-quorum, off. The size of the cluster
// (sizesOf) goes by the seed's parity, these by the rest of it.
func config(seed uint64, voters int) rafttest.Config {
	cfg := rafttest.Config{Seed: seed, Voters: voters, Faults: rafttest.FaultProfiles[1]}
	k := seed / 2
	lease := k%2 == 1
	var extra []raft.Option
	switch k / 2 % 6 {
	case 1:
		cfg.Learners = 1
	case 2:
		extra = []raft.Option{raft.MaxMsgBytes(60), raft.MaxInflight(2), raft.MaxUncommittedBytes(400)}
	case 3:
		extra = []raft.Option{raft.WithoutPreVote()}
	case 4:
		// Plain Raft: neither pre-vote nor check-quorum (so no lease).
		extra = []raft.Option{raft.WithoutPreVote(), raft.WithoutCheckQuorum()}
		lease = false
	}
	if lease {
		extra = append(extra, raft.LeaseReads())
		cfg.SteadyClocks = true
	}
	if len(extra) > 0 {
		cfg.Options = func(int64) []raft.Option { return extra }
	}
	return cfg
}

// replay is the command that replays a seed.
func replay(seed uint64, size int) string {
	return fmt.Sprintf("(cd rafttest/lincheck && go test -run 'TestLinearizable$' -seed %d -nodes %d -steps %d [-html history.html] [-dump trace.txt])",
		seed, size, *flagSteps)
}

// result is what one seed did.
type result struct {
	stats   rafttest.Stats
	ops     int
	lease   bool
	failure string // the violation and how to replay it, if any
}

// runSeed runs one seed at one size, then checks its history.
func runSeed(seed uint64, size int, dump bool) result {
	cfg := config(seed, size)
	c, err := rafttest.Run(cfg, *flagSteps)
	r := result{stats: c.Stats(), lease: cfg.SteadyClocks}
	h := c.History()
	r.ops = len(h)
	if err == nil {
		var opts []Option
		if *flagHTML != "" && dump {
			opts = append(opts, HTML(*flagHTML))
		}
		err = Check(h, opts...)
	}
	if dump && *flagDump != "" {
		_ = os.WriteFile(*flagDump, []byte(strings.Join(c.Trace(0), "\n")+"\n"), 0o644)
	}
	if err != nil {
		r.failure = fmt.Sprintf("seed %d, %d nodes: %v\nreplay: %s", seed, size, err, replay(seed, size))
	}
	return r
}

// totals adds up what seeds did.
type totals struct {
	mu                                           sync.Mutex
	runs, ops, writes, reads, served, violations int
	leaseRuns, transfers, transfersDone          int
	refused                                      int
	failures                                     []string
}

func (t *totals) add(r result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.runs++
	t.ops += r.ops
	t.writes += r.stats.Writes
	t.reads += r.stats.Reads
	t.served += r.stats.ReadsServed
	t.refused += r.stats.ReadsRefused
	t.transfers += r.stats.Transfers
	t.transfersDone += r.stats.TransfersDone
	if r.lease {
		t.leaseRuns++
	}
	if r.failure != "" {
		t.violations++
		t.failures = append(t.failures, r.failure)
	}
}

func (t *totals) String() string {
	return fmt.Sprintf("%d runs (%d with lease reads), %d operations in the histories: %d writes, %d reads returned (of %d asked: %d refused for want of a leader, %d never answered); %d leadership transfers accepted (%d completed); %d violations",
		t.runs, t.leaseRuns, t.ops, t.writes, t.served, t.reads+t.refused, t.refused, t.reads-t.served, t.transfers, t.transfersDone, t.violations)
}

// TestLinearizable sweeps seeds of the random driver, which makes client
// writes and reads (ReadIndex, or lease reads) on random nodes through
// partitions, crashes, restarts, membership changes, compactions and
// leadership transfers, and checks each history for linearizability
// (and every rafttest checker on every step).
func TestLinearizable(t *testing.T) {
	var seeds []uint64
	if *flagSeed >= 0 {
		seeds = []uint64{uint64(*flagSeed)}
	} else {
		for i := range defaultSeeds() {
			seeds = append(seeds, *flagFirst+uint64(i))
		}
	}
	nodes := parseNodes(t)
	var tot totals
	start := time.Now()
	const chunk = 10
	t.Run("sweep", func(t *testing.T) {
		for lo := 0; lo < len(seeds); lo += chunk {
			part := seeds[lo:min(lo+chunk, len(seeds))]
			t.Run(fmt.Sprintf("seeds=%d..%d", part[0], part[len(part)-1]), func(t *testing.T) {
				t.Parallel()
				for _, seed := range part {
					for _, size := range sizesOf(seed, nodes) {
						r := runSeed(seed, size, len(seeds) == 1)
						tot.add(r)
						if r.failure != "" {
							t.Error(r.failure)
						}
					}
				}
			})
		}
	})
	t.Logf("%d seeds from %d, %d random steps each: %s; %v", len(seeds), seeds[0], *flagSteps, &tot, time.Since(start).Round(time.Millisecond))
	if len(seeds) > 1 && tot.served == 0 {
		t.Error("no read returned in the whole sweep")
	}
}
