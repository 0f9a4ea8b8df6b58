package raftkv

import (
	"context"
	"errors"
	"io"
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
	body, ok := readBatch(w, r)
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
		if !checkBatchOp(&rs[i], i, op) {
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
		index, err := s.readIndex(ctx)
		if err == nil {
			err = s.waitApplied(ctx, index)
		}
		readErr = err
	}
	s.mu.RLock()
	for i, op := range ops {
		switch {
		case op.Kind != wire.Get && op.Kind != wire.GetStale, rs[i].Status != 0:
			// A write (answered once its entry is applied),
			// or a get already answered by checkBatchOp.
		case op.Kind == wire.Get && readErr != nil:
			failRequest(&resultWriter{r: &rs[i]}, readErr)
		default:
			if value, found := s.state.data[op.Key]; found {
				rs[i] = wire.Result{Status: http.StatusOK, Body: value}
			} else {
				fail(&resultWriter{r: &rs[i]}, http.StatusNotFound, "no key %q", op.Key)
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

// readBatch reads a /batch body of at most wire.MaxRequestBytes, or
// answers why it cannot.
func readBatch(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	rd := http.MaxBytesReader(w, r.Body, wire.MaxRequestBytes)
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= wire.MaxRequestBytes {
		body = make([]byte, n)
		_, err = io.ReadFull(rd, body)
	} else {
		body, err = io.ReadAll(rd)
	}
	if err != nil {
		if _, tooBig := errors.AsType[*http.MaxBytesError](err); tooBig {
			fail(w, http.StatusRequestEntityTooLarge, "the batch is larger than %d bytes", wire.MaxRequestBytes)
		} else {
			fail(w, http.StatusBadRequest, "reading the batch: %v", err)
		}
		return nil, false
	}
	return body, true
}

// checkBatchOp checks the key and value of operation i against the limits
// of the single-key routes; it answers res and reports false if they break
// them.
func checkBatchOp(res *wire.Result, i int, op wire.Op) bool {
	rw := &resultWriter{r: res}
	switch {
	case op.Key == "":
		fail(rw, http.StatusBadRequest, "operation %d (%v): the key is empty", i, op.Kind)
	case len(op.Key) > MaxKeyBytes:
		fail(rw, http.StatusRequestEntityTooLarge, "operation %d (%v): the key is %d bytes; at most %d", i, op.Kind, len(op.Key), MaxKeyBytes)
	case len(op.Value) > MaxValueBytes:
		fail(rw, http.StatusRequestEntityTooLarge, "operation %d (%v): the value is %d bytes; at most %d", i, op.Kind, len(op.Value), MaxValueBytes)
	default:
		return true
	}
	return false
}

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
	var res wire.Result
	if _, err := s.propose(ctx, c); err != nil {
		failRequest(&resultWriter{r: &res}, err)
		return res
	}
	res.Status = http.StatusNoContent
	return res
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

// resultWriter is an http.ResponseWriter that makes what the routes'
// helpers (fail, failRequest) write into one operation's result: the same
// status and one-line message as on the single-key routes.
type resultWriter struct {
	r      *wire.Result
	header http.Header
}

func (rw *resultWriter) Header() http.Header {
	if rw.header == nil {
		rw.header = http.Header{}
	}
	return rw.header
}

func (rw *resultWriter) WriteHeader(status int) { rw.r.Status = status }

func (rw *resultWriter) Write(b []byte) (int, error) {
	rw.r.Body = append(rw.r.Body, b...)
	return len(b), nil
}
