package rafttest

import (
	"fmt"
	"strings"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// The trace is one line per event or message. Events are kept as small
// records in a ring and formatted only when someone reads them (on a
// failure, or when a test asks), so that recording stays cheap on the hot
// path. Every event is also folded into a running hash, from which two
// runs of one seed are compared.

type eventKind uint8

const (
	evText    eventKind = iota // free text, formatted when recorded
	evDeliver                  // a message handed to its recipient
	evDrop                     // a message lost (loss, cut link, recipient down)
	evReady                    // a Ready handled by a node
)

// event is one line of the trace.
type event struct {
	step int
	kind eventKind
	node int64
	text string         // evText; evDrop: the reason
	msg  raftpb.Message // evDeliver, evDrop
	rd   readySummary   // evReady
}

// readySummary is what a trace line says about a Ready.
type readySummary struct {
	soft             *raft.SoftState
	hs               raftpb.HardState
	snapIndex        int64
	snapTerm         int64
	entFirst, entLst int64
	comFirst, comLst int64
	msgs             int
}

func summarize(rd raft.Ready) readySummary {
	s := readySummary{soft: rd.SoftState, hs: rd.State, snapIndex: rd.Snapshot.Index,
		snapTerm: rd.Snapshot.Term, msgs: len(rd.Messages)}
	if n := len(rd.Entries); n > 0 {
		s.entFirst, s.entLst = rd.Entries[0].Index, rd.Entries[n-1].Index
	}
	if n := len(rd.CommittedEntries); n > 0 {
		s.comFirst, s.comLst = rd.CommittedEntries[0].Index, rd.CommittedEntries[n-1].Index
	}
	return s
}

func (e *event) String() string {
	prefix := fmt.Sprintf("%6d ", e.step)
	switch e.kind {
	case evDeliver:
		return prefix + raft.DescribeMessage(e.msg)
	case evDrop:
		return prefix + "drop (" + e.text + ") " + raft.DescribeMessage(e.msg)
	case evReady:
		var b strings.Builder
		fmt.Fprintf(&b, "%sready %x:", prefix, e.node)
		rd := &e.rd
		if rd.soft != nil {
			fmt.Fprintf(&b, " %s lead=%x", rd.soft.RaftState, rd.soft.Lead)
		}
		if !raft.IsEmptyHardState(rd.hs) {
			fmt.Fprintf(&b, " hs=%d/%x/%d", rd.hs.Term, rd.hs.Vote, rd.hs.Commit)
		}
		if rd.snapIndex != 0 {
			fmt.Fprintf(&b, " snapshot=%d/%d", rd.snapTerm, rd.snapIndex)
		}
		if rd.entFirst != 0 {
			fmt.Fprintf(&b, " entries=%d..%d", rd.entFirst, rd.entLst)
		}
		if rd.comFirst != 0 {
			fmt.Fprintf(&b, " apply=%d..%d", rd.comFirst, rd.comLst)
		}
		if rd.msgs != 0 {
			fmt.Fprintf(&b, " msgs=%d", rd.msgs)
		}
		return b.String()
	}
	if e.node != 0 {
		return fmt.Sprintf("%s%x: %s", prefix, e.node, e.text)
	}
	return prefix + e.text
}

// traceLog is a ring of the latest events and a hash of all of them.
type traceLog struct {
	ring  []event // grows up to size, then wraps
	size  int
	next  int // once full, the index in ring of the next event
	total int // events recorded so far
	hash  uint64
}

func newTraceLog(size int) traceLog {
	return traceLog{size: size, hash: fnvOffset}
}

func (t *traceLog) add(e event) {
	t.hash = hashEvent(t.hash, &e)
	t.total++
	if len(t.ring) < t.size {
		t.ring = append(t.ring, e)
		return
	}
	t.ring[t.next] = e
	t.next++
	if t.next == len(t.ring) {
		t.next = 0
	}
}

// lines returns the last n events (all kept when n <= 0), oldest first.
func (t *traceLog) lines(n int) []string {
	kept := len(t.ring)
	if n <= 0 || n > kept {
		n = kept
	}
	out := make([]string, 0, n+1)
	if t.total > kept && n == kept {
		out = append(out, fmt.Sprintf("... %d earlier events not kept", t.total-kept))
	}
	start := t.next + kept - n // oldest wanted, in ring order
	if len(t.ring) < t.size {
		start = kept - n
	}
	for i := 0; i < n; i++ {
		e := &t.ring[(start+i)%kept]
		out = append(out, e.String())
	}
	return out
}

// hashEvent folds the identity of an event into h.
func hashEvent(h uint64, e *event) uint64 {
	h = mix(h, uint64(e.step))
	h = mix(h, uint64(e.kind))
	h = mix(h, uint64(e.node))
	h = hashBytes(h, e.text)
	switch e.kind {
	case evDeliver, evDrop:
		m := &e.msg
		h = mix(h, uint64(m.Type))
		h = mix(h, uint64(m.From)<<32^uint64(m.To))
		h = mix(h, uint64(m.Term))
		h = mix(h, uint64(m.Index))
		h = mix(h, uint64(m.LogTerm))
		h = mix(h, uint64(m.Commit))
		h = mix(h, uint64(len(m.Entries)))
		h = mix(h, uint64(m.Snapshot.Index))
		if m.Reject {
			h = mix(h, 1)
		}
	case evReady:
		rd := &e.rd
		if rd.soft != nil {
			h = mix(h, uint64(rd.soft.Lead)<<8|uint64(rd.soft.RaftState))
		}
		h = mix(h, uint64(rd.hs.Term))
		h = mix(h, uint64(rd.hs.Vote))
		h = mix(h, uint64(rd.hs.Commit))
		h = mix(h, uint64(rd.snapIndex))
		h = mix(h, uint64(rd.entLst))
		h = mix(h, uint64(rd.comLst))
		h = mix(h, uint64(rd.msgs))
	}
	return h
}

// Hashing: FNV-1a over bytes, and a multiply-xorshift mix for integers.
// Neither depends on the process (unlike hash/maphash), so hashes compare
// across runs.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashBytes[T string | []byte](h uint64, b T) uint64 {
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= fnvPrime
	}
	return h
}

func mix(h, v uint64) uint64 {
	h ^= v + 0x9e3779b97f4a7c15 + h<<6 + h>>2
	h ^= h >> 31
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return h
}

// chainHash extends the hash of a log prefix by the entry after it: two
// logs with the same chain hash at an index hold the same entries up to it.
func chainHash(prev uint64, e *raftpb.Entry) uint64 {
	h := mix(prev, uint64(e.Index))
	h = mix(h, uint64(e.Term)<<1|uint64(e.Type))
	h = hashBytes(h, e.Data)
	h = mix(h, uint64(len(e.Data)))
	if h == 0 {
		h = 1 // 0 means unknown in the checkers' tables
	}
	return h
}
