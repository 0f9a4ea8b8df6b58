package raftkv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/raftly/raft/raftkv/client/wire"
)

// batchFlushBytes is how much of a batch's answer is built before it is
// written out: a small answer leaves in one write, a large one (gets of
// large values) does not sit whole in memory a second time.
const batchFlushBytes = 256 << 10

// batch serves POST /batch: independent operations, answered in order
// (the package documentation and package wire). Every write is proposed
// at once; the linearizable gets share one read index, asked after all of
// them arrived, and are read together once it is applied.
func (s *Server) batch(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, wire.MaxRequestBytes, "batch")
	if !ok {
		return
	}
	ops, err := wire.DecodeRequest(body)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, wire.ErrTooManyOps) {
			status = http.StatusRequestEntityTooLarge
		}
		fail(w, status, "%v", err)
		return
	}
	ctx, cancel := s.requestContext(r)
	defer cancel()

	rs := make([]wire.Result, len(ops))
	var writes []int // the valid writes, by position
	linearizable := false
	for i, op := range ops {
		if res, bad := badBatchOp(i, op); bad {
			rs[i] = res
			continue
		}
		switch op.Kind {
		case wire.Put, wire.Delete:
			writes = append(writes, i)
		case wire.Get:
			linearizable = true
		}
	}
	var written sync.WaitGroup
	var writeRes wire.Result
	if len(writes) > 0 {
		written.Go(func() { writeRes = s.batchWrite(ctx, ops, writes) })
	}
	var readErr error
	if linearizable {
		readErr = s.awaitLinearizable(ctx)
	}
	s.mu.RLock()
	for i, op := range ops {
		switch {
		case op.Kind != wire.Get && op.Kind != wire.GetStale, rs[i].Status != 0:
			// A write (answered once its entry is applied),
			// or a get already answered by badBatchOp.
		case op.Kind == wire.Get && readErr != nil:
			rs[i] = failedRequest(readErr)
		default:
			if value, found := s.state.data[op.Key]; found {
				rs[i] = wire.Result{Status: http.StatusOK, Body: value}
			} else {
				rs[i] = failed(http.StatusNotFound, "no key %q", op.Key)
			}
		}
	}
	s.mu.RUnlock()
	written.Wait()
	for _, i := range writes {
		rs[i] = writeRes
	}
	writeBatch(w, rs)
}

// badBatchOp checks the key and value of operation i against the limits
// of the single-key routes; when they break them, it returns the answer.
func badBatchOp(i int, op wire.Op) (wire.Result, bool) {
	switch {
	case op.Key == "":
		return failed(http.StatusBadRequest, "operation %d (%v): the key is empty", i, op.Kind), true
	case len(op.Key) > MaxKeyBytes:
		return failed(http.StatusRequestEntityTooLarge, "operation %d (%v): the key is %d bytes; at most %d", i, op.Kind, len(op.Key), MaxKeyBytes), true
	case len(op.Value) > MaxValueBytes:
		return failed(http.StatusRequestEntityTooLarge, "operation %d (%v): the value is %d bytes; at most %d", i, op.Kind, len(op.Value), MaxValueBytes), true
	}
	return wire.Result{}, false
}

// failed is an operation's answer with status and a one-line message, as
// fail writes it on the single-key routes.
func failed(status int, format string, args ...any) wire.Result {
	return wire.Result{Status: status, Body: fmt.Appendf(nil, format+"\n", args...)}
}

// failedRequest is the answer of an operation that went through Raft and
// failed, as failRequest writes it.
func failedRequest(err error) wire.Result { return failed(requestStatus(err), "%v", err) }

// batchWrite proposes the writes of ops at positions at, in one entry,
// and waits until it is applied: they share one outcome.
func (s *Server) batchWrite(ctx context.Context, ops []wire.Op, at []int) wire.Result {
	c := writeCommand(ops[at[0]])
	if len(at) > 1 {
		var writes []byte
		for _, i := range at {
			writes = appendWrite(writes, writeCommand(ops[i]))
		}
		c = command{op: opWrites, value: writes}
	}
	if _, err := s.propose(ctx, c); err != nil {
		return failedRequest(err)
	}
	return wire.Result{Status: http.StatusNoContent}
}

// writeCommand is the command of a put or a delete.
func writeCommand(op wire.Op) command {
	if op.Kind == wire.Delete {
		return command{op: opDelete, key: op.Key}
	}
	return command{op: opPut, key: op.Key, value: op.Value}
}

// writeBatch writes the answer of a batch.
func writeBatch(w http.ResponseWriter, rs []wire.Result) {
	size := wire.ResponseSize(rs)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(size))
	buf := wire.AppendResponseHeader(make([]byte, 0, min(size, batchFlushBytes)), len(rs))
	for _, res := range rs {
		buf = wire.AppendResult(buf, res)
		if len(buf) >= batchFlushBytes {
			if _, err := w.Write(buf); err != nil {
				return
			}
			buf = buf[:0]
		}
	}
	_, _ = w.Write(buf)
}
