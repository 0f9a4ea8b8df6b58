package raftkv

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/raftly/raft/raftpb"
)

// The receiving side of the transport: the peer endpoints.

// admit registers an incoming request so that Close can cut it off;
// false after Close. The caller must call release when it is done.
func (t *Transport) admit(rc *http.ResponseController) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.inbound[rc] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *Transport) release(rc *http.ResponseController) {
	t.mu.Lock()
	delete(t.inbound, rc)
	t.mu.Unlock()
	t.wg.Done()
}

// checkPeer validates the headers of a peer request and returns the
// sender's ID; on false it has answered.
func (t *Transport) checkPeer(w http.ResponseWriter, r *http.Request) (from int64, ok bool) {
	from, err := strconv.ParseInt(r.Header.Get(headerRaftFrom), 10, 64)
	if err != nil {
		refusePeer(w, http.StatusBadRequest, "missing or malformed "+headerRaftFrom)
		return 0, false
	}
	to, err := strconv.ParseInt(r.Header.Get(headerRaftTo), 10, 64)
	if err != nil {
		refusePeer(w, http.StatusBadRequest, "missing or malformed "+headerRaftTo)
		return 0, false
	}
	if to != t.id {
		refusePeer(w, http.StatusConflict, fmt.Sprintf("this is node %d, not node %d", t.id, to))
		return 0, false
	}
	return from, true
}

// refusePeer answers with an error and closes the connection after it, so
// that the server does not wait for the rest of a request body nobody
// will read.
func refusePeer(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Connection", "close")
	http.Error(w, msg, code)
}

// deliverContext returns the context for Deliver calls of request r: it
// ends with the request or with the transport.
func (t *Transport) deliverContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

func (t *Transport) serveStream(w http.ResponseWriter, r *http.Request) {
	from, ok := t.checkPeer(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	// A stream lives as long as the sender keeps it; the server's
	// timeouts are for clients. Cleared before admit, so that a deadline
	// set by Close is not undone.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	if !t.admit(rc) {
		refusePeer(w, http.StatusServiceUnavailable, "transport closed")
		return
	}
	defer t.release(rc)
	// The answer goes out before the body is read, so full duplex.
	if err := rc.EnableFullDuplex(); err != nil {
		refusePeer(w, http.StatusInternalServerError, "cannot stream: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}

	ctx, cancel := t.deliverContext(r)
	defer cancel()
	var deliverErrs int
	err := readFrames(bufio.NewReaderSize(r.Body, 32<<10), func(m raftpb.Message) error {
		if t.isBlocked(from) || t.isBlocked(m.From) {
			t.discarded.Add(1)
			return nil
		}
		if err := t.deliver(ctx, m); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if deliverErrs++; deliverErrs == 1 {
				t.logger.Warn("refused message", "peer", from, "type", m.Type, "err", err)
			}
		}
		return nil
	})
	if err == nil {
		return // the sender ended the stream
	}
	switch {
	case t.ctx.Err() != nil || ctx.Err() != nil:
	case brokenPeerConn(err):
		t.logger.Debug("stream broken", "peer", from, "remote", r.RemoteAddr, "err", err)
	default:
		t.logger.Warn("dropping stream", "peer", from, "remote", r.RemoteAddr, "err", err)
	}
	// The sender learns from the broken connection; the rest of its
	// body is not worth reading.
	if conn, _, err := rc.Hijack(); err == nil {
		_ = conn.Close()
	} else {
		_ = rc.SetReadDeadline(time.Unix(1, 0))
	}
}

// brokenPeerConn reports whether err is what a connection cut in the middle of
// a request looks like (a sender that went away), rather than bad input.
// A frame cut short is indistinguishable from a connection cut short.
func brokenPeerConn(err error) bool {
	var netErr net.Error
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &netErr)
}

// readFrames reads frames from r until EOF, calling fn for each message,
// and returns nil at a clean EOF (between frames), the error of fn, or an
// error for a malformed or oversized frame or a failed read.
func readFrames(r *bufio.Reader, fn func(raftpb.Message) error) error {
	var buf []byte
	for {
		m, err := readFrame(r, &buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if m.Type == raftpb.MsgSnap {
			return errors.New("malformed message: MsgSnap on a stream")
		}
		if err := fn(m); err != nil {
			return err
		}
		if cap(buf) > streamRetainBytes {
			buf = nil
		}
	}
}

// readFrame reads and decodes one frame, using *buf for its bytes (grown
// as needed; the message shares nothing with it). It returns io.EOF only
// when r ends before the frame starts.
func readFrame(r *bufio.Reader, buf *[]byte) (raftpb.Message, error) {
	var m raftpb.Message
	size, err := binary.ReadUvarint(r)
	if err == io.EOF {
		return m, io.EOF
	}
	if err != nil {
		return m, fmt.Errorf("reading frame length: %w", err)
	}
	if size > maxFrameSize {
		return m, fmt.Errorf("%w: %d bytes", errFrameTooLarge, size)
	}
	frame, err := readGrowing(r, (*buf)[:0], int(size))
	*buf = frame
	if err != nil {
		return m, fmt.Errorf("reading frame of %d bytes: %w", size, err)
	}
	if err := m.Unmarshal(frame); err != nil { // copies bytes out of frame
		return m, fmt.Errorf("malformed message: %w", err)
	}
	return m, nil
}

func (t *Transport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	from, ok := t.checkPeer(w, r)
	if !ok {
		return
	}
	if r.ContentLength < 0 {
		refusePeer(w, http.StatusLengthRequired, "snapshot without a Content-Length")
		return
	}
	if r.ContentLength > maxSnapshotSize {
		refusePeer(w, http.StatusRequestEntityTooLarge, "snapshot too large")
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(snapshotTimeout(r.ContentLength)))
	_ = rc.SetWriteDeadline(time.Time{})
	if !t.admit(rc) {
		refusePeer(w, http.StatusServiceUnavailable, "transport closed")
		return
	}
	defer t.release(rc)

	m, err := readSnapshot(r.Body, r.ContentLength)
	if err != nil {
		if t.ctx.Err() != nil {
			refusePeer(w, http.StatusServiceUnavailable, "transport closed")
			return
		}
		t.logger.Warn("refused snapshot", "peer", from, "remote", r.RemoteAddr, "err", err)
		refusePeer(w, http.StatusBadRequest, err.Error())
		return
	}
	if t.isBlocked(from) || t.isBlocked(m.From) {
		t.discarded.Add(1)
		refusePeer(w, http.StatusServiceUnavailable, "peer blocked")
		return
	}
	ctx, cancel := t.deliverContext(r)
	defer cancel()
	if err := t.deliver(ctx, m); err != nil {
		if t.ctx.Err() != nil {
			refusePeer(w, http.StatusServiceUnavailable, "transport closed")
			return
		}
		t.logger.Warn("refused snapshot", "peer", from, "index", m.Snapshot.Index, "err", err)
		refusePeer(w, http.StatusServiceUnavailable, "not delivered: "+err.Error())
		return
	}
	w.WriteHeader(http.StatusOK)
}

// readSnapshot reads a snapshot body of size bytes: the framed message
// head, then Snapshot.Data.
func readSnapshot(body io.Reader, size int64) (raftpb.Message, error) {
	lr := &io.LimitedReader{R: body, N: size}
	br := bufio.NewReaderSize(lr, 32<<10)
	var buf []byte
	m, err := readFrame(br, &buf)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return m, err
	}
	if m.Type != raftpb.MsgSnap {
		return m, fmt.Errorf("malformed snapshot: a %v", m.Type)
	}
	if len(m.Snapshot.Data) != 0 {
		return m, errors.New("malformed snapshot: data inside the head")
	}
	// What the bufio.Reader holds and what is left of the body.
	rest := int64(br.Buffered()) + lr.N
	data, err := readGrowing(br, nil, int(rest))
	if err != nil {
		return m, fmt.Errorf("reading snapshot data: %w", err)
	}
	if len(data) > 0 {
		m.Snapshot.Data = data
	}
	return m, nil
}

// readGrowing appends n bytes read from r to buf and returns it. It grows buf as
// data arrives, so that a peer announcing a large frame and sending little
// costs little.
func readGrowing(r io.Reader, buf []byte, n int) ([]byte, error) {
	want := len(buf) + n
	for len(buf) < want {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(want, max(2*cap(buf), 64<<10)))
			copy(grown, buf)
			buf = grown
		}
		k, err := r.Read(buf[len(buf):min(cap(buf), want)])
		buf = buf[:len(buf)+k]
		if err == io.EOF && len(buf) < want {
			return buf, io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return buf, err
		}
	}
	return buf, nil
}
