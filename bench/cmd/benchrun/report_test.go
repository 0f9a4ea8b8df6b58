package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raftly/raft/bench/workload"
)

func TestSummarizeTakesTheMedian(t *testing.T) {
	if s := summarize([]float64{3, 1, 2}); s != (summary{median: 2, min: 1, max: 3}) {
		t.Fatalf("odd count: %+v", s)
	}
	if s := summarize([]float64{4, 1, 2, 3}); s != (summary{median: 2.5, min: 1, max: 4}) {
		t.Fatalf("even count: %+v", s)
	}
}

// The report states each target against the ratio of medians, and the
// chart is written.
func TestReportAndChart(t *testing.T) {
	var results []workload.Result
	for round, ours := range []float64{200e3, 220e3, 240e3} {
		results = append(results,
			workload.Result{Library: "ours", Workload: "cluster3", OpsPerSec: ours, P99Micros: 1000, AllocsPerOp: 3},
			workload.Result{Library: "etcd-v3.6", Workload: "cluster3", OpsPerSec: 100e3 + float64(round), P99Micros: 2000, AllocsPerOp: 10},
			workload.Result{Library: "hashicorp", Workload: "cluster3", OpsPerSec: 200e3, P99Micros: 3000, AllocsPerOp: 30},
		)
	}
	rep := newReport(results, "test machine", time.Second)
	md := rep.markdown("chart.png")
	for _, want := range []string{
		"- [x] cluster3 ops/s: ours/etcd-v3.6 = 2.20× (target ≥ 2.0×)",
		"- [ ] cluster3 ops/s: ours/hashicorp = 1.10× (target ≥ 1.3×)",
		"- [x] cluster3 p99 µs: ours/etcd-v3.6 = 0.50× (target ≤ 1.0×)",
		"- [ ] single ops/s ours/etcd-v3.6: not measured",
		"| ours | 220.0k [200.0k–240.0k] |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := rep.chart(path); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		t.Fatalf("no chart written: %v", err)
	}
}
