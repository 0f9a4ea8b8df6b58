package hashicorp

import (
	"testing"

	"github.com/raftly/raft/bench/workload"
)

func TestSmoke(t *testing.T) {
	const ops = 300
	results, err := workload.Smoke(Library(), ops)
	for _, r := range results {
		t.Logf("%s %-12s ops=%d %.0f ops/s p50=%.0fµs p99=%.0fµs %.0f allocs/op %.0f B/op",
			r.Library, r.Workload, r.Ops, r.OpsPerSec, r.P50Micros, r.P99Micros, r.AllocsPerOp, r.BytesPerOp)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"single", "cluster3", "cluster3-seq"}
	if len(results) != len(want) {
		t.Fatalf("got %d results, want one for each of %v", len(results), want)
	}
	for i, r := range results {
		if r.Workload != want[i] {
			t.Errorf("result %d is for %q, want %q", i, r.Workload, want[i])
		}
		if r.Ops < ops {
			t.Errorf("%s: %d ops, want at least %d", r.Workload, r.Ops, ops)
		}
	}
}
