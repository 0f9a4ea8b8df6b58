package ours

import (
	"testing"

	"github.com/raftly/raft/bench/workload"
)

func TestSmoke(t *testing.T) {
	results, err := workload.Smoke(Library(), 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(workload.Workloads) {
		t.Fatalf("%d results, want one per workload (%d)", len(results), len(workload.Workloads))
	}
	for _, r := range results {
		if r.Ops < 300 {
			t.Errorf("%s: %d ops, want at least 300", r.Workload, r.Ops)
		}
		t.Logf("%+v", r)
	}
}
