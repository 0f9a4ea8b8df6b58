package ours

import (
	"runtime"
	"testing"

	"github.com/raftly/raft/bench/workload"
)

// BenchmarkMemoryWithCompaction drives 1,000,000 proposals of 128 bytes
// through a 3-node cluster whose nodes compact every 10,000 applied
// entries, and reports the heap in use (after a collection) at 100,000
// proposals and at 1,000,000: with compaction it must not grow with the
// log. Run it with make bench-memory.
func BenchmarkMemoryWithCompaction(b *testing.B) {
	const (
		compactEvery = 10_000
		proposers    = 64
		early, total = 100_000, 1_000_000
	)
	for range b.N {
		c, err := startCluster(3, compactEvery)
		if err != nil {
			b.Fatal(err)
		}
		if err := workload.Drive(c, proposers, early); err != nil {
			b.Fatal(err)
		}
		atEarly := heapInUse()
		if err := workload.Drive(c, proposers, total-early); err != nil {
			b.Fatal(err)
		}
		atTotal := heapInUse()
		c.Close()
		b.ReportMetric(float64(atEarly)/(1<<20), "MiB@100k")
		b.ReportMetric(float64(atTotal)/(1<<20), "MiB@1M")
		b.ReportMetric(float64(atTotal)/float64(atEarly), "1M/100k")
	}
}

// heapInUse is HeapInuse once a collection has freed what is garbage.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}
