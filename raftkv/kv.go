package raftkv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Limits on what a client may store.
const (
	MaxKeyBytes   = 1024
	MaxValueBytes = 1 << 20
)

// A request id names one proposal: the proposing server's session (random
// per process start) and a counter. The state machine applies each id once,
// since the network may deliver a forwarded proposal twice.
type requestID struct {
	session, seq uint64
}

// rememberedRequests is how many applied request ids the state machine
// keeps to refuse duplicates: far more than can be in flight at once.
const rememberedRequests = 1 << 16

// Operations of log entries.
const (
	opPut byte = iota + 1
	opDelete
	opAddLearner
	opPromote
	opRemove
	// opWrites carries several puts and deletes in value
	// (appendWrite), applied in order under the command's one id.
	opWrites
)

// command is what one log entry carries. For opPut and opDelete, key and
// value; for opWrites, the writes in value; for membership changes, node
// and (for opAddLearner) its peer address in value.
type command struct {
	op    byte
	id    requestID
	node  int64
	key   string
	value []byte
}

func (c command) marshal() []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+binary.MaxVarintLen64+len(c.key)+len(c.value)+binary.MaxVarintLen64)
	b = append(b, c.op)
	b = binary.AppendUvarint(b, c.id.session)
	b = binary.AppendUvarint(b, c.id.seq)
	b = binary.AppendVarint(b, c.node)
	b = appendBytes(b, []byte(c.key))
	return append(b, c.value...)
}

func unmarshalCommand(b []byte) (command, error) {
	r := reader{b: b}
	c := command{op: r.byte()}
	c.id.session = r.uvarint()
	c.id.seq = r.uvarint()
	c.node = r.varint()
	c.key = string(r.bytes())
	c.value = r.rest()
	if r.err != nil {
		return command{}, fmt.Errorf("raftkv: malformed command: %w", r.err)
	}
	if c.op < opPut || c.op > opWrites {
		return command{}, fmt.Errorf("raftkv: unknown command op %d", c.op)
	}
	return c, nil
}

// isMembership reports whether c changes the membership (a config entry).
func (c command) isMembership() bool { return c.op >= opAddLearner && c.op <= opRemove }

// appendWrite appends w, a put or a delete, to the value of an opWrites
// command.
func appendWrite(b []byte, w command) []byte {
	b = appendBytes(append(b, w.op), []byte(w.key))
	if w.op == opPut {
		b = appendBytes(b, w.value)
	}
	return b
}

// eachWrite calls f for each write (a put or a delete) of an opWrites
// command's value, in order; at the first malformed one it stops and
// returns an error.
func eachWrite(b []byte, f func(w command)) error {
	r := reader{b: b}
	for len(r.b) > 0 {
		w := command{op: r.byte(), key: string(r.bytes())}
		switch w.op {
		case opPut:
			w.value = r.bytes()
		case opDelete:
		default:
			return fmt.Errorf("raftkv: malformed writes: unknown op %d", w.op)
		}
		if r.err != nil {
			return fmt.Errorf("raftkv: malformed writes: %w", r.err)
		}
		f(w)
	}
	return nil
}

// member is what the log says of a node added through it: its peer
// address, the index of the entry that added it, and the membership just
// after that entry (what the node joins with).
type member struct {
	addr             string
	added            int64
	voters, learners []int64
}

// kvState is the replicated state machine: the keys, the membership as the
// log has changed it, the nodes added through the log, and the request ids
// applied lately. Every node that applies the same entries holds the same
// kvState; membership changes are decided from it alone.
type kvState struct {
	data             map[string][]byte
	voters, learners []int64 // sorted
	members          map[int64]member
	seen             map[requestID]struct{}
	// order holds the ids of seen as a ring of at most rememberedRequests,
	// the oldest at oldest once full.
	order  []requestID
	oldest int
}

// write applies w if it is a put or a delete.
func (s *kvState) write(w command) {
	switch w.op {
	case opPut:
		s.data[w.key] = w.value
	case opDelete:
		delete(s.data, w.key)
	}
}

// newKVState returns the state before the first entry: no keys, and the
// cluster's first voters.
func newKVState(voters []int64) *kvState {
	return &kvState{
		data: map[string][]byte{}, voters: slices.Sorted(slices.Values(voters)),
		members: map[int64]member{}, seen: map[requestID]struct{}{},
	}
}

// changeMembers decides the membership change c, made by the entry at
// index, from the membership before it, and applies it to the state.
func (s *kvState) changeMembers(c command, index int64) error {
	voter, learner := slices.Contains(s.voters, c.node), slices.Contains(s.learners, c.node)
	switch c.op {
	case opAddLearner:
		if voter || learner {
			return fmt.Errorf("node %d is already a member", c.node)
		}
		s.learners = insertSorted(s.learners, c.node)
		s.members[c.node] = member{addr: string(c.value), added: index, voters: slices.Clone(s.voters), learners: slices.Clone(s.learners)}
	case opPromote:
		if !learner {
			return fmt.Errorf("node %d is not a learner", c.node)
		}
		s.learners = slices.DeleteFunc(s.learners, func(id int64) bool { return id == c.node })
		s.voters = insertSorted(s.voters, c.node)
	case opRemove:
		if !voter && !learner {
			return fmt.Errorf("node %d is not a member", c.node)
		}
		s.voters = slices.DeleteFunc(s.voters, func(id int64) bool { return id == c.node })
		s.learners = slices.DeleteFunc(s.learners, func(id int64) bool { return id == c.node })
		delete(s.members, c.node)
	}
	return nil
}

func insertSorted(ids []int64, id int64) []int64 {
	i, _ := slices.BinarySearch(ids, id)
	return slices.Insert(slices.Clone(ids), i, id)
}

// firstTime records id and reports whether it was not applied before.
func (s *kvState) firstTime(id requestID) bool {
	if _, dup := s.seen[id]; dup {
		return false
	}
	s.seen[id] = struct{}{}
	if len(s.order) < rememberedRequests {
		s.order = append(s.order, id)
		return true
	}
	delete(s.seen, s.order[s.oldest])
	s.order[s.oldest] = id
	s.oldest = (s.oldest + 1) % len(s.order)
	return true
}

// marshal encodes the whole state, in a deterministic order, for a
// snapshot.
func (s *kvState) marshal() []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(s.data)))
	for _, k := range slices.Sorted(maps.Keys(s.data)) {
		b = appendBytes(b, []byte(k))
		b = appendBytes(b, s.data[k])
	}
	b = appendIDs(b, s.voters)
	b = appendIDs(b, s.learners)
	b = binary.AppendUvarint(b, uint64(len(s.members)))
	for _, id := range slices.Sorted(maps.Keys(s.members)) {
		m := s.members[id]
		b = binary.AppendVarint(b, id)
		b = appendBytes(b, []byte(m.addr))
		b = binary.AppendVarint(b, m.added)
		b = appendIDs(b, m.voters)
		b = appendIDs(b, m.learners)
	}
	b = binary.AppendUvarint(b, uint64(len(s.order)))
	for i := range s.order {
		id := s.order[(s.oldest+i)%len(s.order)]
		b = binary.AppendUvarint(b, id.session)
		b = binary.AppendUvarint(b, id.seq)
	}
	return b
}

func unmarshalKVState(b []byte) (*kvState, error) {
	s := newKVState(nil)
	r := reader{b: b}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		k := string(r.bytes())
		s.data[k] = r.bytes()
	}
	s.voters, s.learners = r.ids(), r.ids()
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		id := r.varint()
		s.members[id] = member{addr: string(r.bytes()), added: r.varint(), voters: r.ids(), learners: r.ids()}
	}
	for n := r.uvarint(); n > 0 && r.err == nil; n-- {
		s.firstTime(requestID{session: r.uvarint(), seq: r.uvarint()})
	}
	if r.err == nil && len(r.b) > 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("raftkv: malformed snapshot: %w", r.err)
	}
	return s, nil
}

func appendIDs(b []byte, ids []int64) []byte {
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		b = binary.AppendVarint(b, id)
	}
	return b
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// reader decodes what the marshal functions wrote; the first error sticks
// and makes every later read return zero values.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated")

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) ids() []int64 {
	n := r.uvarint()
	if n > uint64(len(r.b)) { // each id takes a byte at least
		r.err = errShort
		return nil
	}
	var ids []int64
	for ; n > 0 && r.err == nil; n-- {
		ids = append(ids, r.varint())
	}
	return ids
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) rest() []byte {
	if r.err != nil {
		return nil
	}
	v := r.b
	r.b = nil
	return v
}
