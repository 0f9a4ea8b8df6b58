// Package adaptertest checks a benchmark adapter: every workload it
// supports runs, Close leaves no goroutine behind, and its codec encodes
// what it was given. Every adapter's test calls Run.
package adaptertest

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/raftly/raft/bench/workload"
)

// smokeOps is how many operations each workload runs: enough to exercise
// the adapter, too few to time anything.
const smokeOps = 300

// Run checks lib.
func Run(t *testing.T, lib workload.Library) {
	t.Run("smoke", func(t *testing.T) { smoke(t, lib) })
	t.Run("close", func(t *testing.T) { closeEndsGoroutines(t, lib) })
	if lib.NewCodec != nil {
		t.Run("codec", func(t *testing.T) { codecEncodesEntries(t, lib) })
	}
}

func smoke(t *testing.T, lib workload.Library) {
	results, err := workload.Smoke(lib, smokeOps)
	for _, r := range results {
		t.Logf("%-12s %6d ops %8.0f ops/s p50 %6.0f µs p99 %6.0f µs %6.2f allocs/op %6.0f B/op",
			r.Workload, r.Ops, r.OpsPerSec, r.P50Micros, r.P99Micros, r.AllocsPerOp, r.BytesPerOp)
	}
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, w := range workload.Workloads {
		if w.Nodes > 0 || lib.NewCodec != nil {
			want = append(want, w.Name)
		}
	}
	if len(results) != len(want) {
		t.Fatalf("%d results, want one for each of %v", len(results), want)
	}
	for i, r := range results {
		if r.Workload != want[i] {
			t.Errorf("result %d is for %q, want %q", i, r.Workload, want[i])
		}
		if r.Ops < smokeOps {
			t.Errorf("%s: %d ops, want at least %d", r.Workload, r.Ops, smokeOps)
		}
	}
}

func closeEndsGoroutines(t *testing.T, lib workload.Library) {
	before := runtime.NumGoroutine()
	c, err := lib.NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, workload.ProposalSize)
	binary.LittleEndian.PutUint64(data, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Propose(ctx, data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// A goroutine that has returned may take a moment to be counted out.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
	}
}

func codecEncodesEntries(t *testing.T, lib workload.Library) {
	entries := make([][]byte, workload.CodecEntries)
	for i := range entries {
		entries[i] = make([]byte, workload.ProposalSize)
	}
	n, err := lib.NewCodec(entries).RoundTrip()
	if err != nil {
		t.Fatal(err)
	}
	if payload := workload.CodecEntries * workload.ProposalSize; n <= payload {
		t.Fatalf("encoded size %d, want more than the %d bytes of entry data", n, payload)
	}
}
