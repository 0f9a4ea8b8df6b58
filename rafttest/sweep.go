package rafttest

import (
	"fmt"
	"runtime"
	"sync"
	"time"
)

// SweepSeeds runs run on the seeds of shard i of n: first+i, first+i+n,
// first+i+2n, ..., one seed at a time on each of GOMAXPROCS workers, until
// deadline passes or limit seeds were started (limit 0: no limit). run must
// be safe for concurrent use. It returns how many seeds from the first
// were all finished, so that a sweep resumes at first + covered*n.
func SweepSeeds(first, shard, shards uint64, limit int, deadline time.Time, run func(seed uint64)) (covered int) {
	var (
		mu   sync.Mutex
		next int
		done []bool // done[k]: the k-th seed of the shard finished
		wg   sync.WaitGroup
	)
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
				run(first + shard + uint64(k)*shards)
				mu.Lock()
				done[k] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for covered < len(done) && done[covered] {
		covered++
	}
	return covered
}

// ParseShard reads a shard given as "i/n" (0 <= i < n), for SweepSeeds.
func ParseShard(s string) (shard, shards uint64, err error) {
	if _, err := fmt.Sscanf(s, "%d/%d", &shard, &shards); err != nil || shards == 0 || shard >= shards {
		return 0, 0, fmt.Errorf("shard %q: want i/n with 0 <= i < n", s)
	}
	return shard, shards, nil
}
