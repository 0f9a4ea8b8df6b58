package workload

import (
	"testing"
	"time"
)

func TestBucketBoundsContainTheirValues(t *testing.T) {
	for _, ns := range []uint64{0, 1, 31, 32, 33, 63, 64, 65, 1000, 123456, 1 << 40, 1<<63 - 1} {
		b := bucketOf(ns)
		if lo := lowerBound(b); lo > ns {
			t.Fatalf("value %d in bucket %d whose lower bound is %d", ns, b, lo)
		}
		if b+1 < len(histogram{}.counts) {
			if next := lowerBound(b + 1); next <= ns {
				t.Fatalf("value %d in bucket %d but bucket %d starts at %d", ns, b, b+1, next)
			}
		}
	}
}

func TestQuantileWithinOneBucket(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if got > tc.want || float64(got) < float64(tc.want)*(1-2.0/subBuckets) {
			t.Errorf("quantile(%v) = %v, want within 1/%d below %v", tc.q, got, subBuckets, tc.want)
		}
	}
}
