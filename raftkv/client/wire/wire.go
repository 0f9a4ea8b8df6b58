// Package wire is the encoding of raftkv's POST /batch: a request that
// carries a list of independent operations and its answer, one result per
// operation, in order. The server (package raftkv) and the client (package
// client) both use it, so that the format is written once.
//
// A request body:
//
//	version  byte     1
//	count    uvarint  1 to MaxOps
//	count ×  kind     byte     Put, Delete, Get or GetStale
//	         keylen   uvarint
//	         key      keylen bytes
//	         (Put only) vallen uvarint, value vallen bytes
//
// An answer body (status 200):
//
//	version  byte     1
//	count    uvarint  the request's count
//	count ×  status   uvarint  an HTTP status, as the single-key routes answer
//	         bodylen  uvarint
//	         body     bodylen bytes: a Get's value (200), a one-line
//	                  message (an error status), or nothing
//
// Nothing may follow the last operation or result. The decoders check the
// structure only (lengths, kinds, counts); the limits on keys and values are
// the server's, answered per operation.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the first byte of every request and answer body.
const Version = 1

// Limits of one request, which the server answers with 413.
const (
	// MaxOps is the most operations one request may carry.
	MaxOps = 1024
	// MaxRequestBytes is the largest request body: room for one put of the
	// largest key and value raftkv takes, and more.
	MaxRequestBytes = 4 << 20
)

// Kind is what an operation does.
type Kind byte

// Kinds of operations; the values are the wire's.
const (
	Put      Kind = 1 // store Value under Key; 204 once applied
	Delete   Kind = 2 // remove Key; 204 once applied (present or not)
	Get      Kind = 3 // read Key linearizably; 200 with the value, or 404
	GetStale Kind = 4 // read Key from the node's local state; 200 or 404
)

func (k Kind) String() string {
	switch k {
	case Put:
		return "put"
	case Delete:
		return "delete"
	case Get:
		return "get"
	case GetStale:
		return "get-stale"
	}
	return fmt.Sprintf("kind %d", byte(k))
}

// Op is one operation of a request. Value is set for Put only.
type Op struct {
	Kind  Kind
	Key   string
	Value []byte
}

// Result is what the server answered one operation: Status is an HTTP
// status with the meaning it has on the single-key routes, Body a Get's
// value, or an error's one-line message.
type Result struct {
	Status int
	Body   []byte
}

// ErrMalformed is wrapped by every error of the decoders.
var ErrMalformed = errors.New("malformed batch")

// OpSize is the length of op's encoding within a request.
func OpSize(op Op) int {
	n := 1 + uvarintLen(uint64(len(op.Key))) + len(op.Key)
	if op.Kind == Put {
		n += uvarintLen(uint64(len(op.Value))) + len(op.Value)
	}
	return n
}

// RequestHeaderSize bounds the length of a request's version and count.
const RequestHeaderSize = 1 + binary.MaxVarintLen64

// AppendRequest appends the encoding of ops to b.
func AppendRequest(b []byte, ops []Op) []byte {
	b = append(b, Version)
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = append(b, byte(op.Kind))
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		if op.Kind == Put {
			b = binary.AppendUvarint(b, uint64(len(op.Value)))
			b = append(b, op.Value...)
		}
	}
	return b
}

// DecodeRequest decodes a request body. The values of the ops share b's
// memory. A count above MaxOps is an error that wraps ErrTooManyOps.
func DecodeRequest(b []byte) ([]Op, error) {
	d := decoder{b: b}
	n, err := d.header(MaxOps)
	if err != nil {
		return nil, err
	}
	ops := make([]Op, n)
	for i := range ops {
		k := Kind(d.byte())
		if d.err == nil && (k < Put || k > GetStale) {
			return nil, fmt.Errorf("%w: operation %d: unknown kind %d", ErrMalformed, i, byte(k))
		}
		ops[i].Kind = k
		ops[i].Key = string(d.bytes("key"))
		if k == Put {
			ops[i].Value = d.bytes("value")
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: operation %d: %v", ErrMalformed, i, d.err)
		}
	}
	return ops, d.end()
}

// ErrTooManyOps is wrapped by DecodeRequest's error for a count above
// MaxOps.
var ErrTooManyOps = fmt.Errorf("more than %d operations", MaxOps)

// ResponseSize is the length of the encoding of rs.
func ResponseSize(rs []Result) int {
	n := 1 + uvarintLen(uint64(len(rs)))
	for _, r := range rs {
		n += uvarintLen(uint64(r.Status)) + uvarintLen(uint64(len(r.Body))) + len(r.Body)
	}
	return n
}

// AppendResponseHeader appends the start of an answer of n results, which
// AppendResult then appends one by one.
func AppendResponseHeader(b []byte, n int) []byte {
	return binary.AppendUvarint(append(b, Version), uint64(n))
}

// AppendResult appends one result of an answer.
func AppendResult(b []byte, r Result) []byte {
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = binary.AppendUvarint(b, uint64(len(r.Body)))
	return append(b, r.Body...)
}

// AppendResponse appends the encoding of rs to b.
func AppendResponse(b []byte, rs []Result) []byte {
	b = AppendResponseHeader(b, len(rs))
	for _, r := range rs {
		b = AppendResult(b, r)
	}
	return b
}

// DecodeResponse decodes an answer body, which must hold want results.
// The bodies of the results share b's memory.
func DecodeResponse(b []byte, want int) ([]Result, error) {
	d := decoder{b: b}
	n, err := d.header(MaxOps)
	if err != nil {
		return nil, err
	}
	if n != want {
		return nil, fmt.Errorf("%w: %d results for %d operations", ErrMalformed, n, want)
	}
	rs := make([]Result, n)
	for i := range rs {
		status := d.uvarint("status")
		if d.err == nil && (status < 100 || status > 999) {
			return nil, fmt.Errorf("%w: result %d: status %d", ErrMalformed, i, status)
		}
		rs[i] = Result{Status: int(status), Body: d.bytes("body")}
		if d.err != nil {
			return nil, fmt.Errorf("%w: result %d: %v", ErrMalformed, i, d.err)
		}
	}
	return rs, d.end()
}

// decoder reads a body front to back; its first error sticks.
type decoder struct {
	b   []byte
	err error
}

// header reads the version and the count, which must be 1 to max.
func (d *decoder) header(max int) (int, error) {
	if len(d.b) == 0 {
		return 0, fmt.Errorf("%w: the body is empty", ErrMalformed)
	}
	if v := d.byte(); v != Version {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, Version)
	}
	n := d.uvarint("count")
	switch {
	case d.err != nil:
		return 0, fmt.Errorf("%w: %v", ErrMalformed, d.err)
	case n == 0:
		return 0, fmt.Errorf("%w: no operations", ErrMalformed)
	case n > uint64(max):
		return 0, fmt.Errorf("%w: %d operations: %w", ErrMalformed, n, ErrTooManyOps)
	case n > uint64(len(d.b)):
		// Each entry takes at least two bytes: no need to allocate for more.
		return 0, fmt.Errorf("%w: %d entries in %d bytes", ErrMalformed, n, len(d.b))
	}
	return int(n), nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = errors.New("the body ends early")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != uvarintLen(v) {
		// One encoding per value: what decodes encodes back the same.
		d.err = fmt.Errorf("the %s is not a minimal uvarint", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes reads a length and that many bytes, which alias the body.
func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what + "'s length")
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = fmt.Errorf("the %s's length %d runs past the end of the body (%d bytes left)", what, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) end() error {
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes after the last entry", ErrMalformed, len(d.b))
	}
	return nil
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
