package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// A kvClient is one benchmark client's connection to one node. Its methods
// are called by one goroutine at a time, one request at a time.
type kvClient interface {
	// put writes value under key and returns once the system has
	// acknowledged the write as committed.
	put(ctx context.Context, key string, value []byte) error
	// get reads key linearizably; a missing key is an error.
	get(ctx context.Context, key string) error
	close()
}

// A workload is one row of the results table.
type workload struct {
	short   string // for -workloads
	name    string
	clients int
	read    bool // linearizable reads of prefilled keys; otherwise writes
}

var workloads = []workload{
	{"w1", "writes, 1 client", 1, false},
	{"w16", "writes, 16 clients", 16, false},
	{"w64", "writes, 64 clients", 64, false},
	{"r64", "linearizable reads, 64 clients", 64, true},
}

// A result is what one system did on one workload.
type result struct {
	window   time.Duration   // the measured window
	lat      []time.Duration // latencies of the operations completed in it, sorted
	errs     int             // operations that failed, warm-up included
	firstErr error
}

// rate is operations per second over the measured window.
func (r *result) rate() float64 { return float64(len(r.lat)) / r.window.Seconds() }

// pct is the nearest-rank p-th percentile (0 < p <= 1) of the latencies, 0
// when there are none.
func (r *result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(r.lat)))) - 1
	return r.lat[max(i, 0)]
}

// opGrace is how long an operation still in flight at the end of the
// measured window may take before its context is cancelled.
const opGrace = 10 * time.Second

// errBackoff is how long a client waits after a failed operation, so that
// a cluster that refuses everything is not spun against.
const errBackoff = 10 * time.Millisecond

// runLoad drives every client in cs for warmup and then for measure, each
// with sequential operations on uniformly drawn keys.
func runLoad(ctx context.Context, cs []kvClient, read bool, keys []string, value []byte, warmup, measure time.Duration) (*result, error) {
	from := time.Now().Add(warmup)
	to := from.Add(measure)
	opCtx, cancel := context.WithDeadline(ctx, to.Add(opGrace))
	defer cancel()

	per := make([]result, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 0x6b7662656e6368))
			per[i] = drive(opCtx, c, read, keys, value, rng, from, to)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	total := &result{window: measure}
	n := 0
	for i := range per {
		n += len(per[i].lat)
	}
	total.lat = make([]time.Duration, 0, n)
	for i := range per {
		total.lat = append(total.lat, per[i].lat...)
		total.errs += per[i].errs
		if total.firstErr == nil {
			total.firstErr = per[i].firstErr
		}
	}
	slices.Sort(total.lat)
	return total, nil
}

// drive is one client's loop: it runs until an operation completes after
// to, and keeps the latencies of those completed in [from, to].
func drive(ctx context.Context, c kvClient, read bool, keys []string, value []byte, rng *rand.Rand, from, to time.Time) result {
	var r result
	for ctx.Err() == nil {
		key := keys[rng.IntN(len(keys))]
		start := time.Now()
		var err error
		if read {
			err = c.get(ctx, key)
		} else {
			err = c.put(ctx, key, value)
		}
		end := time.Now()
		if err != nil {
			if !end.After(to) {
				r.errs++
				if r.firstErr == nil {
					r.firstErr = err
				}
			}
			time.Sleep(errBackoff)
		} else if !end.Before(from) && !end.After(to) {
			r.lat = append(r.lat, end.Sub(start))
		}
		if end.After(to) {
			break
		}
	}
	return r
}

// prefill writes every key once, spread over the clients. A failed write is
// tried again a few times before prefill gives up.
func prefill(ctx context.Context, cs []kvClient, keys []string, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Go(func() {
			for k := i; k < len(keys); k += len(cs) {
				var err error
				for try := 0; try < 5; try++ {
					if err = c.put(ctx, keys[k], value); err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if err != nil {
					errs[i] = fmt.Errorf("prefill %s: %w", keys[k], err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// makeKeys returns n keys of one length, "key-00000" upwards.
func makeKeys(n int) []string {
	width := len(fmt.Sprint(max(n-1, 0)))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("key-%0*d", width, i)
	}
	return keys
}
