package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftly/raft/raftkv/client"
	"github.com/raftly/raft/rafttest"
)

// op is one client operation as the checker sees it.
type op struct {
	kind rafttest.OpKind
	key  string
	// value is a put's value and a get's result ("" when the key was
	// absent); the workload's values are never empty.
	value  string
	client int
	node   uint64
	// call and ret are nanoseconds since the history began, on the
	// monotonic clock: call before the request was sent, ret after the
	// answer was read. An open write (outcome unknown) has no ret: it may
	// take effect at any time after its call, or never.
	call, ret int64
	open      bool
	// answer is what the node answered, or the client's error.
	answer string
}

func (o op) String() string {
	var what string
	switch o.kind {
	case rafttest.OpPut:
		what = fmt.Sprintf("put %s=%s", o.key, o.value)
	case rafttest.OpDelete:
		what = "del " + o.key
	default:
		what = fmt.Sprintf("get %s -> %s", o.key, describeValue(o.value))
	}
	ret := "open"
	if !o.open {
		ret = fmtTime(o.ret)
	}
	return fmt.Sprintf("%s by client %d on node %d, [%s .. %s] (%s)", what, o.client, o.node, fmtTime(o.call), ret, o.answer)
}

func describeValue(v string) string {
	if v == "" {
		return "(absent)"
	}
	return v
}

// fmtTime formats a time of the history as seconds since its start.
func fmtTime(ns int64) string { return fmt.Sprintf("%.3fs", float64(ns)/1e9) }

// history collects the operations of every client, and counts what
// happened to those it leaves out.
type history struct {
	start time.Time

	mu       sync.Mutex
	ops      []op
	counts   map[string]int
	problems []string // answers the API does not allow
}

func newHistory() *history {
	return &history{start: time.Now(), counts: map[string]int{}}
}

// now returns the time since the history began.
func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(o op, outcome string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, o)
	h.counts[o.kind.String()+" "+outcome]++
}

func (h *history) count(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.counts[what]++
}

func (h *history) problem(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.problems = append(h.problems, fmt.Sprintf(format, args...))
}

// problemList returns the answers against the API seen so far.
func (h *history) problemList() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.problems...)
}

// completedWrites returns the number of writes acknowledged so far.
func (h *history) completedWrites() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts["put ok"] + h.counts["del ok"]
}

// operations returns a copy of the recorded operations.
func (h *history) operations() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]op(nil), h.ops...)
}

// summary describes the counts, e.g. "put ok 812, get ok 1500, ...".
func (h *history) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	keys := make([]string, 0, len(h.counts))
	total := 0
	for k, n := range h.counts {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, h.counts[k])
	}
	return fmt.Sprintf("%d requests: %s", total, strings.Join(parts, ", "))
}

// workload runs clients that put, get (linearizable) and delete keys of
// a small keyspace on the nodes targets returns, each request with a
// client-side timeout, and records them in a history.
type workload struct {
	client  *Client
	h       *history
	keys    []string
	timeout time.Duration
	targets func() []*Node
	// batch, when set, holds a package client.Client for each node (by
	// id): the odd-numbered clients go through it, and POST /batch, their
	// operations on a node batched together; the others, and every
	// client when batch is nil, through the single-key routes.
	batch map[uint64]*client.Client
	// batchOps counts the operations sent through batch.
	batchOps atomic.Int64
}

// start starts clients goroutines, each with its own random choices from
// seed; they stop after their current request once stop is closed. The
// returned function waits for them.
func (w *workload) start(stop <-chan struct{}, clients int, seed uint64) (wait func()) {
	var wg sync.WaitGroup
	for id := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(id)))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// A client does not call a node it knows is down (one
				// that goes down meanwhile refuses the connection).
				targets := slices.DeleteFunc(w.targets(), func(n *Node) bool { return !n.Running() })
				if len(targets) == 0 {
					select {
					case <-stop:
						return
					case <-time.After(pollEvery):
					}
					continue
				}
				node := targets[r.IntN(len(targets))]
				key := w.keys[r.IntN(len(w.keys))]
				switch p := r.IntN(100); {
				case p < 40:
					w.do(id, node, rafttest.OpPut, key, fmt.Sprintf("%d.%d", id, n))
				case p < 50:
					w.do(id, node, rafttest.OpDelete, key, "")
				default:
					w.do(id, node, rafttest.OpGet, key, "")
				}
			}
		})
	}
	return wg.Wait
}

// do sends one operation to node and records it, according to the
// contract of raftkv's API: 204 (a write) and 200 or 404 (a read) are
// done; 503 did nothing, and is left out; a 504, a timeout or a lost
// connection leave the outcome unknown: such a write is recorded open,
// such a read is left out; a refused connection sent nothing. Any other
// answer is a problem. It returns the operation and whether it is done.
func (w *workload) do(clientID int, node *Node, kind rafttest.OpKind, key, value string) (op, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), w.timeout)
	defer cancel()
	o := op{kind: kind, key: key, value: value, client: clientID, node: node.ID, call: w.h.now()}
	var resp Response
	var err error
	switch bc := w.batch[node.ID]; {
	case bc != nil && clientID%2 == 1:
		w.batchOps.Add(1)
		resp, err = sendBatched(ctx, bc, kind, key, value)
	case kind == rafttest.OpPut:
		resp, err = w.client.Put(ctx, node.ClientAddr, key, value)
	case kind == rafttest.OpDelete:
		resp, err = w.client.Delete(ctx, node.ClientAddr, key)
	default:
		resp, err = w.client.Get(ctx, node.ClientAddr, key, false)
	}
	o.ret = w.h.now()
	if err != nil {
		o.answer = err.Error()
	} else {
		o.answer = resp.String()
	}
	switch {
	case err != nil && NotSent(err):
		w.h.count(kind.String() + " not sent")
		return o, false
	case err != nil || resp.Status == http.StatusGatewayTimeout:
		// Unknown outcome.
	case kind == rafttest.OpGet && resp.Status == http.StatusOK:
		o.value = resp.Body
		if o.value == "" {
			// No write writes "": a value that none wrote, which the
			// checker reports.
			o.value = "(200 with an empty body)"
		}
		w.h.add(o, "ok")
		return o, true
	case kind == rafttest.OpGet && resp.Status == http.StatusNotFound:
		o.value = ""
		w.h.add(o, "ok")
		return o, true
	case kind != rafttest.OpGet && resp.Status == http.StatusNoContent:
		w.h.add(o, "ok")
		return o, true
	case resp.Status == http.StatusServiceUnavailable:
		w.h.count(kind.String() + " 503")
		return o, false
	default:
		w.h.problem("%s %s on node %d: unexpected answer %v", kind, key, node.ID, resp)
	}
	if kind == rafttest.OpGet {
		w.h.count("get unknown")
		return o, false
	}
	o.open = true
	w.h.add(o, "unknown")
	return o, false
}

// sendBatched does one operation through bc and returns the answer as
// the single-key route would have given it: the status and the value or
// message of the operation's result. An error is an operation with no
// status from the node (never sent, or no answer).
func sendBatched(ctx context.Context, bc *client.Client, kind rafttest.OpKind, key, value string) (Response, error) {
	var v []byte
	var err error
	status := http.StatusNoContent
	switch kind {
	case rafttest.OpPut:
		err = bc.Put(ctx, key, []byte(value))
	case rafttest.OpDelete:
		err = bc.Delete(ctx, key)
	default:
		v, err = bc.Get(ctx, key)
		status = http.StatusOK
	}
	if e, ok := errors.AsType[*client.Error](err); ok && e.Status != 0 {
		return Response{Status: e.Status, Body: e.Msg}, nil
	}
	if err != nil {
		return Response{}, err
	}
	return Response{Status: status, Body: string(v)}, nil
}

// finalRead reads key, linearizably, from the nodes targets returns
// until one answers, and records the read as client client. It returns
// the value read, or an error at the deadline of ctx.
func (w *workload) finalRead(ctx context.Context, client int, key string) (string, error) {
	var last op
	for i := 0; ; i++ {
		targets := w.targets()
		node := targets[i%len(targets)]
		o, ok := w.do(client, node, rafttest.OpGet, key, "")
		if ok {
			return o.value, nil
		}
		last = o
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no answer to a read of %s: %w (last: %s)", key, ctx.Err(), last.answer)
		case <-time.After(pollEvery):
		}
	}
}

// converge reads every key linearizably (recorded in the history as
// client client) and then from each of the nodes targets returns with
// ?stale=true, until every node's state agrees with the linearizable
// reads. It returns the values read, or an error saying where the nodes
// still differ at the deadline of ctx.
func (w *workload) converge(ctx context.Context, client int) (map[string]string, error) {
	for {
		final := map[string]string{}
		var diffs []string
		for _, key := range w.keys {
			v, err := w.finalRead(ctx, client, key)
			if err != nil {
				return nil, err
			}
			final[key] = v
		}
		for _, n := range w.targets() {
			for _, key := range w.keys {
				v, err := w.staleRead(ctx, n, key)
				if err != nil {
					diffs = append(diffs, err.Error())
				} else if v != final[key] {
					diffs = append(diffs, fmt.Sprintf("node %d has %s=%s, the linearizable read %s",
						n.ID, key, describeValue(v), describeValue(final[key])))
				}
			}
		}
		if len(diffs) == 0 {
			return final, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the nodes did not converge: %w:\n%s", ctx.Err(), strings.Join(diffs, "\n"))
		case <-time.After(pollEvery):
		}
	}
}

// staleRead reads key from node's local state.
func (w *workload) staleRead(ctx context.Context, n *Node, key string) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	resp, err := w.client.Get(rctx, n.ClientAddr, key, true)
	switch {
	case err != nil:
		return "", fmt.Errorf("stale read of %s on node %d: %w", key, n.ID, err)
	case resp.Status == http.StatusOK:
		return resp.Body, nil
	case resp.Status == http.StatusNotFound:
		return "", nil
	}
	w.h.problem("stale read of %s on node %d: unexpected answer %v", key, n.ID, resp)
	return "", fmt.Errorf("stale read of %s on node %d: %v", key, n.ID, resp)
}
