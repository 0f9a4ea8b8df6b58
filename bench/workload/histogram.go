package workload

import (
	"math/bits"
	"time"
)

// histogram counts latencies in log-linear buckets: subBuckets buckets per
// power of two of nanoseconds, so a quantile is within 1/subBuckets of the
// truth. Recording never allocates.
type histogram struct {
	counts [64 * subBuckets]uint64
	total  uint64
}

const subBucketBits = 5
const subBuckets = 1 << subBucketBits

func bucketOf(ns uint64) int {
	if ns < subBuckets {
		return int(ns)
	}
	exp := bits.Len64(ns) - 1 - subBucketBits // ns >> exp is in [subBuckets, 2*subBuckets)
	return (exp+1)*subBuckets + int(ns>>exp) - subBuckets
}

// lowerBound is the smallest latency that falls in bucket b.
func lowerBound(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	exp := b/subBuckets - 1
	return uint64(b%subBuckets+subBuckets) << exp
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// quantile returns the lower bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q * float64(h.total))
	if rank >= h.total {
		rank = h.total - 1
	}
	var seen uint64
	for b, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(lowerBound(b))
		}
	}
	return 0
}
