package raft

import (
	"fmt"

	"github.com/raftly/raft/raftpb"
)

// localOnly lists the message types a node makes for itself; none may
// arrive from the network.
var localOnly = map[raftpb.MessageType]bool{
	raftpb.MsgHup:         true,
	raftpb.MsgBeat:        true,
	raftpb.MsgUnreachable: true,
	raftpb.MsgSnapStatus:  true,
	raftpb.MsgCheckQuorum: true,
}

// validateMessage refuses a message from the network that no correct peer
// sends: it would otherwise break the node's invariants.
func validateMessage(m raftpb.Message, self int64) error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidMessage, m.Type, fmt.Sprintf(format, args...))
	}
	if _, known := raftpb.MessageType_name[int32(m.Type)]; !known {
		return fmt.Errorf("%w: unknown message type %d", ErrInvalidMessage, int32(m.Type))
	}
	switch {
	case localOnly[m.Type]:
		return invalid("local-only message type arrived from the network")
	case m.From == None:
		return invalid("no sender")
	case m.From == self:
		return invalid("claims to come from this node")
	case m.To != self:
		return invalid("addressed to %x, not to this node (%x)", m.To, self)
	case !plausible(m.Term, m.Index, m.LogTerm, m.Commit, m.RejectHint, m.Snapshot.Index, m.Snapshot.Term):
		return invalid("negative or implausibly large term or index")
	case m.Type == raftpb.MsgProp:
		if len(m.Entries) == 0 || m.Term != 0 {
			return invalid("a forwarded proposal has entries and term 0")
		}
		return validEntryTypes(m)
	case m.Term == 0:
		return invalid("term 0")
	case m.LogTerm > m.Term:
		return invalid("log term %d beyond message term %d", m.LogTerm, m.Term)
	}
	if len(m.Entries) > 0 && m.Type != raftpb.MsgApp {
		return invalid("entries on a message that carries none")
	}
	prevIndex, prevTerm := m.Index, m.LogTerm
	for i := range m.Entries {
		e := &m.Entries[i]
		if e.Index != prevIndex+1 {
			return invalid("entry %d does not follow %d", e.Index, prevIndex)
		}
		if e.Term < prevTerm || e.Term > m.Term {
			return invalid("entry %d has term %d outside [%d, %d]", e.Index, e.Term, prevTerm, m.Term)
		}
		prevIndex, prevTerm = e.Index, e.Term
	}
	if m.Type == raftpb.MsgSnap {
		return validateSnapshot(m.Snapshot, m.Term)
	}
	return validEntryTypes(m)
}

// maxPlausible bounds terms and indexes from the network, far above any
// real value and far enough below the int64 limit that arithmetic on them
// cannot overflow.
const maxPlausible = 1 << 60

func plausible(values ...int64) bool {
	for _, v := range values {
		if v < 0 || v > maxPlausible {
			return false
		}
	}
	return true
}

func validEntryTypes(m raftpb.Message) error {
	for i := range m.Entries {
		if _, known := raftpb.EntryType_name[int32(m.Entries[i].Type)]; !known {
			return fmt.Errorf("%w: %s: entry of unknown type %d", ErrInvalidMessage, m.Type, int32(m.Entries[i].Type))
		}
	}
	return nil
}

func validateSnapshot(s raftpb.Snapshot, term int64) error {
	switch {
	case s.Index <= 0 || s.Term <= 0 || s.Term > term:
		return fmt.Errorf("%w: MsgSnap: snapshot at index %d term %d (message term %d)", ErrInvalidMessage, s.Index, s.Term, term)
	case len(s.Nodes) == 0:
		return fmt.Errorf("%w: MsgSnap: snapshot without voters", ErrInvalidMessage)
	}
	seen := map[int64]bool{}
	for _, id := range append(append([]int64(nil), s.Nodes...), s.Learners...) {
		if id == None || seen[id] {
			return fmt.Errorf("%w: MsgSnap: snapshot membership lists node %x twice or lists node 0", ErrInvalidMessage, id)
		}
		seen[id] = true
	}
	return nil
}
