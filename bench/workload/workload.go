// Package workload runs identical benchmark workloads against Raft
// libraries, each through a small adapter. It imports no Raft library, so
// that one driver serves every library and every version of one.
package workload

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A Cluster is a group of nodes of one library in this process, passing
// messages in memory, with a leader elected and able to take proposals.
type Cluster interface {
	// Propose submits data through the leader and returns once the leader
	// has applied it. The first 8 bytes of data are a unique proposal id
	// (see ProposalID); data is not modified afterwards.
	Propose(ctx context.Context, data []byte) error
	// Close stops every node and waits for their goroutines.
	Close()
}

// A Codec marshals and unmarshals the library's replication message.
type Codec interface {
	// RoundTrip marshals one append message carrying the entries given to
	// NewCodec and unmarshals it into a fresh message, returning the size
	// of the encoding.
	RoundTrip() (int, error)
}

// Library is one library (or version) under test.
type Library struct {
	Name string
	// NewCluster starts a cluster of n nodes; it returns once a leader is
	// elected.
	NewCluster func(n int) (Cluster, error)
	// NewCodec builds the codec workload for entries of size bytes each;
	// nil when the library has no codec workload.
	NewCodec func(entries [][]byte) Codec
}

// Workload is one of the measured workloads.
type Workload struct {
	Name      string
	Nodes     int // cluster size; 0 for the codec
	Proposers int // concurrent proposers on the leader
}

// Payload sizes shared by every workload.
const (
	ProposalSize = 128
	CodecEntries = 16
)

// Workloads lists the workloads in the order they are reported.
var Workloads = []Workload{
	{Name: "single", Nodes: 1, Proposers: 1},
	{Name: "cluster3", Nodes: 3, Proposers: 64},
	{Name: "cluster3-seq", Nodes: 3, Proposers: 1},
	{Name: "codec"},
}

// LookupWorkload returns the workload called name.
func LookupWorkload(name string) (Workload, bool) {
	for _, w := range Workloads {
		if w.Name == name {
			return w, true
		}
	}
	return Workload{}, false
}

// Result is what one run measured, in the measured window only.
type Result struct {
	Library     string  `json:"library"`
	Workload    string  `json:"workload"`
	Ops         int64   `json:"ops"`
	Seconds     float64 `json:"seconds"`
	OpsPerSec   float64 `json:"ops_per_sec"`
	P50Micros   float64 `json:"p50_us"`
	P99Micros   float64 `json:"p99_us"`
	NsPerOp     float64 `json:"ns_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	EncodedSize int     `json:"encoded_size,omitempty"`
}

// Limits bound one run: the workload runs for Warmup, then is measured for
// Duration, or, when Ops is positive, measured from the start until Ops
// operations completed (a smoke run).
type Limits struct {
	Warmup   time.Duration
	Duration time.Duration
	Ops      int64
}

// ProposalID returns the id stored in the first 8 bytes of a proposal.
func ProposalID(data []byte) (uint64, bool) {
	if len(data) < 8 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(data), true
}

var nextProposal atomic.Uint64

// newProposal returns a fresh ProposalSize-byte proposal with a unique id.
func newProposal() []byte {
	data := make([]byte, ProposalSize)
	binary.LittleEndian.PutUint64(data, nextProposal.Add(1))
	for i := 8; i < len(data); i++ {
		data[i] = byte(i)
	}
	return data
}

// Run runs workload w against lib within limits.
func Run(lib Library, w Workload, limits Limits) (Result, error) {
	if w.Nodes == 0 {
		return runCodec(lib, w, limits)
	}
	c, err := lib.NewCluster(w.Nodes)
	if err != nil {
		return Result{}, fmt.Errorf("%s: starting %d nodes: %w", lib.Name, w.Nodes, err)
	}
	defer c.Close()
	return measure(lib, w, limits, func(ctx context.Context) error {
		return c.Propose(ctx, newProposal())
	})
}

func runCodec(lib Library, w Workload, limits Limits) (Result, error) {
	if lib.NewCodec == nil {
		return Result{}, fmt.Errorf("%s has no codec workload", lib.Name)
	}
	entries := make([][]byte, CodecEntries)
	for i := range entries {
		entries[i] = newProposal()
	}
	codec := lib.NewCodec(entries)
	size, err := codec.RoundTrip()
	if err != nil {
		return Result{}, err
	}
	w.Proposers = 1
	r, err := measure(lib, w, limits, func(context.Context) error {
		_, err := codec.RoundTrip()
		return err
	})
	r.EncodedSize = size
	r.P50Micros, r.P99Micros = 0, 0 // a round trip is not a proposal
	return r, err
}

// measure runs op from w.Proposers goroutines and measures the window.
func measure(lib Library, w Workload, limits Limits, op func(context.Context) error) (Result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var (
		measuring atomic.Bool
		done      atomic.Int64 // operations completed in the window
		firstErr  error
		errOnce   sync.Once
		wg        sync.WaitGroup
	)
	hists := make([]histogram, w.Proposers)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	if limits.Ops > 0 {
		measuring.Store(true)
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := range w.Proposers {
		wg.Add(1)
		go func(h *histogram) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					if ctx.Err() == nil {
						fail(err)
					}
					return
				}
				if measuring.Load() {
					h.record(time.Since(t0))
					if n := done.Add(1); limits.Ops > 0 && n >= limits.Ops {
						cancel()
					}
				}
			}
		}(&hists[i])
	}

	var elapsed time.Duration
	if limits.Ops > 0 {
		<-ctx.Done()
		elapsed = time.Since(start)
	} else {
		time.Sleep(limits.Warmup) // the warm-up is wall-clock by definition
		runtime.ReadMemStats(&before)
		start = time.Now()
		measuring.Store(true)
		time.Sleep(limits.Duration)
		measuring.Store(false)
		elapsed = time.Since(start)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	ops := done.Load()
	cancel()
	wg.Wait()
	if firstErr != nil {
		return Result{}, fmt.Errorf("%s %s: %w", lib.Name, w.Name, firstErr)
	}
	if ops == 0 {
		return Result{}, fmt.Errorf("%s %s: no operation completed", lib.Name, w.Name)
	}
	var all histogram
	for i := range hists {
		all.merge(&hists[i])
	}
	return Result{
		Library:     lib.Name,
		Workload:    w.Name,
		Ops:         ops,
		Seconds:     elapsed.Seconds(),
		OpsPerSec:   float64(ops) / elapsed.Seconds(),
		P50Micros:   micros(all.quantile(0.50)),
		P99Micros:   micros(all.quantile(0.99)),
		NsPerOp:     float64(elapsed.Nanoseconds()) / float64(ops),
		AllocsPerOp: float64(after.Mallocs-before.Mallocs) / float64(ops),
		BytesPerOp:  float64(after.TotalAlloc-before.TotalAlloc) / float64(ops),
	}, nil
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// Smoke runs every workload that lib supports for ops operations, so that
// a test keeps each adapter compiling and working; it asserts no timing.
func Smoke(lib Library, ops int64) ([]Result, error) {
	var results []Result
	for _, w := range Workloads {
		if w.Nodes == 0 && lib.NewCodec == nil {
			continue
		}
		r, err := Run(lib, w, Limits{Ops: ops})
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// gogoMessage is a message type whose marshalling gogo/protobuf generated.
type gogoMessage[T any] interface {
	*T
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// GogoCodec is the codec workload of a gogo-generated message type (ours,
// etcd raft v3.6): marshal msg, unmarshal it into a fresh T.
func GogoCodec[T any, PT gogoMessage[T]](msg T) Codec { return &gogoCodec[T, PT]{msg: msg} }

type gogoCodec[T any, PT gogoMessage[T]] struct{ msg T }

func (c *gogoCodec[T, PT]) RoundTrip() (int, error) {
	b, err := PT(&c.msg).Marshal()
	if err != nil {
		return 0, err
	}
	var out T
	if err := PT(&out).Unmarshal(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Drive makes ops proposals on c from proposers goroutines and returns
// once each is applied, or at the first error.
func Drive(c Cluster, proposers int, ops int64) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range proposers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= ops {
				if err := c.Propose(ctx, newProposal()); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
