package raftkv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raftly/raft/raftpb"
)

// The peer protocol. Every request carries the sender's ID and the ID it
// believes it is talking to; a node answers 409 to a request meant for
// another node, so that a stale or mistyped address shows up as an
// unreachable peer rather than as messages delivered to the wrong node.
//
// POST /raft/stream opens a long-lived stream of messages from one node to
// another. The receiver answers 200 at once and keeps the response open
// while it reads the request body, a sequence of frames:
//
//	frame = uvarint(len(msg)) msg     msg: a marshalled raftpb.Message
//
// until the sender ends the body. net/http's connection writer reads the
// chunked request body straight from the sender's queue, a batch of frames
// at a time, and flushes the connection after every chunk. A receiver that meets a malformed frame
// drops the connection.
//
// POST /raft/snapshot carries one MsgSnap, with a Content-Length:
//
//	body = uvarint(len(head)) head data
//
// head is the marshalled message with Snapshot.Data left out and data is
// Snapshot.Data, so that neither side copies the snapshot into a second
// encoding. 200 means the receiver delivered the message without error.
const (
	streamPath     = "/raft/stream"
	snapshotPath   = "/raft/snapshot"
	headerRaftFrom = "X-Raft-From"
	headerRaftTo   = "X-Raft-To"
)

const (
	defaultPeerQueueSize = 4096

	// maxFrameSize bounds one message on a stream (and the head of a
	// snapshot): 64 MiB of entries and room for their framing. A frame
	// above it is refused by the receiver and never sent by the sender.
	maxFrameSize = 64<<20 + 64<<10
	// maxSnapshotSize bounds the body of a snapshot request.
	maxSnapshotSize = 1 << 30

	// A batch stops taking messages from the queue once its encoding
	// reaches streamBatchBytes (a larger message is still sent, alone).
	streamBatchBytes = 1 << 20
	// Buffers that grew past streamRetainBytes for a large message are
	// let go once it is written (sender) or delivered (receiver).
	streamRetainBytes = 4 << 20

	peerDialTimeout = time.Second
	// handshakeTimeout bounds the wait for the peer's answer to a new
	// stream; streamWriteTimeout bounds one batch write, after which the
	// peer is taken for dead (a peer that stopped reading, or a
	// connection into a black hole).
	handshakeTimeout   = 5 * time.Second
	streamWriteTimeout = 10 * time.Second

	// Backoff between attempts to open a stream to a peer that is down:
	// doubling from peerMinBackoff to peerMaxBackoff, and back to
	// peerMinBackoff once a stream was opened.
	peerMinBackoff = 50 * time.Millisecond
	peerMaxBackoff = time.Second
)

// TransportConfig configures a Transport.
type TransportConfig struct {
	ID int64 // this node
	// Deliver hands an incoming message to the node (node.Step). Called
	// from the transport's goroutines, in order for the messages of one
	// sender; must not block for long. The context ends when the
	// transport is closed or the sender goes away. An error drops that
	// message and nothing else. nil drops every message.
	Deliver func(ctx context.Context, m raftpb.Message) error
	// Unreachable is called (node.ReportUnreachable) when a message to id
	// was dropped: queue full, peer down, connection broken. It is called
	// from Send and from the transport's goroutines. nil: not called.
	Unreachable func(id int64)
	// SnapshotDone is called (node.ReportSnapshot) with the outcome of
	// sending a MsgSnap to id: failed false when the peer's handler
	// received the whole message and delivered it. It is called exactly
	// once for every MsgSnap given to Send before Close, from Send or from
	// the transport's goroutines, except for snapshots still in flight
	// when Close is called. nil: not called.
	SnapshotDone func(id int64, failed bool)
	QueueSize    int          // messages queued per peer before dropping; 0 means 4096
	Logger       *slog.Logger // nil: slog.Default()
}

// Transport carries Raft messages between raftkv nodes over HTTP/1.1: one
// long-lived stream per peer for ordinary messages, batched, and one
// request per snapshot. Send never blocks; what cannot be sent is dropped
// and reported, and Raft sends again. Its methods may be called from any
// goroutine.
type Transport struct {
	id           int64
	deliver      func(context.Context, raftpb.Message) error
	unreachable  func(int64)
	snapshotDone func(int64, bool)
	queueSize    int
	logger       *slog.Logger

	client  *http.Client
	handler http.Handler

	// ctx ends at Close; every goroutine and request of the transport
	// lives under it.
	ctx    context.Context
	cancel context.CancelFunc

	blocked atomic.Pointer[map[int64]struct{}] // nil: none

	// discarded counts incoming messages dropped because their sender is
	// blocked (tests wait on it).
	discarded atomic.Int64

	mu sync.RWMutex
	// Invariant: once closed is set, no peer, snapshot goroutine or
	// inbound request is added (wg.Add happens only under mu with closed
	// false).
	closed  bool
	peers   map[int64]*transportPeer
	inbound map[*http.ResponseController]struct{} // open incoming requests

	// wg counts peer and snapshot goroutines and the handlers of inbound
	// requests.
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewTransport returns a Transport with no peers. Its Handler must be
// served for other nodes to reach it.
func NewTransport(cfg TransportConfig) *Transport {
	t := &Transport{
		id:           cfg.ID,
		deliver:      cfg.Deliver,
		unreachable:  cfg.Unreachable,
		snapshotDone: cfg.SnapshotDone,
		queueSize:    cfg.QueueSize,
		logger:       cfg.Logger,
		peers:        make(map[int64]*transportPeer),
		inbound:      make(map[*http.ResponseController]struct{}),
	}
	if t.deliver == nil {
		t.deliver = func(context.Context, raftpb.Message) error { return nil }
	}
	if t.unreachable == nil {
		t.unreachable = func(int64) {}
	}
	if t.snapshotDone == nil {
		t.snapshotDone = func(int64, bool) {}
	}
	if t.queueSize <= 0 {
		t.queueSize = defaultPeerQueueSize
	}
	if t.logger == nil {
		t.logger = slog.Default()
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.client = &http.Client{Transport: &http.Transport{
		Proxy: nil, // peers are dialled directly
		DialContext: (&net.Dialer{
			Timeout:   peerDialTimeout,
			KeepAlive: 15 * time.Second,
		}).DialContext,
		MaxIdleConns:           16,
		MaxIdleConnsPerHost:    2, // a stream and a snapshot
		IdleConnTimeout:        time.Minute,
		ResponseHeaderTimeout:  30 * time.Second, // after a snapshot is written
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
		WriteBufferSize:        64 << 10,
	}}

	mux := http.NewServeMux()
	mux.HandleFunc("POST "+streamPath, t.serveStream)
	mux.HandleFunc("POST "+snapshotPath, t.serveSnapshot)
	t.handler = mux
	return t
}

// SetPeer adds peer id at addr (host:port of its peer listener) or changes
// its address. Idempotent. A change of address drops the messages queued
// for the old one. Does nothing after Close.
func (t *Transport) SetPeer(id int64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if old := t.peers[id]; old != nil {
		if old.addr == addr {
			return
		}
		old.cancel()
	}
	p := &transportPeer{t: t, id: id, addr: addr, queue: make(chan raftpb.Message, t.queueSize)}
	p.ctx, p.cancel = context.WithCancel(t.ctx)
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
}

// Send queues msgs for their destinations and returns at once, never
// blocking: a message to an unknown peer or to a full queue is dropped and
// Unreachable(id) is called (at most once per Send call per peer). A
// message to a blocked peer is dropped without a report.
//
// A MsgSnap is sent in its own request, one at a time per peer: a MsgSnap
// to an unknown or blocked peer, or to a peer that is still receiving the
// previous one, is dropped and reported with SnapshotDone(id, true) at
// once. Send does not keep msgs, but a MsgSnap's Snapshot.Data is read
// while it is being sent and must not be modified.
//
// Send after Close drops everything without reporting.
func (t *Transport) Send(msgs []raftpb.Message) {
	var lostBuf, snapFailedBuf [8]int64
	lost, snapFailed := lostBuf[:0], snapFailedBuf[:0]

	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return
	}
	blocked := t.blocked.Load()
	for i := range msgs {
		m := &msgs[i]
		snap := m.Type == raftpb.MsgSnap
		if inBlockSet(blocked, m.To) {
			if snap {
				snapFailed = append(snapFailed, m.To)
			}
			continue
		}
		p := t.peers[m.To]
		switch {
		case p == nil:
			lost = appendIDOnce(lost, m.To)
			if snap {
				snapFailed = append(snapFailed, m.To)
			}
		case snap:
			if !p.snapshotting.CompareAndSwap(false, true) {
				snapFailed = append(snapFailed, m.To)
				continue
			}
			t.wg.Add(1) // under mu, closed is false
			go p.sendSnapshot(*m)
		default:
			select {
			case p.queue <- *m:
			default:
				lost = appendIDOnce(lost, m.To)
			}
		}
	}
	t.mu.RUnlock()

	for _, id := range lost {
		t.unreachable(id)
	}
	for _, id := range snapFailed {
		t.snapshotDone(id, true)
	}
}

func appendIDOnce(ids []int64, id int64) []int64 {
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

// Handler serves the peer endpoints (mounted at "/" of the peer listener;
// it owns all paths under /raft/). Streams are long-lived: the handler
// clears the connection's read and write deadlines for them, so the
// server's ReadTimeout and WriteTimeout do not cut them.
func (t *Transport) Handler() http.Handler { return t.handler }

// Block makes the transport drop every message to and from the given
// peers (fault injection for tests; nil or empty heals). Incoming messages
// from a blocked peer are read and discarded, not delivered; outgoing ones
// are dropped without calling Unreachable (a MsgSnap is reported failed).
// Connections stay open.
func (t *Transport) Block(ids []int64) {
	if len(ids) == 0 {
		t.blocked.Store(nil)
		t.logger.Info("peer transport healed")
		return
	}
	set := make(map[int64]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	t.blocked.Store(&set)
	t.logger.Info("peer transport blocking", "peers", ids)
}

func (t *Transport) isBlocked(id int64) bool { return inBlockSet(t.blocked.Load(), id) }

func inBlockSet(set *map[int64]struct{}, id int64) bool {
	if set == nil {
		return false
	}
	_, ok := (*set)[id]
	return ok
}

// Close stops every goroutine and closes connections; Send after Close
// drops. Incoming requests are cut off, and when Close returns no Deliver,
// Unreachable or SnapshotDone call is running or will be made.
// Idempotent.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.closed = true
		t.cancel()
		for rc := range t.inbound {
			// Unblocks the handler's read; the handler sees ctx ended.
			_ = rc.SetReadDeadline(time.Unix(1, 0))
		}
		t.mu.Unlock()
		t.wg.Wait()
		t.client.CloseIdleConnections()
	})
}

// transportPeer is the sending side towards one node: a queue, and the
// goroutine that owns it and the stream.
type transportPeer struct {
	t      *Transport
	id     int64
	addr   string
	queue  chan raftpb.Message
	ctx    context.Context // ends when the peer is removed or replaced
	cancel context.CancelFunc

	snapshotting atomic.Bool // a snapshot goroutine is running

	// Owned by run.
	buf  []byte         // the batch being written
	cur  raftpb.Message // the message being encoded
	down bool           // the last attempt failed; logged once
}

// run owns the peer's queue until the peer is removed. It opens a stream
// when there is something to send, writes batches until the stream
// breaks, then waits (dropping what arrives meanwhile) and starts over.
func (p *transportPeer) run() {
	defer p.t.wg.Done()
	var backoff time.Duration
	for {
		var first raftpb.Message
		select {
		case <-p.ctx.Done():
			return
		case first = <-p.queue:
		}
		if p.t.isBlocked(p.id) {
			continue
		}
		opened, err := p.stream(first)
		if p.ctx.Err() != nil {
			return
		}
		// Whatever was in flight, or waiting for the stream, is lost.
		p.t.unreachable(p.id)
		if !p.down {
			p.down = true
			p.t.logger.Warn("peer unreachable", "peer", p.id, "addr", p.addr, "err", err)
		}
		if opened {
			backoff = 0
		}
		backoff = min(max(2*backoff, peerMinBackoff), peerMaxBackoff)
		if !p.pause(backoff) {
			return
		}
	}
}

// pause waits d, dropping the messages that arrive meanwhile (reported
// once for every burst), and reports false if the peer went away.
func (p *transportPeer) pause(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-p.queue:
			p.dropQueued()
			if !p.t.isBlocked(p.id) {
				p.t.unreachable(p.id)
			}
		}
	}
}

func (p *transportPeer) dropQueued() {
	for {
		select {
		case <-p.queue:
		default:
			return
		}
	}
}

var (
	errPeerEnded    = errors.New("peer ended the stream")
	errPeerTimeout  = errors.New("timed out")
	errStreamClosed = errors.New("stream closed")
)

// streamAnswer is the peer's answer to opening a stream.
type streamAnswer struct {
	status int
	text   string // the body of a refusal
	err    error
}

// stream opens a stream to the peer, sends first and then batches of
// whatever is queued until the stream breaks or the peer goes away.
// opened reports whether the peer accepted the stream.
func (p *transportPeer) stream(first raftpb.Message) (opened bool, err error) {
	ctx, cancel := context.WithCancelCause(p.ctx)
	body := &batchReader{p: p, ctx: ctx, first: &first}
	body.watchdog = time.AfterFunc(time.Hour, func() {
		cancel(fmt.Errorf("writing a batch: %w", errPeerTimeout))
	})
	body.watchdog.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+streamPath, body)
	if err != nil {
		cancel(err)
		return false, err
	}
	req.ContentLength = -1 // chunked: one chunk per Read of the body
	p.setHeaders(req)

	answered := make(chan streamAnswer, 1)
	ended := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := p.t.client.Do(req)
		if err != nil {
			answered <- streamAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			answered <- streamAnswer{status: resp.StatusCode, text: peerErrorText(resp.Body)}
			return
		}
		answered <- streamAnswer{status: resp.StatusCode}
		// The response stays open while the peer reads the stream.
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
		if err == nil {
			err = errPeerEnded
		}
		ended <- err
	}()
	defer func() {
		cancel(errStreamClosed)
		body.end()
		<-done
	}()

	handshake := time.NewTimer(handshakeTimeout)
	select {
	case a := <-answered:
		handshake.Stop()
		if a.err != nil {
			return false, a.err
		}
		if a.status != http.StatusOK {
			return false, fmt.Errorf("refused with %d: %s", a.status, a.text)
		}
	case <-handshake.C:
		return false, fmt.Errorf("no answer to the stream: %w", errPeerTimeout)
	case <-ctx.Done():
		handshake.Stop()
		return false, context.Cause(ctx)
	}
	if p.down {
		p.down = false
		p.t.logger.Info("peer reachable again", "peer", p.id, "addr", p.addr)
	}
	select {
	case err := <-ended:
		return true, err
	case <-ctx.Done():
		return true, context.Cause(ctx)
	}
}

// batchReader is the body of a stream. net/http's connection writer reads
// it, so that it takes the peer's messages from the queue itself: each Read
// that finds the last batch written waits for the queue and encodes the
// next batch. A peer that does not take a batch within streamWriteTimeout
// (it stopped reading, or the connection leads nowhere) ends the stream.
type batchReader struct {
	p        *transportPeer
	ctx      context.Context
	watchdog *time.Timer // armed while a batch is with the writer

	mu      sync.Mutex // held by Read: end waits for it
	first   *raftpb.Message
	pending []byte // what is left of p.buf to return
	ended   bool
}

func (r *batchReader) Read(b []byte) (int, error) {
	r.watchdog.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.p
	for len(r.pending) == 0 {
		if r.ended {
			return 0, errStreamClosed
		}
		if cap(p.buf) > streamRetainBytes {
			p.buf = nil
		}
		if r.first != nil {
			p.cur, r.first = *r.first, nil
		} else {
			select {
			case p.cur = <-p.queue:
			case <-r.ctx.Done():
				return 0, context.Cause(r.ctx)
			}
		}
		if p.fillBatch() {
			p.t.unreachable(p.id)
		}
		r.pending = p.buf
	}
	n := copy(b, r.pending)
	r.pending = r.pending[n:]
	r.watchdog.Reset(streamWriteTimeout)
	return n, nil
}

// end makes every later Read fail and waits for one in progress; the
// stream's context must have ended.
func (r *batchReader) end() {
	r.watchdog.Stop()
	r.mu.Lock()
	r.ended, r.pending = true, nil
	r.mu.Unlock()
}

// fillBatch encodes p.cur and whatever else is queued, up to streamBatchBytes,
// into p.buf. Messages to a blocked peer are left out; lost reports that a
// message could not be encoded.
func (p *transportPeer) fillBatch() (lost bool) {
	defer func() { p.cur = raftpb.Message{} }() // keeps no entries alive
	p.buf = p.buf[:0]
	blocked := p.t.isBlocked(p.id)
	for {
		if !blocked {
			var err error
			if p.buf, err = appendFrame(p.buf, &p.cur); err != nil {
				lost = true
				p.t.logger.Warn("dropped message", "peer", p.id, "type", p.cur.Type, "err", err)
			}
		}
		if len(p.buf) >= streamBatchBytes {
			return lost
		}
		select {
		case p.cur = <-p.queue:
		default:
			return lost
		}
	}
}

var errFrameTooLarge = errors.New("frame too large")

// appendFrame appends m to buf as one frame. On error buf is returned
// unchanged.
func appendFrame(buf []byte, m *raftpb.Message) ([]byte, error) {
	size := m.Size()
	if size > maxFrameSize {
		return buf, fmt.Errorf("%w: %d bytes", errFrameTooLarge, size)
	}
	start := len(buf)
	buf = binary.AppendUvarint(buf, uint64(size))
	n := len(buf)
	if cap(buf)-n < size {
		grown := make([]byte, n, max(2*cap(buf), n+size))
		copy(grown, buf)
		buf = grown
	}
	buf = buf[:n+size]
	if _, err := m.MarshalToSizedBuffer(buf[n:]); err != nil {
		return buf[:start], err
	}
	return buf, nil
}

func (p *transportPeer) setHeaders(req *http.Request) {
	req.Header.Set(headerRaftFrom, strconv.FormatInt(p.t.id, 10))
	req.Header.Set(headerRaftTo, strconv.FormatInt(p.id, 10))
	req.Header.Set("Content-Type", "application/octet-stream")
}

// peerErrorText returns the start of a refusal's body, for the log.
func peerErrorText(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 256))
	return string(bytes.TrimSpace(b))
}

// sendSnapshot posts a MsgSnap to the peer and reports the outcome. It
// runs in its own goroutine, one at a time per peer.
func (p *transportPeer) sendSnapshot(m raftpb.Message) {
	defer p.t.wg.Done()
	err := p.postSnapshot(m)
	p.snapshotting.Store(false) // before reporting: Raft may send the next one at once
	if p.t.ctx.Err() != nil {
		return // closed: nobody to report to
	}
	if err != nil {
		p.t.logger.Warn("sending snapshot failed", "peer", p.id, "addr", p.addr, "index", m.Snapshot.Index, "err", err)
	}
	p.t.snapshotDone(p.id, err != nil)
}

func (p *transportPeer) postSnapshot(m raftpb.Message) error {
	data := m.Snapshot.Data
	m.Snapshot.Data = nil // m is a copy; the caller's message is untouched
	head, err := appendFrame(nil, &m)
	if err != nil {
		return err
	}
	size := int64(len(head)) + int64(len(data))
	if size > maxSnapshotSize {
		return fmt.Errorf("snapshot of %d bytes is above the limit of %d", size, maxSnapshotSize)
	}
	ctx, cancel := context.WithTimeout(p.ctx, snapshotTimeout(size))
	defer cancel()
	body := func() io.Reader { return io.MultiReader(bytes.NewReader(head), bytes.NewReader(data)) }
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+snapshotPath, body())
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
	p.setHeaders(req)
	resp, err := p.t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("refused with %d: %s", resp.StatusCode, peerErrorText(resp.Body))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10)) // lets the connection be reused
	return nil
}

// snapshotTimeout is how long sending or receiving a snapshot of size
// bytes may take: a minute, and a second for every 8 MiB.
func snapshotTimeout(size int64) time.Duration {
	return time.Minute + time.Duration(size>>23)*time.Second
}

// The receiving side.
