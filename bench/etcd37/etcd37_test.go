package etcd37

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/raftly/raft/bench/workload"
)

func TestSmoke(t *testing.T) {
	const ops = 300
	results, err := workload.Smoke(Library(), ops)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(workload.Workloads) {
		t.Fatalf("got %d results, want one per workload (%d)", len(results), len(workload.Workloads))
	}
	for i, r := range results {
		t.Logf("%+v", r)
		if want := workload.Workloads[i].Name; r.Workload != want {
			t.Errorf("result %d is for workload %q, want %q", i, r.Workload, want)
		}
		if r.Ops < ops {
			t.Errorf("%s: %d ops, want at least %d", r.Workload, r.Ops, ops)
		}
	}
}

func TestCloseEndsAllGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := Library().NewCluster(3)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, workload.ProposalSize)
	binary.LittleEndian.PutUint64(data, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Propose(ctx, data); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Close() // a second Close is a no-op
	// Goroutines that already returned may take a moment to be reaped.
	for deadline := time.Now().Add(time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCodecRoundTripSize(t *testing.T) {
	entries := make([][]byte, workload.CodecEntries)
	for i := range entries {
		entries[i] = make([]byte, workload.ProposalSize)
	}
	n, err := newCodec(entries).RoundTrip()
	if err != nil {
		t.Fatal(err)
	}
	if payload := workload.CodecEntries * workload.ProposalSize; n <= payload {
		t.Fatalf("encoded size %d, want more than the %d bytes of entry data", n, payload)
	}
}
