package raftkv

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/raftly/raft/raftpb"
)

// trWaitFor polls cond until it holds, failing the test after timeout.
func trWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond) // polling interval, not synchronisation
	}
}

// trWithin runs f and fails the test if it has not returned after timeout.
func trWithin(t *testing.T, timeout time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		t.Fatalf("%s did not return within %v", what, timeout)
	}
}

// trRecv waits for a value from ch, failing the test after timeout.
func trRecv[T any](t *testing.T, ch <-chan T, timeout time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("timed out after %v waiting for %s", timeout, what)
		panic("unreachable")
	}
}

// trRecorder records what a Transport hands to its callbacks.
type trRecorder struct {
	mu          sync.Mutex
	msgs        map[int64][]raftpb.Message // by sender
	unreachable map[int64]int
	snapDone    map[int64][]bool // failed, in order
	// hold, when set, is called by Deliver before recording (to stall it).
	hold func(ctx context.Context, m raftpb.Message) error
}

func newTrRecorder() *trRecorder {
	return &trRecorder{msgs: map[int64][]raftpb.Message{}, unreachable: map[int64]int{}, snapDone: map[int64][]bool{}}
}

func (r *trRecorder) deliver(ctx context.Context, m raftpb.Message) error {
	r.mu.Lock()
	hold := r.hold
	r.mu.Unlock()
	if hold != nil {
		if err := hold(ctx, m); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs[m.From] = append(r.msgs[m.From], m)
	return nil
}

func (r *trRecorder) reportUnreachable(id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unreachable[id]++
}

func (r *trRecorder) reportSnapshot(id int64, failed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.snapDone[id] = append(r.snapDone[id], failed)
}

func (r *trRecorder) from(id int64) []raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs[id])
}

func (r *trRecorder) count(id int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[id])
}

func (r *trRecorder) unreachableCount(id int64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unreachable[id]
}

func (r *trRecorder) snapshots(id int64) []bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.snapDone[id])
}

func (r *trRecorder) setHold(hold func(ctx context.Context, m raftpb.Message) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hold = hold
}

// trNode is a Transport served by an httptest server.
type trNode struct {
	id  int64
	tr  *Transport
	srv *httptest.Server
	rec *trRecorder
}

func (n *trNode) addr() string { return n.srv.Listener.Addr().String() }

type trOption func(*TransportConfig)

func trQueueSize(size int) trOption {
	return func(c *TransportConfig) { c.QueueSize = size }
}

func trLogger(l *slog.Logger) trOption {
	return func(c *TransportConfig) { c.Logger = l }
}

// startTrNode starts a node on ln (nil: a fresh port). The caller closes it.
func startTrNode(t *testing.T, id int64, ln net.Listener, opts ...trOption) *trNode {
	t.Helper()
	rec := newTrRecorder()
	cfg := TransportConfig{
		ID:           id,
		Deliver:      rec.deliver,
		Unreachable:  rec.reportUnreachable,
		SnapshotDone: rec.reportSnapshot,
		Logger:       slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(&cfg)
	}
	tr := NewTransport(cfg)
	srv := httptest.NewUnstartedServer(tr.Handler())
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	return &trNode{id: id, tr: tr, srv: srv, rec: rec}
}

func (n *trNode) close() {
	n.tr.Close()
	n.srv.Close()
}

// startTrCluster starts nodes 1..size, each a peer of the others; they are
// closed (transports first) when the test ends.
func startTrCluster(t *testing.T, size int, opts ...trOption) []*trNode {
	t.Helper()
	nodes := make([]*trNode, size)
	for i := range nodes {
		nodes[i] = startTrNode(t, int64(i+1), nil, opts...)
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.tr.SetPeer(b.id, b.addr())
			}
		}
	}
	t.Cleanup(func() { closeTrNodes(nodes...) })
	return nodes
}

func closeTrNodes(nodes ...*trNode) {
	for _, n := range nodes {
		n.tr.Close()
	}
	for _, n := range nodes {
		n.srv.Close()
	}
}

// trDeadAddr returns an address nothing listens on.
func trDeadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func trMsg(from, to, index int64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgApp, From: from, To: to, Term: 1, Index: index}
}

// trIndexes returns the Index of each message.
func trIndexes(msgs []raftpb.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Index
	}
	return out
}

// trIncreasing reports whether xs is strictly increasing: in order, with
// no duplicates.
func trIncreasing(xs []int64) bool {
	for i := 1; i < len(xs); i++ {
		if xs[i] <= xs[i-1] {
			return false
		}
	}
	return true
}

func TestTransportDeliversInOrder(t *testing.T) {
	const n = 10000
	nodes := startTrCluster(t, 3, trQueueSize(2*n)) // no drops: this is about order
	var wg sync.WaitGroup
	for _, a := range nodes {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(a.id), 1))
			var next [4]int64 // next index per destination
			var batch []raftpb.Message
			for next[1]+next[2]+next[3] < 2*n {
				batch = batch[:0]
				for range 1 + rng.IntN(64) {
					to := int64(1 + rng.IntN(3))
					if to == a.id || next[to] == n {
						continue
					}
					next[to]++
					m := trMsg(a.id, to, next[to])
					m.Entries = []raftpb.Entry{{Term: 1, Index: next[to], Data: make([]byte, rng.IntN(200))}}
					batch = append(batch, m)
				}
				a.tr.Send(batch)
			}
		})
	}
	wg.Wait()
	want := make([]int64, n)
	for i := range want {
		want[i] = int64(i + 1)
	}
	for _, b := range nodes {
		for _, a := range nodes {
			if a == b {
				continue
			}
			trWaitFor(t, 20*time.Second, fmt.Sprintf("%d messages %d->%d", n, a.id, b.id), func() bool {
				return b.rec.count(a.id) >= n
			})
			got := b.rec.from(a.id)
			if !slices.Equal(trIndexes(got), want) {
				t.Fatalf("%d->%d: messages out of order or duplicated", a.id, b.id)
			}
			for _, m := range got {
				if m.To != b.id || len(m.Entries) != 1 || m.Entries[0].Index != m.Index {
					t.Fatalf("%d->%d: message garbled: %v", a.id, b.id, m)
				}
			}
		}
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if c := a.rec.unreachableCount(b.id); c != 0 {
				t.Errorf("node %d reported %d unreachable %d times", a.id, b.id, c)
			}
		}
	}
}

// A lone message must not wait for more traffic: each batch is flushed.
func TestTransportDeliversLoneMessagePromptly(t *testing.T) {
	nodes := startTrCluster(t, 2)
	for i := int64(1); i <= 3; i++ {
		nodes[0].tr.Send([]raftpb.Message{trMsg(1, 2, i)})
		trWaitFor(t, 5*time.Second, fmt.Sprintf("message %d", i), func() bool { return nodes[1].rec.count(1) == int(i) })
	}
}

// trLogCounter is a slog.Handler counting records by level and message.
type trLogCounter struct {
	mu     sync.Mutex
	counts map[string]int // "LEVEL message"
}

func (c *trLogCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *trLogCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *trLogCounter) WithGroup(string) slog.Handler            { return c }
func (c *trLogCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[r.Level.String()+" "+r.Message]++
	return nil
}

func (c *trLogCounter) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[key]
}

func TestTransportDeadPeer(t *testing.T) {
	for _, sameAddr := range []bool{true, false} {
		t.Run(fmt.Sprintf("sameAddr=%v", sameAddr), func(t *testing.T) {
			logs := &trLogCounter{counts: map[string]int{}}
			a := startTrNode(t, 1, nil, trLogger(slog.New(logs)))
			defer a.close()
			dead := trDeadAddr(t)
			a.tr.SetPeer(2, dead)

			// Far more than the queue holds, in one call and in many.
			big := make([]raftpb.Message, 100_000)
			for i := range big {
				big[i] = trMsg(1, 2, int64(i+1))
			}
			trWithin(t, 10*time.Second, "Send to a dead peer", func() {
				a.tr.Send(big)
				for i := range big[:10_000] {
					a.tr.Send(big[i : i+1])
				}
			})
			trWaitFor(t, 5*time.Second, "Unreachable(2)", func() bool { return a.rec.unreachableCount(2) > 0 })
			// Let the sender fail a few times: messages arriving while it
			// backs off are dropped and reported.
			index := int64(len(big))
			reports := a.rec.unreachableCount(2)
			trWaitFor(t, 10*time.Second, "more failed attempts", func() bool {
				index++
				a.tr.Send([]raftpb.Message{trMsg(1, 2, index)})
				return a.rec.unreachableCount(2) >= reports+3
			})

			var b *trNode
			if sameAddr {
				ln, err := net.Listen("tcp", dead)
				if err != nil {
					t.Fatalf("cannot listen again on %s, the port the peer was dead on: %v", dead, err)
				}
				b = startTrNode(t, 2, ln)
			} else {
				b = startTrNode(t, 2, nil)
				a.tr.SetPeer(2, b.addr())
			}
			defer b.close()
			// Messages still queued from before may arrive too; the
			// stream keeps them in order.
			trWaitFor(t, 10*time.Second, "messages to flow again", func() bool {
				index++
				a.tr.Send([]raftpb.Message{trMsg(1, 2, index)})
				return b.rec.count(1) > 0
			})
			index++
			a.tr.Send([]raftpb.Message{trMsg(1, 2, index)})
			trWaitFor(t, 5*time.Second, "the last message", func() bool {
				got := b.rec.from(1)
				return got[len(got)-1].Index == index
			})
			if got := trIndexes(b.rec.from(1)); !trIncreasing(got) {
				t.Fatalf("after recovery got indexes %v, want increasing", got)
			}
			if sameAddr {
				if w, i := logs.count("WARN peer unreachable"), logs.count("INFO peer reachable again"); w != 1 || i != 1 {
					t.Errorf("logged %d unreachable and %d reachable lines for one outage, want 1 and 1", w, i)
				}
			}
		})
	}
}

func TestTransportUnknownPeerReportedOncePerSend(t *testing.T) {
	a := startTrNode(t, 1, nil)
	defer a.close()
	msgs := []raftpb.Message{trMsg(1, 9, 1), trMsg(1, 9, 2), trMsg(1, 8, 1), trMsg(1, 9, 3)}
	a.tr.Send(msgs)
	if c9, c8 := a.rec.unreachableCount(9), a.rec.unreachableCount(8); c9 != 1 || c8 != 1 {
		t.Fatalf("Unreachable(9) %d times, Unreachable(8) %d times; want once each", c9, c8)
	}
	a.tr.Send(msgs)
	if c := a.rec.unreachableCount(9); c != 2 {
		t.Fatalf("Unreachable(9) %d times after two Sends, want 2", c)
	}
}

func TestTransportMisaddressedPeer(t *testing.T) {
	nodes := startTrCluster(t, 3)
	a, c := nodes[0], nodes[2]
	a.tr.SetPeer(2, c.addr()) // node 3 answers there
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 1)})
	trWaitFor(t, 5*time.Second, "Unreachable(2)", func() bool { return a.rec.unreachableCount(2) > 0 })
	a.tr.Send([]raftpb.Message{trMsg(1, 3, 1)})
	trWaitFor(t, 5*time.Second, "delivery to node 3", func() bool { return c.rec.count(1) == 1 })
	if got := c.rec.from(1); got[0].To != 3 {
		t.Fatalf("node 3 was handed a message for node %d", got[0].To)
	}
}

func TestTransportSlowPeerBlocksNothing(t *testing.T) {
	nodes := startTrCluster(t, 3, trQueueSize(256))
	a, slow, c := nodes[0], nodes[1], nodes[2]
	release := make(chan struct{})
	stalled := make(chan struct{}, 1)
	slow.rec.setHold(func(ctx context.Context, m raftpb.Message) error {
		select {
		case stalled <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	// Once the stream is up and its receiver stuck, feed it until the
	// connection's buffers are full and the queue stops draining...
	index := int64(1)
	a.tr.Send([]raftpb.Message{trMsg(1, 2, index)})
	trRecv(t, stalled, 5*time.Second, "the slow peer to stall")
	a.tr.mu.RLock()
	queue := a.tr.peers[2].queue
	a.tr.mu.RUnlock()
	payload := make([]byte, 16<<10)
	batch := func(n int) []raftpb.Message {
		msgs := make([]raftpb.Message, n)
		for i := range msgs {
			index++
			msgs[i] = trMsg(1, 2, index)
			msgs[i].Entries = []raftpb.Entry{{Index: index, Data: payload}}
		}
		return msgs
	}
	for drained := true; drained; {
		if index > 1<<12 { // 64 MiB
			t.Fatal("the stream to a stuck peer never filled up")
		}
		trWithin(t, time.Second, "Send", func() { a.tr.Send(batch(16)) })
		deadline := time.Now().Add(time.Second)
		for len(queue) > 0 && drained {
			drained = time.Now().Before(deadline)
			time.Sleep(time.Millisecond) // polling interval
		}
	}
	if u := a.rec.unreachableCount(2); u != 0 {
		t.Fatalf("Unreachable(2) reported %d times before the queue was full", u)
	}
	// ... then overflow the queue: dropped and reported, never blocking.
	trWithin(t, time.Second, "Send", func() { a.tr.Send(batch(2 * cap(queue))) })
	if u := a.rec.unreachableCount(2); u != 1 {
		t.Fatalf("Unreachable(2) reported %d times for one overflowing Send, want 1", u)
	}

	// Node 3 is served as if nothing happened.
	for batch := range int64(10) {
		msgs := make([]raftpb.Message, 100)
		for i := range msgs {
			msgs[i] = trMsg(1, 3, 100*batch+int64(i)+1)
		}
		trWithin(t, time.Second, "Send", func() { a.tr.Send(msgs) })
		trWaitFor(t, 5*time.Second, "delivery to node 3", func() bool { return c.rec.count(1) == int(100*(batch+1)) })
	}
	if got := trIndexes(c.rec.from(1)); len(got) != 1000 || !trIncreasing(got) || a.rec.unreachableCount(3) != 0 {
		t.Fatalf("node 3 got %d messages (in order: %v), unreachable reports %d", len(got), trIncreasing(got), a.rec.unreachableCount(3))
	}

	// Once it catches up, the slow peer gets new messages.
	close(release)
	marker := index + 1
	trWaitFor(t, 30*time.Second, "the slow peer to catch up", func() bool {
		index++
		a.tr.Send([]raftpb.Message{trMsg(1, 2, index)})
		got := slow.rec.from(1)
		return len(got) > 0 && got[len(got)-1].Index >= marker
	})
	if got := trIndexes(slow.rec.from(1)); !trIncreasing(got) {
		t.Fatal("slow peer got messages out of order")
	}
}

func trSnapMsg(from, to, index int64, data []byte) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgSnap, From: from, To: to, Term: 3, Snapshot: raftpb.Snapshot{
		Data: data, Nodes: []int64{1, 2, 3}, Learners: []int64{4}, Index: index, Term: 2,
	}}
}

func TestTransportSnapshot(t *testing.T) {
	nodes := startTrCluster(t, 2)
	a, b := nodes[0], nodes[1]
	data := make([]byte, 6<<20+12345)
	for i := range data {
		data[i] = byte(i*7 + i>>10)
	}
	sent := trSnapMsg(1, 2, 42, data)
	a.tr.Send([]raftpb.Message{sent, trMsg(1, 2, 43)})
	trWaitFor(t, 30*time.Second, "SnapshotDone(2)", func() bool { return len(a.rec.snapshots(2)) == 1 })
	if failed := a.rec.snapshots(2)[0]; failed {
		t.Fatal("SnapshotDone(2, true), want false")
	}
	trWaitFor(t, 5*time.Second, "both messages", func() bool { return b.rec.count(1) == 2 })
	var got raftpb.Message
	for _, m := range b.rec.from(1) {
		if m.Type == raftpb.MsgSnap {
			got = m
		}
	}
	if !bytes.Equal(got.Snapshot.Data, data) {
		t.Fatal("snapshot data differs")
	}
	if len(sent.Snapshot.Data) != len(data) {
		t.Fatal("Send modified the caller's message")
	}
	got.Snapshot.Data, sent.Snapshot.Data = nil, nil
	if gb, sb := trMarshal(t, &got), trMarshal(t, &sent); !bytes.Equal(gb, sb) {
		t.Fatalf("snapshot message differs: got %v, want %v", &got, &sent)
	}

	t.Run("empty data", func(t *testing.T) {
		a.tr.Send([]raftpb.Message{trSnapMsg(1, 2, 44, nil)})
		trWaitFor(t, 5*time.Second, "SnapshotDone(2)", func() bool { return len(a.rec.snapshots(2)) == 2 })
		if a.rec.snapshots(2)[1] {
			t.Fatal("empty snapshot failed")
		}
	})

	t.Run("one at a time", func(t *testing.T) {
		entered := make(chan struct{})
		release := make(chan struct{})
		b.rec.setHold(func(ctx context.Context, m raftpb.Message) error {
			if m.Type != raftpb.MsgSnap {
				return nil
			}
			close(entered)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		defer b.rec.setHold(nil)
		before := len(a.rec.snapshots(2))
		a.tr.Send([]raftpb.Message{trSnapMsg(1, 2, 50, []byte("first"))})
		trRecv(t, entered, 5*time.Second, "the snapshot to reach Deliver")
		a.tr.Send([]raftpb.Message{trSnapMsg(1, 2, 51, []byte("second"))})
		if got := a.rec.snapshots(2)[before:]; !slices.Equal(got, []bool{true}) {
			t.Fatalf("second snapshot while one is in flight: reports %v, want [true]", got)
		}
		close(release)
		trWaitFor(t, 5*time.Second, "first snapshot", func() bool { return len(a.rec.snapshots(2)) == before+2 })
		if got := a.rec.snapshots(2)[before+1]; got {
			t.Fatal("first snapshot failed")
		}
	})

	t.Run("refused by Deliver", func(t *testing.T) {
		b.rec.setHold(func(context.Context, raftpb.Message) error { return errors.New("no thanks") })
		defer b.rec.setHold(nil)
		before := len(a.rec.snapshots(2))
		a.tr.Send([]raftpb.Message{trSnapMsg(1, 2, 60, []byte("x"))})
		trWaitFor(t, 5*time.Second, "SnapshotDone(2)", func() bool { return len(a.rec.snapshots(2)) == before+1 })
		if !a.rec.snapshots(2)[before] {
			t.Fatal("snapshot refused by Deliver reported as sent")
		}
	})

	t.Run("dead or unknown peer", func(t *testing.T) {
		a.tr.SetPeer(3, trDeadAddr(t))
		a.tr.Send([]raftpb.Message{trSnapMsg(1, 3, 70, data), trSnapMsg(1, 9, 70, data)})
		if got := a.rec.snapshots(9); !slices.Equal(got, []bool{true}) || a.rec.unreachableCount(9) != 1 {
			t.Fatalf("snapshot to an unknown peer: reports %v, unreachable %d", got, a.rec.unreachableCount(9))
		}
		trWaitFor(t, 10*time.Second, "SnapshotDone(3)", func() bool { return len(a.rec.snapshots(3)) == 1 })
		if !a.rec.snapshots(3)[0] {
			t.Fatal("snapshot to a dead peer reported as sent")
		}
	})
}

func trMarshal(t *testing.T, m *raftpb.Message) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransportBlock(t *testing.T) {
	nodes := startTrCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	// Streams are up before blocking.
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 1)})
	b.tr.Send([]raftpb.Message{trMsg(2, 1, 1)})
	trWaitFor(t, 5*time.Second, "first messages", func() bool { return a.rec.count(2) == 1 && b.rec.count(1) == 1 })

	a.tr.Block([]int64{2})
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 2), trMsg(1, 3, 2), trSnapMsg(1, 2, 2, []byte("s"))})
	b.tr.Send([]raftpb.Message{trMsg(2, 1, 2), trMsg(2, 3, 2)})
	c.tr.Send([]raftpb.Message{trMsg(3, 1, 2)})
	trWaitFor(t, 5*time.Second, "unblocked messages", func() bool {
		return c.rec.count(1) == 1 && c.rec.count(2) == 1 && a.rec.count(3) == 1
	})
	trWaitFor(t, 5*time.Second, "the message from 2 to be discarded", func() bool { return a.tr.discarded.Load() == 1 })
	if got := a.rec.snapshots(2); !slices.Equal(got, []bool{true}) {
		t.Fatalf("snapshot to a blocked peer: reports %v, want [true]", got)
	}

	a.tr.Block(nil)
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 3)})
	b.tr.Send([]raftpb.Message{trMsg(2, 1, 3)})
	trWaitFor(t, 5*time.Second, "messages after healing", func() bool { return a.rec.count(2) == 2 && b.rec.count(1) == 2 })
	if got := trIndexes(b.rec.from(1)); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("2 got %v from 1, want [1 3]", got)
	}
	if got := trIndexes(a.rec.from(2)); !slices.Equal(got, []int64{1, 3}) {
		t.Errorf("1 got %v from 2, want [1 3]", got)
	}
	for _, n := range nodes {
		for _, p := range nodes {
			if u := n.rec.unreachableCount(p.id); u != 0 {
				t.Errorf("node %d reported %d unreachable %d times", n.id, p.id, u)
			}
		}
	}
}

// trLockedBuffer collects a server's error log.
type trLockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *trLockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *trLockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func trFrame(t *testing.T, m raftpb.Message) []byte {
	t.Helper()
	b, err := appendFrame(nil, &m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTransportRefusesMalformedStreams(t *testing.T) {
	rec := newTrRecorder()
	tr := NewTransport(TransportConfig{ID: 1, Deliver: rec.deliver, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewUnstartedServer(tr.Handler())
	var serverLog trLockedBuffer
	srv.Config.ErrorLog = log.New(&serverLog, "", 0)
	srv.Start()
	defer func() {
		tr.Close()
		srv.Close()
		if strings.Contains(serverLog.String(), "panic") {
			t.Errorf("handler panicked:\n%s", serverLog.String())
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(path string, header map[string]string, body []byte) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		return client.Do(req)
	}
	peerHeader := map[string]string{headerRaftFrom: "7", headerRaftTo: "1"}

	valid := trFrame(t, trMsg(7, 1, 1))
	snapHead := trFrame(t, trSnapMsg(7, 1, 1, nil))
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"garbage", bytes.Repeat([]byte{0xff}, 64)},
		{"huge length", append(binary.AppendUvarint(nil, 1<<40), 1, 2, 3)},
		{"length over the limit", append(binary.AppendUvarint(nil, maxFrameSize+1), 1, 2, 3)},
		{"truncated frame", valid[:len(valid)-1]},
		{"truncated length", []byte{0x80}},
		{"bad protobuf", append(binary.AppendUvarint(nil, 4), 0xff, 0xff, 0xff, 0xff)},
		{"snapshot on a stream", snapHead},
		{"valid then garbage", append(slices.Clone(valid), 0x05, 0xff, 0xff, 0xff, 0xff, 0xff)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := post(streamPath, peerHeader, tc.body)
			if err == nil {
				// The answer comes first; the stream is then cut off.
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("malformed stream ended cleanly, want it cut off")
			}
		})
	}
	if got := trIndexes(rec.from(7)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("delivered %v from malformed streams, want only the valid frame [1]", got)
	}

	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		body   []byte
		want   int
	}{
		{"no sender", streamPath, map[string]string{headerRaftTo: "1"}, valid, http.StatusBadRequest},
		{"wrong receiver", streamPath, map[string]string{headerRaftFrom: "7", headerRaftTo: "2"}, valid, http.StatusConflict},
		{"unknown path", "/raft/nope", peerHeader, valid, http.StatusNotFound},
		{"snapshot garbage", snapshotPath, peerHeader, bytes.Repeat([]byte{0xff}, 64), http.StatusBadRequest},
		{"snapshot not a snapshot", snapshotPath, peerHeader, valid, http.StatusBadRequest},
		{"snapshot truncated", snapshotPath, peerHeader, snapHead[:len(snapHead)-1], http.StatusBadRequest},
		{"snapshot data in head", snapshotPath, peerHeader, trFrame(t, trSnapMsg(7, 1, 1, []byte("x"))), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := post(tc.path, tc.header, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	resp, err := client.Get(srv.URL + streamPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET %s: status %d, want 405", streamPath, resp.StatusCode)
	}

	// The handler still serves a real peer.
	b := startTrNode(t, 7, nil)
	defer b.close()
	b.tr.SetPeer(1, srv.Listener.Addr().String())
	b.tr.Send([]raftpb.Message{trMsg(7, 1, 2), trSnapMsg(7, 1, 3, []byte("snap"))})
	// The sender learns the snapshot's outcome only after the receiver has delivered it.
	trWaitFor(t, 5*time.Second, "a valid stream and snapshot", func() bool {
		return rec.count(7) == 3 && len(b.rec.snapshots(1)) > 0
	})
	if got := b.rec.snapshots(1); !slices.Equal(got, []bool{false}) {
		t.Fatalf("snapshot reports %v, want [false]", got)
	}
}

func TestTransportFrameRoundTrip(t *testing.T) {
	msgs := []raftpb.Message{
		{},
		trMsg(1, 2, 3),
		{Type: raftpb.MsgAppResp, From: 2, To: 1, Term: 9, Index: 1 << 40, Reject: true, RejectHint: 7, Context: []byte("ctx")},
		{Type: raftpb.MsgApp, From: 1, To: 2, Entries: []raftpb.Entry{{Term: 1, Index: 1}, {Term: 1, Index: 2, Data: make([]byte, 100_000)}}},
	}
	// Large then small frames: the reader reuses its buffer.
	for i := len(msgs) - 1; i >= 0; i-- {
		msgs = append(msgs, msgs[i])
	}
	var buf []byte
	for i := range msgs {
		var err error
		if buf, err = appendFrame(buf, &msgs[i]); err != nil {
			t.Fatal(err)
		}
	}
	var got []raftpb.Message
	err := readFrames(bufio.NewReader(bytes.NewReader(buf)), func(m raftpb.Message) error {
		got = append(got, m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(msgs) {
		t.Fatalf("decoded %d messages, want %d", len(got), len(msgs))
	}
	for i := range msgs {
		if !bytes.Equal(trMarshal(t, &got[i]), trMarshal(t, &msgs[i])) {
			t.Errorf("message %d: got %v, want %v", i, &got[i], &msgs[i])
		}
	}

	huge := raftpb.Message{Entries: []raftpb.Entry{{Data: make([]byte, maxFrameSize)}}}
	if out, err := appendFrame(buf, &huge); !errors.Is(err, errFrameTooLarge) || len(out) != len(buf) {
		t.Fatalf("appendFrame of an oversized message: err %v, buffer grew by %d", err, len(out)-len(buf))
	}
}

func FuzzTransportReadFrames(f *testing.F) {
	m := trMsg(1, 2, 3)
	m.Entries = []raftpb.Entry{{Term: 1, Index: 3, Data: []byte("data")}}
	one, _ := appendFrame(nil, &m)
	f.Add(one)
	f.Add(append(slices.Clone(one), one...))
	big := m
	big.Entries = []raftpb.Entry{{Data: make([]byte, 300)}}
	bigFrame, _ := appendFrame(nil, &big)
	f.Add(append(bigFrame, one...))
	f.Add(one[:len(one)-2])
	f.Add(binary.AppendUvarint(nil, 1<<40))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got []raftpb.Message
		err := readFrames(bufio.NewReader(bytes.NewReader(data)), func(m raftpb.Message) error {
			got = append(got, m)
			return nil
		})
		// Whatever was decoded encodes and decodes to itself.
		var buf []byte
		for i := range got {
			if buf, err = appendFrame(buf, &got[i]); err != nil {
				t.Fatalf("decoded message does not encode: %v", err)
			}
		}
		var again []raftpb.Message
		if err := readFrames(bufio.NewReader(bytes.NewReader(buf)), func(m raftpb.Message) error {
			again = append(again, m)
			return nil
		}); err != nil {
			t.Fatalf("re-encoded frames do not decode: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("re-decoded %d messages, want %d", len(again), len(got))
		}
	})
}

func TestTransportCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()

	a := startTrNode(t, 1, nil)
	b := startTrNode(t, 2, nil)
	a.tr.SetPeer(2, b.addr())
	b.tr.SetPeer(1, a.addr())
	a.tr.SetPeer(3, trDeadAddr(t)) // backing off
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 1), trMsg(1, 3, 1), trSnapMsg(1, 2, 2, make([]byte, 1<<20))})
	b.tr.Send([]raftpb.Message{trMsg(2, 1, 1)})
	trWaitFor(t, 10*time.Second, "traffic", func() bool {
		return b.rec.count(1) == 2 && len(a.rec.snapshots(2)) == 1 && a.rec.count(2) == 1 && a.rec.unreachableCount(3) > 0
	})
	// A snapshot stuck in the receiver's Deliver, cut off by Close.
	entered := make(chan struct{})
	b.rec.setHold(func(ctx context.Context, m raftpb.Message) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})
	a.tr.Send([]raftpb.Message{trSnapMsg(1, 2, 3, []byte("stuck"))})
	trRecv(t, entered, 5*time.Second, "the snapshot to reach Deliver")

	trWithin(t, 10*time.Second, "Close", func() {
		b.tr.Close() // the receiver first: its handlers are cut off
		a.tr.Close()
		a.tr.Close() // idempotent
	})
	reports := a.rec.unreachableCount(2) + a.rec.unreachableCount(3) + len(a.rec.snapshots(2))
	a.tr.Send([]raftpb.Message{trMsg(1, 2, 9), trMsg(1, 9, 9), trSnapMsg(1, 2, 9, nil)})
	a.tr.SetPeer(4, trDeadAddr(t))
	if after := a.rec.unreachableCount(2) + a.rec.unreachableCount(3) + len(a.rec.snapshots(2)); after != reports {
		t.Fatal("callbacks after Close")
	}
	a.srv.Close()
	b.srv.Close()

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// BenchmarkTransportSend measures messages through a stream, end to end.
func BenchmarkTransportSend(b *testing.B) {
	var delivered atomic.Int64
	trRecv := NewTransport(TransportConfig{
		ID:      2,
		Deliver: func(context.Context, raftpb.Message) error { delivered.Add(1); return nil },
		Logger:  slog.New(slog.DiscardHandler),
	})
	srv := httptest.NewServer(trRecv.Handler())
	defer func() { trRecv.Close(); srv.Close() }()
	send := NewTransport(TransportConfig{ID: 1, QueueSize: 1 << 16, Logger: slog.New(slog.DiscardHandler)})
	defer send.Close()
	send.SetPeer(2, srv.Listener.Addr().String())
	batch := make([]raftpb.Message, 64)
	for i := range batch {
		batch[i] = trMsg(1, 2, int64(i))
		batch[i].Entries = []raftpb.Entry{{Term: 1, Index: int64(i), Data: make([]byte, 128)}}
	}
	sent := int64(0)
	for b.Loop() {
		send.Send(batch)
		sent += int64(len(batch))
		for delivered.Load() < sent-1<<15 { // keeps the queue from overflowing
			runtime.Gosched()
		}
	}
	for delivered.Load() < sent {
		runtime.Gosched()
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
}
