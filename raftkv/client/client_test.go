package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/raftly/raft/raftkv/client/wire"
	"github.com/stretchr/testify/require"
)

// fakeNode is a RoundTripper that plays a node's /batch in memory: each
// request is handed to the test on reqs and answered once the test says
// how (answer's function, run on the request's operations).
type fakeNode struct {
	reqs chan *fakeReq
}

type fakeReq struct {
	ops    []wire.Op
	answer chan func([]wire.Op) (*http.Response, error)
}

func newFakeNode() *fakeNode { return &fakeNode{reqs: make(chan *fakeReq)} }

func (f *fakeNode) RoundTrip(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	ops, err := wire.DecodeRequest(body)
	if err != nil {
		return nil, fmt.Errorf("fake node: %w", err)
	}
	r := &fakeReq{ops: ops, answer: make(chan func([]wire.Op) (*http.Response, error))}
	select {
	case f.reqs <- r:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	select {
	case a := <-r.answer:
		return a(ops)
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
}

// ok answers every operation as done: a get with the value "v".
func ok(ops []wire.Op) (*http.Response, error) {
	return answerEach(func(op wire.Op) wire.Result {
		if op.Kind == wire.Get || op.Kind == wire.GetStale {
			return wire.Result{Status: http.StatusOK, Body: []byte("v")}
		}
		return wire.Result{Status: http.StatusNoContent}
	})(ops)
}

func answerEach(f func(wire.Op) wire.Result) func([]wire.Op) (*http.Response, error) {
	return func(ops []wire.Op) (*http.Response, error) {
		rs := make([]wire.Result, len(ops))
		for i, op := range ops {
			rs[i] = f(op)
		}
		return response(http.StatusOK, wire.AppendResponse(nil, rs)), nil
	}
}

func response(status int, body []byte) *http.Response {
	return &http.Response{StatusCode: status, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body))}
}

// A caller alone is sent at once: the fake clock, which moves only when
// every goroutine of the bubble waits for it, does not move.
func TestLoneCallIsSentAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode()
		c := New("node", WithTransport(f))
		defer c.Close()
		start := time.Now()
		for range 3 {
			errc := make(chan error)
			go func() { errc <- c.Put(context.Background(), "k", []byte("v")) }()
			r := <-f.reqs
			require.Len(t, r.ops, 1)
			r.answer <- ok
			require.NoError(t, <-errc)
		}
		require.Zero(t, time.Since(start))
	})
}

// Calls made while the only sender waits for its answer go together in
// the next request.
func TestConcurrentCallsAreBatched(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode()
		c := New("node", WithTransport(f), WithMaxInFlight(2))
		defer c.Close()
		var wg sync.WaitGroup
		get := func(key string) {
			wg.Go(func() {
				v, err := c.Get(context.Background(), key)
				require.NoError(t, err)
				require.Equal(t, "v", string(v))
			})
		}
		get("a")
		first := <-f.reqs
		get("b")
		second := <-f.reqs
		for i := range 10 {
			get(fmt.Sprint(i))
		}
		synctest.Wait()
		select {
		case r := <-f.reqs:
			t.Fatalf("a third request in flight: %v", r.ops)
		default:
		}
		first.answer <- ok
		third := <-f.reqs
		require.Len(t, third.ops, 10)
		second.answer <- ok
		third.answer <- ok
		wg.Wait()
		require.Equal(t, []wire.Op{{Kind: wire.Get, Key: "a"}}, first.ops)
		require.Equal(t, []wire.Op{{Kind: wire.Get, Key: "b"}}, second.ops)
	})
}

// An operation whose context ends before it is sent is never sent and
// is refused; one whose context ends in flight has an unknown outcome.
func TestContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode()
		c := New("node", WithTransport(f), WithMaxInFlight(1))
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		errA := make(chan error)
		go func() { errA <- c.Put(ctx, "a", []byte("1")) }()
		<-f.reqs // never answered
		queuedCtx, cancelQueued := context.WithCancel(context.Background())
		errB := make(chan error)
		go func() { errB <- c.Delete(queuedCtx, "b") }()
		synctest.Wait()
		cancelQueued()
		err := <-errB
		require.ErrorIs(t, err, ErrRefused)
		require.ErrorIs(t, err, context.Canceled)

		// a's deadline passes while its request waits for an answer.
		err = <-errA
		require.ErrorIs(t, err, ErrUnknownOutcome)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		synctest.Wait()
		select {
		case r := <-f.reqs:
			t.Fatalf("sent after its context ended: %v", r.ops)
		default:
		}
	})
}

func TestErrors(t *testing.T) {
	f := newFakeNode()
	c := New("node", WithTransport(f), WithMaxInFlight(1))
	defer c.Close()
	ctx := context.Background()
	serve := func(answer func([]wire.Op) (*http.Response, error)) {
		go func() { (<-f.reqs).answer <- answer }()
	}
	perOp := func(status int, msg string) func([]wire.Op) (*http.Response, error) {
		return answerEach(func(wire.Op) wire.Result { return wire.Result{Status: status, Body: []byte(msg + "\n")} })
	}
	for _, tc := range []struct {
		name   string
		answer func([]wire.Op) (*http.Response, error)
		get    bool
		kind   error
	}{
		{"not found", perOp(404, `no key "k"`), true, ErrNotFound},
		{"refused", perOp(503, "no leader"), false, ErrRefused},
		{"deadline on the node", perOp(504, "deadline passed"), false, ErrUnknownOutcome},
		{"key too long", perOp(413, "the key is too long"), false, ErrInvalid},
		{"status the API does not name", perOp(500, "?"), false, ErrUnknownOutcome},
		{"put answered 200", perOp(200, ""), false, ErrUnknownOutcome},
		{"batch refused", func([]wire.Op) (*http.Response, error) { return response(400, []byte("malformed batch\n")), nil }, true, ErrInvalid},
		{"batch unavailable", func([]wire.Op) (*http.Response, error) { return response(503, []byte("stopping\n")), nil }, false, ErrRefused},
		{"answer malformed", func([]wire.Op) (*http.Response, error) { return response(200, []byte{1, 2}), nil }, false, ErrUnknownOutcome},
		{"connection refused", func([]wire.Op) (*http.Response, error) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
		}, false, ErrRefused},
		{"connection lost", func([]wire.Op) (*http.Response, error) { return nil, io.ErrUnexpectedEOF }, true, ErrUnknownOutcome},
	} {
		serve(tc.answer)
		var err error
		if tc.get {
			var v []byte
			v, err = c.Get(ctx, "k")
			require.Nil(t, v, tc.name)
		} else {
			err = c.Put(ctx, "k", []byte("v"))
		}
		require.ErrorIs(t, err, tc.kind, tc.name)
		for _, other := range []error{ErrNotFound, ErrRefused, ErrUnknownOutcome, ErrInvalid, ErrClosed} {
			if other != tc.kind {
				require.NotErrorIs(t, err, other, tc.name)
			}
		}
	}

	var e *Error
	serve(perOp(404, `no key "k"`))
	_, err := c.GetStale(ctx, "k")
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Status)
	require.Equal(t, `no key "k"`, e.Msg)

	// Too large for any batch: refused here, nothing sent.
	err = c.Put(ctx, "big", make([]byte, wire.MaxRequestBytes))
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "more than a batch may carry")
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode()
		c := New("node", WithTransport(f), WithMaxInFlight(1))
		errA, errB := make(chan error), make(chan error)
		go func() { errA <- c.Put(context.Background(), "a", []byte("1")) }()
		<-f.reqs
		go func() { errB <- c.Put(context.Background(), "b", []byte("2")) }()
		synctest.Wait()
		go c.Close()
		require.ErrorIs(t, <-errB, ErrClosed)
		require.ErrorIs(t, <-errA, ErrUnknownOutcome)
		synctest.Wait()
		require.ErrorIs(t, c.Delete(context.Background(), "c"), ErrClosed)
	})
}

// The queue is cut into batches within wire's limits.
func TestBatchLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNode()
		c := New("node", WithTransport(f), WithMaxInFlight(1))
		defer c.Close()
		var wg sync.WaitGroup
		put := func(key string, size int) {
			wg.Go(func() { require.NoError(t, c.Put(context.Background(), key, make([]byte, size))) })
		}
		put("first", 1)
		first := <-f.reqs
		for i := range wire.MaxOps + 5 {
			put(fmt.Sprint(i), 1)
		}
		synctest.Wait()
		// Two of these fit in a request, not three.
		big := wire.MaxRequestBytes / 3
		for i := range 4 {
			put(fmt.Sprint("big", i), big)
		}
		synctest.Wait()
		first.answer <- ok
		var sizes []int
		for n := 0; n < wire.MaxOps+5+4; {
			r := <-f.reqs
			require.LessOrEqual(t, len(wire.AppendRequest(nil, r.ops)), wire.MaxRequestBytes)
			sizes = append(sizes, len(r.ops))
			n += len(r.ops)
			r.answer <- ok
		}
		wg.Wait()
		require.Equal(t, []int{wire.MaxOps, 5 + 2, 2}, sizes)
	})
}
