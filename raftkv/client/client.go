// Package client is a Go client of one raftkv node (package raftkv) that
// batches: the operations that callers of one Client start while its
// requests are in flight go to the node together, as one POST /batch
// (package wire). A caller alone is not delayed: with a sender free, its
// operation leaves at once.
//
// Operations are independent, not a transaction: each has the meaning
// and the outcome it has on raftkv's single-key routes, and its own error.
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftly/raft/raftkv/client/wire"
)

// What a failed operation's error wraps; errors.Is tells them apart.
var (
	// ErrNotFound: a get found no value under the key.
	ErrNotFound = errors.New("raftkv: key not found")
	// ErrRefused: nothing was written (the node had no leader, refused
	// the request, or was never reached); the operation may be retried.
	ErrRefused = errors.New("raftkv: refused, nothing written")
	// ErrUnknownOutcome: no answer came, or the node's deadline passed;
	// a write may or may not be applied.
	ErrUnknownOutcome = errors.New("raftkv: outcome unknown")
	// ErrInvalid: the operation breaks a limit of the node (key empty or
	// too long, value too large) and was not done.
	ErrInvalid = errors.New("raftkv: invalid operation")
	// ErrClosed: the Client was closed before the operation was sent.
	ErrClosed = errors.New("raftkv: client closed")
)

// Error is the error of a failed operation. It wraps Kind, one of the
// package's sentinels, and Cause, if any (a context's or the network's
// error).
type Error struct {
	Kind error
	// Status is the node's HTTP status for the operation, or for the
	// whole batch if it refused it; 0 when no answer came.
	Status int
	// Msg is the node's one-line message, or what went wrong.
	Msg   string
	Cause error
}

func (e *Error) Error() string {
	s := e.Kind.Error()
	if e.Status != 0 {
		s += fmt.Sprintf(" (%d)", e.Status)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// Option configures a Client.
type Option func(*Client)

// WithMaxInFlight sets how many batch requests a Client may have in
// flight at once, each on its own keep-alive connection; 1 by default:
// the operations that arrive while a batch is in flight go together in
// the next, so batches grow with the load. More in flight means smaller
// batches, and a slow batch holding up fewer operations.
func WithMaxInFlight(n int) Option {
	return func(c *Client) { c.maxInFlight = max(n, 1) }
}

// WithTransport sets the http.RoundTripper the Client's requests go
// through; by default a Transport of the Client's own.
func WithTransport(rt http.RoundTripper) Option {
	return func(c *Client) { c.hc.Transport = rt }
}

// Client talks to one raftkv node. It is safe for concurrent use; its
// methods block until the operation's outcome is known or ctx is done.
type Client struct {
	url         string
	hc          *http.Client
	maxInFlight int
	stop        context.CancelFunc // cancels the batches in flight
	stopped     context.Context

	sent atomic.Int64 // batch requests sent

	mu      sync.Mutex
	queue   []*call
	senders int // senders running, at most maxInFlight
	closed  bool
	wg      sync.WaitGroup // the senders
}

// call is one operation waiting for its result.
type call struct {
	op       wire.Op
	deadline time.Time // zero: none
	done     chan struct{}
	res      wire.Result // set before done is closed, unless err is
	err      error
}

// New returns a Client of the node whose client API listens on addr
// (host:port). It connects lazily.
func New(addr string, opts ...Option) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	c := &Client{url: "http://" + addr + "/batch", hc: &http.Client{Transport: tr}, maxInFlight: 1}
	for _, o := range opts {
		o(c)
	}
	c.stopped, c.stop = context.WithCancel(context.Background())
	return c
}

// Put stores value under key; it returns nil once the write is applied.
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	_, err := c.do(ctx, wire.Op{Kind: wire.Put, Key: key, Value: value})
	return err
}

// Delete removes key, present or not; it returns nil once applied.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.do(ctx, wire.Op{Kind: wire.Delete, Key: key})
	return err
}

// Get reads key linearizably: the value any write acknowledged before the
// call wrote, or a later one. A missing key is ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) ([]byte, error) {
	return c.read(ctx, wire.Op{Kind: wire.Get, Key: key})
}

// GetStale reads key from the node's local state, which may lag.
func (c *Client) GetStale(ctx context.Context, key string) ([]byte, error) {
	return c.read(ctx, wire.Op{Kind: wire.GetStale, Key: key})
}

func (c *Client) read(ctx context.Context, op wire.Op) ([]byte, error) {
	res, err := c.do(ctx, op)
	if err != nil {
		return nil, err
	}
	return res.Body, nil
}

// Requests returns how many batch requests the Client has sent: fewer
// than its operations when they went together.
func (c *Client) Requests() int64 { return c.sent.Load() }

// Close fails the operations not yet sent with ErrClosed, cancels the
// batches in flight (their operations' outcome is unknown), waits for its
// senders, and closes its connections. Later calls fail with ErrClosed.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	queued := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, cl := range queued {
		cl.err = &Error{Kind: ErrClosed}
		close(cl.done)
	}
	c.stop()
	c.wg.Wait()
	c.hc.CloseIdleConnections()
}

// do queues op, starts a sender if one is free, and waits for the result.
func (c *Client) do(ctx context.Context, op wire.Op) (wire.Result, error) {
	if n := wire.RequestHeaderSize + wire.OpSize(op); n > wire.MaxRequestBytes {
		return wire.Result{}, &Error{Kind: ErrInvalid, Msg: fmt.Sprintf("the %v of %q needs %d bytes, more than a batch may carry", op.Kind, op.Key, n)}
	}
	cl := &call{op: op, done: make(chan struct{})}
	cl.deadline, _ = ctx.Deadline()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return wire.Result{}, &Error{Kind: ErrClosed}
	}
	c.queue = append(c.queue, cl)
	if c.senders < c.maxInFlight {
		c.senders++
		c.wg.Add(1)
		go c.send()
	}
	c.mu.Unlock()
	select {
	case <-cl.done:
		if cl.err != nil {
			return wire.Result{}, cl.err
		}
		return cl.res, resultError(op.Kind, cl.res)
	case <-ctx.Done():
	}
	c.mu.Lock()
	i := slices.Index(c.queue, cl)
	if i >= 0 {
		c.queue = slices.Delete(c.queue, i, i+1)
	}
	c.mu.Unlock()
	if i >= 0 {
		return wire.Result{}, &Error{Kind: ErrRefused, Msg: "not sent", Cause: ctx.Err()}
	}
	return wire.Result{}, &Error{Kind: ErrUnknownOutcome, Msg: "no answer in time", Cause: ctx.Err()}
}

// send sends everything queued, batch after batch, until the queue is
// empty.
func (c *Client) send() {
	defer c.wg.Done()
	var buf []byte
	for {
		c.mu.Lock()
		batch := c.take()
		if len(batch) == 0 {
			c.senders--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		buf = c.roundTrip(buf, batch)
		// The callers just answered may have their next operations ready:
		// let them queue before the next batch is taken.
		runtime.Gosched()
	}
}

// take removes from the queue the operations of the next batch, as many
// as wire's limits allow. c.mu must be held.
func (c *Client) take() []*call {
	n, size := 0, wire.RequestHeaderSize
	for n < len(c.queue) && n < wire.MaxOps {
		size += wire.OpSize(c.queue[n].op)
		if size > wire.MaxRequestBytes {
			break
		}
		n++
	}
	batch := slices.Clone(c.queue[:n])
	c.queue = slices.Delete(c.queue, 0, n)
	return batch
}

// roundTrip sends batch, encoded in buf, and hands each call its result.
// It returns buf for the next batch.
func (c *Client) roundTrip(buf []byte, batch []*call) []byte {
	ops := make([]wire.Op, len(batch))
	for i, cl := range batch {
		ops[i] = cl.op
	}
	buf = wire.AppendRequest(buf[:0], ops)
	rs, err := c.post(batch, buf)
	for i, cl := range batch {
		if err != nil {
			cl.err = err
		} else {
			cl.res = rs[i]
		}
		close(cl.done)
	}
	return buf
}

// post sends one batch request and decodes its answer.
func (c *Client) post(batch []*call, body []byte) ([]wire.Result, error) {
	// The request lasts as long as its last caller waits, or until Close.
	ctx := c.stopped
	var deadline time.Time
	for _, cl := range batch {
		if cl.deadline.IsZero() {
			deadline = time.Time{}
			break
		}
		if cl.deadline.After(deadline) {
			deadline = cl.deadline
		}
	}
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Kind: ErrInvalid, Cause: err}
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	c.sent.Add(1)
	resp, err := c.hc.Do(req)
	if err != nil {
		if op, ok := errors.AsType[*net.OpError](err); ok && op.Op == "dial" {
			return nil, &Error{Kind: ErrRefused, Msg: "not sent", Cause: err}
		}
		return nil, &Error{Kind: ErrUnknownOutcome, Cause: err}
	}
	defer resp.Body.Close()
	var answer []byte
	if n := resp.ContentLength; n >= 0 && n <= wire.MaxRequestBytes {
		answer = make([]byte, n)
		_, err = io.ReadFull(resp.Body, answer)
	} else {
		answer, err = io.ReadAll(resp.Body)
	}
	if err != nil {
		return nil, &Error{Kind: ErrUnknownOutcome, Msg: "reading the answer", Cause: err}
	}
	if resp.StatusCode != http.StatusOK {
		// The node refused the whole batch (a 4xx or 503: before doing
		// any of it).
		kind := ErrUnknownOutcome
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable:
			kind = ErrRefused
		case resp.StatusCode/100 == 4:
			kind = ErrInvalid
		}
		return nil, &Error{Kind: kind, Status: resp.StatusCode, Msg: string(bytes.TrimSpace(answer))}
	}
	rs, err := wire.DecodeResponse(answer, len(batch))
	if err != nil {
		return nil, &Error{Kind: ErrUnknownOutcome, Cause: err}
	}
	return rs, nil
}

// resultError is the error of an operation of kind k answered res, nil
// for success. A status the API does not name leaves the outcome unknown.
func resultError(k wire.Kind, res wire.Result) error {
	var kind error
	switch s := res.Status; {
	case s == http.StatusOK && (k == wire.Get || k == wire.GetStale),
		s == http.StatusNoContent && (k == wire.Put || k == wire.Delete):
		return nil
	case s == http.StatusNotFound && (k == wire.Get || k == wire.GetStale):
		kind = ErrNotFound
	case s == http.StatusServiceUnavailable:
		kind = ErrRefused
	case s == http.StatusBadRequest, s == http.StatusRequestEntityTooLarge:
		kind = ErrInvalid
	default:
		kind = ErrUnknownOutcome
	}
	return &Error{Kind: kind, Status: res.Status, Msg: string(bytes.TrimSpace(res.Body))}
}
