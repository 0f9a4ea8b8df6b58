package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Fuzz targets: whatever arrives from the network, Step never panics and
// the node's own invariants hold (API.md, Errors).
//
// FuzzStep's input is a sequence of records; each steps one decoded message
// into one node of a running three-node RawNode cluster (cluster_test.go),
// then lets the cluster move. A record is
//
//	control byte:
//	  bits 0-1  recipient: node 1, 2 or 3; 3 means the current leader
//	  bit 2     raw: keep To and From as decoded; otherwise To is the
//	            recipient and From a member other than it
//	  bits 3-4  then: 0 nothing, 1 settle (run every loop and deliver
//	            every message until nothing moves), 2 tick every node
//	            1+3*(bits 5-7) times, settling after each, 3 propose on the
//	            recipient and settle
//	uvarint length, then that many bytes: a marshaled raftpb.Message
//	(bytes that do not decode skip the record).
//
// The seed corpus is in testdata/fuzz/FuzzStep; the files named seed-* are
// written from fuzzStepSeeds by `go test -run TestFuzzStepSeedCorpus
// -update-fuzz-seeds`.

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzStep/seed-* from fuzzStepSeeds")

const (
	recRaw      = 1 << 2
	recSettle   = 1 << 3
	recTick     = 2 << 3
	recPropose  = 3 << 3
	recToLeader = 3
	// A settling cluster takes a few rounds; a diverged one is given up on
	// sooner than one that should settle.
	fuzzDivergedRounds = 50
	fuzzMaxRounds      = 500
)

type fuzzRecord struct {
	control byte
	msg     raftpb.Message
}

// encodeFuzzRecords is the inverse of FuzzStep's decoding.
func encodeFuzzRecords(recs ...fuzzRecord) []byte {
	var out []byte
	for _, rec := range recs {
		body, err := rec.msg.Marshal()
		if err != nil {
			panic(err)
		}
		out = append(out, rec.control)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	return out
}

// nodeWatch is what a node looked like when last checked.
type nodeWatch struct {
	hs        raftpb.HardState
	applied   int64 // the log's applied index
	smApplied int64 // the last index the test's state machine applied
	snapIndex int64
	// committed holds every entry seen at or below the commit index since
	// the last snapshot; none may change or go.
	committed map[int64]raftpb.Entry
	// granted is the candidate this node sent a granted MsgVoteResp to, per term.
	granted map[int64]int64
}

type fuzzCluster struct {
	t     *testing.T
	nw    *network
	watch map[int64]*nodeWatch
}

var fuzzIDs = []int64{1, 2, 3}

// newFuzzCluster builds the cluster every input starts from: node 1 leads
// in term 1; the log holds 1 (the leader's empty entry), 2-6 "a".."e", 7 a
// config entry the application rejects, 8 "f", all committed everywhere;
// node 1 has compacted its log up to 4, so a follower that falls behind
// gets a snapshot.
func newFuzzCluster(t *testing.T) *fuzzCluster {
	nw := newNetwork(t, fuzzIDs)
	nw.campaign(1)
	for _, d := range []string{"a", "b", "c", "d", "e"} {
		require.NoError(t, nw.propose(1, d))
	}
	require.NoError(t, nw.configure(1, []byte("noop")))
	require.NoError(t, nw.propose(1, "f"))
	require.NoError(t, nw.nodes[1].rn.Compact(4, fuzzIDs, []byte("snapshot at 4")))
	c := &fuzzCluster{t: t, nw: nw, watch: map[int64]*nodeWatch{}}
	for _, id := range fuzzIDs {
		c.watch[id] = &nodeWatch{committed: map[int64]raftpb.Entry{}, granted: map[int64]int64{}}
		c.check(id, "setup")
	}
	return c
}

func (c *fuzzCluster) leader() int64 {
	for _, id := range fuzzIDs {
		if c.nw.nodes[id].rn.raft.state == StateLeader {
			return id
		}
	}
	return 1
}

func sameEntry(a, b raftpb.Entry) bool {
	return a.Type == b.Type && a.Term == b.Term && a.Index == b.Index && bytes.Equal(a.Data, b.Data)
}

// check verifies node id's invariants against what it looked like when last
// checked, and records the new state.
func (c *fuzzCluster) check(id int64, after string) {
	c.t.Helper()
	n := c.nw.nodes[id]
	r := n.rn.raft
	l := r.log
	w := c.watch[id]
	fail := func(format string, args ...any) {
		c.t.Helper()
		c.t.Fatalf("node %x, after %s: %s", id, after, fmt.Sprintf(format, args...))
	}

	hs := r.hardState()
	switch {
	case hs.Term < w.hs.Term:
		fail("term went back from %d to %d", w.hs.Term, hs.Term)
	case hs.Commit < w.hs.Commit:
		fail("commit went back from %d to %d", w.hs.Commit, hs.Commit)
	case hs.Term == w.hs.Term && w.hs.Vote != None && hs.Vote != w.hs.Vote:
		fail("vote changed from %x to %x within term %d", w.hs.Vote, hs.Vote, hs.Term)
	case !(l.applied <= l.applying && l.applying <= l.committed && l.committed <= l.lastIndex()):
		fail("broken applied %d <= applying %d <= committed %d <= last %d", l.applied, l.applying, l.committed, l.lastIndex())
	case l.applied < w.applied:
		fail("applied went back from %d to %d", w.applied, l.applied)
	case n.appliedIndex < w.smApplied:
		fail("the state machine went back from %d to %d", w.smApplied, n.appliedIndex)
	}

	snapIndex := l.snapshotIndex()
	if snapIndex != w.snapIndex {
		if snapIndex < w.snapIndex {
			fail("snapshot went back from %d to %d", w.snapIndex, snapIndex)
		}
		if snapIndex <= w.hs.Commit {
			fail("restored a snapshot at %d, not beyond the commit index %d", snapIndex, w.hs.Commit)
		}
		// The snapshot covers everything committed before it.
		clear(w.committed)
	}

	// Every entry recorded as committed is still in the log, unchanged;
	// newly committed ones are recorded.
	ents, err := l.slice(snapIndex+1, l.committed+1, 0)
	if err != nil || int64(len(ents)) != l.committed-snapIndex {
		fail("committed entries (%d, %d] unreadable: %d entries, %v", snapIndex, l.committed, len(ents), err)
	}
	for _, e := range ents {
		old, ok := w.committed[e.Index]
		if ok && !sameEntry(old, e) {
			fail("committed entry changed from %s to %s", DescribeEntry(old), DescribeEntry(e))
		}
		if !ok {
			w.committed[e.Index] = e
		}
	}

	w.hs, w.applied, w.smApplied, w.snapIndex = hs, l.applied, n.appliedIndex, snapIndex
}

// process runs one turn of the documented loop on node id, checking the
// Ready against what the node committed and voted before.
func (c *fuzzCluster) process(id int64) bool {
	n := c.nw.nodes[id]
	if !n.rn.HasReady() {
		return false
	}
	rd := n.rn.Ready()
	w := c.watch[id]
	for _, e := range rd.Entries {
		if old, ok := w.committed[e.Index]; ok && !sameEntry(old, e) {
			c.t.Fatalf("node %x: Ready overwrites committed entry %s with %s", id, DescribeEntry(old), DescribeEntry(e))
		}
	}
	for _, e := range rd.CommittedEntries {
		if old, ok := w.committed[e.Index]; ok && !sameEntry(old, e) {
			c.t.Fatalf("node %x: Ready hands out %s to apply, but %s was committed there", id, DescribeEntry(e), DescribeEntry(old))
		}
	}
	if !IsEmptySnap(rd.Snapshot) && rd.Snapshot.Index <= n.appliedIndex {
		c.t.Fatalf("node %x: Ready restores snapshot %d at or below applied %d", id, rd.Snapshot.Index, n.appliedIndex)
	}
	n.disk.save(rd)
	if !IsEmptySnap(rd.Snapshot) {
		n.appliedIndex = rd.Snapshot.Index
	}
	for _, e := range rd.CommittedEntries {
		c.nw.apply(n, e)
	}
	for _, m := range rd.Messages {
		if m.Type != raftpb.MsgVoteResp || m.Reject {
			continue
		}
		if prev, ok := w.granted[m.Term]; ok && prev != m.To {
			c.t.Fatalf("node %x granted its vote in term %d to %x and to %x", id, m.Term, prev, m.To)
		}
		w.granted[m.Term] = m.To
		if hs := n.disk.hs; hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != m.To) {
			c.t.Fatalf("node %x sends a vote for %x in term %d before persisting it (persisted %+v)", id, m.To, m.Term, hs)
		}
	}
	c.nw.queue = append(c.nw.queue, rd.Messages...)
	n.rn.Advance()
	c.check(id, "Ready")
	return true
}

// step steps m into node id; a refused message must change nothing.
func (c *fuzzCluster) step(id int64, m raftpb.Message, fromPeer bool) {
	n := c.nw.nodes[id]
	r := n.rn.raft
	beforeHS, beforeSoft, beforeLast, beforeMsgs := r.hardState(), r.softState(), r.log.lastIndex(), len(r.msgs)
	err := n.rn.Step(m)
	if errors.Is(err, ErrInvalidMessage) {
		if r.hardState() != beforeHS || r.softState() != beforeSoft || r.log.lastIndex() != beforeLast || len(r.msgs) != beforeMsgs {
			c.t.Fatalf("node %x: refused %s (%v) but changed", id, DescribeMessage(m), err)
		}
		// A correct node sends nothing its peers refuse, except that a
		// forged term near the plausible limit carries its campaigns past it.
		if fromPeer && plausible(m.Term, m.Index, m.LogTerm, m.Commit, m.RejectHint, m.Snapshot.Index, m.Snapshot.Term) {
			c.t.Fatalf("node %x refused a message its peer sent: %s: %v", id, DescribeMessage(m), err)
		}
	}
	c.check(id, DescribeMessage(m))
}

// settle runs every loop and delivers every message until nothing moves.
// A cluster whose nodes committed different entries at one index (which a
// forged leader can cause: Raft does not defend against a malicious member)
// may never settle; the real leader and the misled follower then exchange
// probes forever. Any other cluster must settle.
func (c *fuzzCluster) settle() {
	for i := 0; ; i++ {
		if i == fuzzDivergedRounds && c.diverged() {
			return
		}
		if i == fuzzMaxRounds {
			c.t.Fatalf("the cluster does not settle")
		}
		moved := false
		for _, id := range fuzzIDs {
			for c.process(id) {
				moved = true
			}
		}
		msgs := c.nw.queue
		c.nw.queue = nil
		for _, m := range msgs {
			moved = true
			if c.nw.nodes[m.To] != nil {
				c.step(m.To, m, true)
			}
		}
		if !moved {
			return
		}
	}
}

// diverged reports whether two nodes committed different entries at one index.
func (c *fuzzCluster) diverged() bool {
	for _, a := range fuzzIDs {
		for _, b := range fuzzIDs[a:] {
			for i, ea := range c.watch[a].committed {
				if eb, ok := c.watch[b].committed[i]; ok && !sameEntry(ea, eb) {
					return true
				}
			}
		}
	}
	return false
}

func (c *fuzzCluster) tick() {
	for _, id := range fuzzIDs {
		c.nw.nodes[id].rn.Tick()
		c.check(id, "tick")
	}
	c.settle()
}

// run decodes and carries out one record, and returns the rest of data.
func (c *fuzzCluster) run(data []byte) []byte {
	control := data[0]
	size, k := binary.Uvarint(data[1:])
	if k <= 0 {
		return nil
	}
	data = data[1+k:]
	body := data[:min(uint64(len(data)), size)]
	rest := data[len(body):]
	var m raftpb.Message
	if m.Unmarshal(body) != nil {
		return rest
	}
	to := fuzzIDs[min(int(control&3), 2)]
	if control&3 == recToLeader {
		to = c.leader()
	}
	if control&recRaw == 0 {
		m.To = to
		if m.From == to || !slices.Contains(fuzzIDs, m.From) {
			m.From = to%3 + 1
		}
	}
	c.step(to, m, false)
	switch control & (3 << 3) {
	case recSettle:
		c.settle()
	case recTick:
		for range 1 + 3*int(control>>5) {
			c.tick()
		}
	case recPropose:
		_ = c.nw.nodes[to].rn.Propose([]byte("fuzz"))
		c.check(to, "propose")
		c.settle()
	}
	return rest
}

// FuzzStep's seeds are the files in testdata/fuzz/FuzzStep.
func FuzzStep(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newFuzzCluster(t)
		for len(data) > 0 {
			data = c.run(data)
		}
		c.settle()
	})
}

// FuzzMessageRoundTrip checks that a decoded Message survives Marshal and
// Unmarshal unchanged, and that Size is the marshaled length.
func FuzzMessageRoundTrip(f *testing.F) {
	for _, s := range fuzzStepSeeds() {
		f.Add(s.data)
		for _, m := range s.msgs {
			b, err := m.Marshal()
			require.NoError(f, err)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m raftpb.Message
		if m.Unmarshal(data) != nil {
			return
		}
		b, err := m.Marshal()
		require.NoError(t, err)
		require.Len(t, b, m.Size())
		var back raftpb.Message
		require.NoError(t, back.Unmarshal(b))
		require.Equal(t, normalizeMessage(m), normalizeMessage(back))
		again, err := back.Marshal()
		require.NoError(t, err)
		require.Equal(t, b, again, "marshaling is not deterministic")
	})
}

// normalizeMessage makes empty slices nil: proto3 does not tell them apart.
func normalizeMessage(m raftpb.Message) raftpb.Message {
	nilIfEmpty := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	m.Context = nilIfEmpty(m.Context)
	m.Snapshot.Data = nilIfEmpty(m.Snapshot.Data)
	if len(m.Snapshot.Nodes) == 0 {
		m.Snapshot.Nodes = nil
	}
	if len(m.Snapshot.Learners) == 0 {
		m.Snapshot.Learners = nil
	}
	if len(m.Entries) == 0 {
		m.Entries = nil
	} else {
		m.Entries = slices.Clone(m.Entries)
		for i := range m.Entries {
			m.Entries[i].Data = nilIfEmpty(m.Entries[i].Data)
		}
	}
	return m
}

type fuzzSeed struct {
	name string
	msgs []raftpb.Message
	data []byte
}

// fuzzStepSeeds returns the seed inputs of FuzzStep: every message type,
// sane and hostile, against the cluster of newFuzzCluster.
func fuzzStepSeeds() []fuzzSeed {
	const huge = math.MaxInt64
	ent := func(term, index int64, data string) raftpb.Entry {
		return raftpb.Entry{Term: term, Index: index, Data: []byte(data)}
	}
	conf := func(term, index int64, data string) raftpb.Entry {
		e := ent(term, index, data)
		e.Type = raftpb.EntryConfig
		return e
	}
	msg := func(typ raftpb.MessageType, from, to, term int64) raftpb.Message {
		return raftpb.Message{Type: typ, From: from, To: to, Term: term}
	}
	// rec addresses m to the node given by control; unless raw, To and
	// From are rewritten as FuzzStep decodes them.
	rec := func(control byte, m raftpb.Message) fuzzRecord { return fuzzRecord{control, m} }

	app := func(from, to, term, index, logTerm, commit int64, ents ...raftpb.Entry) raftpb.Message {
		m := msg(raftpb.MsgApp, from, to, term)
		m.Index, m.LogTerm, m.Commit, m.Entries = index, logTerm, commit, ents
		return m
	}
	vote := func(typ raftpb.MessageType, from, to, term, index, logTerm int64) raftpb.Message {
		m := msg(typ, from, to, term)
		m.Index, m.LogTerm = index, logTerm
		return m
	}
	snap := func(from, to, term int64, s raftpb.Snapshot) raftpb.Message {
		m := msg(raftpb.MsgSnap, from, to, term)
		m.Snapshot = s
		return m
	}
	withCommit := func(m raftpb.Message, commit int64) raftpb.Message { m.Commit = commit; return m }
	rejected := func(m raftpb.Message, hint, logTerm int64) raftpb.Message {
		m.Reject, m.RejectHint, m.LogTerm = true, hint, logTerm
		return m
	}
	at := func(m raftpb.Message, index int64) raftpb.Message { m.Index = index; return m }

	seeds := []struct {
		name string
		recs []fuzzRecord
	}{
		{"prop-forwarded", []fuzzRecord{
			rec(0|recSettle, raftpb.Message{Type: raftpb.MsgProp, From: 2, To: 1, Entries: []raftpb.Entry{ent(0, 0, "fwd")}}),
			rec(1|recSettle, raftpb.Message{Type: raftpb.MsgProp, From: 3, To: 2, Entries: []raftpb.Entry{ent(7, 99, "to a follower")}}),
			rec(0|recSettle, raftpb.Message{Type: raftpb.MsgProp, From: 3, To: 1, Entries: []raftpb.Entry{conf(0, 0, "remove 3"), conf(0, 0, "add 4")}}),
			rec(0|recSettle, raftpb.Message{Type: raftpb.MsgProp, From: 2, To: 1, Term: 3, Entries: []raftpb.Entry{ent(0, 0, "with a term")}}),
		}},
		{"app-follower", []fuzzRecord{
			rec(1|recSettle, app(1, 2, 1, 8, 1, 9, ent(1, 9, "x"))),
			rec(2, app(1, 3, 1, 8, 1, 8, ent(1, 9, "y"), ent(1, 10, "z"))),
			rec(2|recSettle, app(1, 3, 1, 6, 1, 10)),
			rec(recToLeader|recPropose, app(2, 1, 1, 8, 1, 8)),
		}},
		{"app-conflicts-with-committed", []fuzzRecord{
			rec(1|recSettle, app(3, 2, 2, 3, 1, 4, ent(2, 4, "evil"), ent(2, 5, "evil"))),
			rec(2|recSettle, app(2, 3, 5, 7, 1, 9, ent(5, 8, "replaces f"), ent(5, 9, "new"))),
			rec(0|recSettle, app(2, 1, 5, 0, 0, 0, ent(5, 1, "from the start"))),
			rec(1|recSettle, app(3, 2, 3, 8, 2, 8, ent(3, 9, "wrong log term"))),
		}},
		{"app-hostile-order", []fuzzRecord{
			rec(1|recSettle, app(1, 2, 1, 8, 1, 8, ent(1, 10, "gap"))),
			rec(1|recSettle, app(1, 2, 1, 8, 1, 8, ent(1, 10, "b"), ent(1, 9, "a"))),
			rec(2|recSettle, app(1, 3, 2, 8, 1, 8, ent(2, 9, "x"), ent(1, 10, "term goes back"))),
			rec(2|recSettle, app(1, 3, 1, 8, 1, 8, ent(4, 9, "term beyond message"))),
			rec(2|recSettle, app(1, 3, 1, 8, 3, 8)),
		}},
		{"app-huge-indexes", []fuzzRecord{
			rec(1|recSettle, app(1, 2, 1, huge, 1, huge)),
			rec(1|recSettle, app(1, 2, 1, huge-1, 1, huge, ent(1, huge, "last"))),
			rec(2|recSettle, app(1, 3, 1, 8, 1, huge, ent(1, 9, "x"))),
			rec(2|recSettle, app(2, 3, huge, 8, 1, huge, ent(huge, 9, "huge term"))),
			rec(2|recTick|3<<5, msg(raftpb.MsgHeartbeat, 2, 3, huge)),
		}},
		{"app-largest-plausible", []fuzzRecord{
			rec(1|recSettle, app(1, 2, 1, 1<<60-1, 1, 1<<60, ent(1, 1<<60, "last"))),
			rec(2|recSettle, app(1, 3, 1<<60, 8, 1, 1<<60, ent(1<<60, 9, "largest term"))),
			rec(2|recTick|7<<5, msg(raftpb.MsgHeartbeat, 1, 3, 1<<60)),
		}},
		{"appresp", []fuzzRecord{
			rec(recToLeader|recSettle, at(msg(raftpb.MsgAppResp, 2, 1, 1), 8)),
			rec(recToLeader|recSettle, at(msg(raftpb.MsgAppResp, 2, 1, 1), huge)),
			rec(recToLeader|recSettle, rejected(at(msg(raftpb.MsgAppResp, 3, 1, 1), 8), 0, 0)),
			rec(recToLeader|recSettle, rejected(at(msg(raftpb.MsgAppResp, 2, 1, 1), 8), 2, 1)),
			rec(recToLeader|recSettle, rejected(at(msg(raftpb.MsgAppResp, 3, 1, 1), huge), huge, 1)),
			rec(recToLeader|recSettle, withCommit(at(msg(raftpb.MsgAppResp, 2, 1, 4), 8), huge)),
		}},
		{"vote-twice", []fuzzRecord{
			// Node 3 hears of term 2 from no leader, so it may vote in it.
			rec(2, msg(raftpb.MsgHeartbeatResp, 1, 3, 2)),
			rec(2, vote(raftpb.MsgVote, 2, 3, 2, 8, 1)),
			rec(2, vote(raftpb.MsgVote, 1, 3, 2, 8, 1)),
			rec(2|recSettle, vote(raftpb.MsgVote, 2, 3, 2, 8, 1)),
			rec(2|recSettle, vote(raftpb.MsgVote, 1, 3, 3, 7, 1)),
			rec(1|recTick|3<<5, vote(raftpb.MsgVote, 3, 2, 4, 20, 3)),
			rec(recToLeader|recTick|7<<5, vote(raftpb.MsgVoteResp, 2, 1, 9, 0, 0)),
		}},
		{"prevote", []fuzzRecord{
			rec(1|recSettle, vote(raftpb.MsgPreVote, 3, 2, 5, 8, 1)),
			rec(2|recTick|4<<5, vote(raftpb.MsgPreVote, 1, 3, 2, huge, 1)),
			rec(0|recSettle, msg(raftpb.MsgPreVoteResp, 2, 1, 6)),
			rec(0|recSettle, rejected(msg(raftpb.MsgPreVoteResp, 3, 1, 7), 0, 0)),
			rec(1|recSettle, msg(raftpb.MsgVoteResp, 3, 2, 1)),
		}},
		{"snap", []fuzzRecord{
			rec(2|recSettle, snap(1, 3, 1, raftpb.Snapshot{Index: 20, Term: 1, Nodes: []int64{1, 2, 3}, Data: []byte("far ahead")})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 5, Term: 1, Nodes: []int64{1, 2, 3}})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 8, Term: 1, Nodes: []int64{2}, Learners: []int64{1, 3}})),
			rec(1|recSettle, snap(3, 2, 4, raftpb.Snapshot{Index: 30, Term: 2, Nodes: []int64{2, 3, 4}, Learners: []int64{1}})),
			rec(recToLeader|recTick|3<<5, rejected(at(msg(raftpb.MsgAppResp, 2, 1, 1), 2), 1, 1)),
		}},
		{"snap-hostile", []fuzzRecord{
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 20, Term: 1})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 20, Term: 1, Nodes: []int64{1, 1, 0}})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 20, Term: 1, Nodes: []int64{1, 2}, Learners: []int64{2}})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: 20, Term: 5, Nodes: []int64{1, 2, 3}})),
			rec(1|recSettle, snap(1, 2, 1, raftpb.Snapshot{Index: -3, Term: 1, Nodes: []int64{1, 2, 3}})),
			rec(2|recSettle, snap(1, 3, 2, raftpb.Snapshot{Index: huge, Term: 2, Nodes: []int64{1, 2, 3}})),
			rec(2|recSettle, app(1, 3, 2, huge, 2, huge)),
			rec(0|recSettle, snap(2, 1, 3, raftpb.Snapshot{Index: 40, Term: 3, Nodes: []int64{2}})),
		}},
		{"heartbeat", []fuzzRecord{
			rec(1|recSettle, withCommit(msg(raftpb.MsgHeartbeat, 1, 2, 1), 100)),
			rec(recToLeader|recSettle, withCommit(msg(raftpb.MsgHeartbeatResp, 2, 1, 1), huge)),
			rec(2|recSettle, withCommit(msg(raftpb.MsgHeartbeat, 2, 3, 3), 8)),
			rec(recToLeader|recTick|2<<5, msg(raftpb.MsgHeartbeatResp, 3, 1, 1)),
		}},
		{"negative", []fuzzRecord{
			rec(1|recSettle, app(1, 2, -1, 8, 1, 8)),
			rec(1|recSettle, app(1, 2, 1, -8, 1, 8)),
			rec(1|recSettle, app(1, 2, 1, 8, -1, -8)),
			rec(recToLeader|recSettle, rejected(at(msg(raftpb.MsgAppResp, 2, 1, 1), 8), -5, 1)),
			rec(2|recSettle, withCommit(msg(raftpb.MsgHeartbeat, 1, 3, 1), -1)),
			rec(2|recSettle, vote(raftpb.MsgVote, 1, 3, math.MinInt64, 8, 1)),
			rec(1|recRaw|recSettle, msg(raftpb.MsgHeartbeat, -1, -2, 1)),
		}},
		{"local-only", []fuzzRecord{
			rec(1|recSettle, msg(raftpb.MsgHup, 3, 2, 1)),
			rec(recToLeader|recSettle, msg(raftpb.MsgBeat, 2, 1, 1)),
			rec(recToLeader|recSettle, msg(raftpb.MsgUnreachable, 2, 1, 1)),
			rec(recToLeader|recSettle, rejected(msg(raftpb.MsgSnapStatus, 3, 1, 1), 0, 0)),
			rec(recToLeader|recSettle, msg(raftpb.MsgCheckQuorum, 3, 1, 1)),
			rec(1|recRaw|recSettle, msg(raftpb.MsgHup, 0, 0, 0)),
		}},
		{"unhandled-types", []fuzzRecord{
			rec(recToLeader|recSettle, msg(raftpb.MsgTransferLeader, 2, 1, 1)),
			rec(1|recSettle, msg(raftpb.MsgTimeoutNow, 1, 2, 1)),
			rec(recToLeader|recSettle, msg(raftpb.MsgReadIndex, 3, 1, 1)),
			rec(2|recSettle, withCommit(msg(raftpb.MsgReadIndexResp, 1, 3, 1), 50)),
			rec(2|recSettle, msg(raftpb.MessageType(99), 1, 3, 1)),
			rec(2|recSettle, msg(raftpb.MessageType(-1), 1, 3, 1)),
		}},
		{"raw-addressing", []fuzzRecord{
			rec(1|recRaw|recSettle, app(1, 3, 1, 8, 1, 9, ent(1, 9, "to someone else"))),
			rec(1|recRaw|recSettle, app(7, 2, 2, 8, 1, 9, ent(2, 9, "from a stranger"))),
			rec(1|recRaw|recSettle, app(2, 2, 2, 8, 1, 9, ent(2, 9, "from itself"))),
			rec(2|recRaw|recTick|3<<5, vote(raftpb.MsgVote, 9, 3, 4, 100, 4)),
		}},
		{"membership-from-new-leader", []fuzzRecord{
			rec(2|recSettle, app(2, 3, 7, 8, 1, 10, conf(7, 9, "add 4"), conf(7, 10, "remove 1"))),
			rec(1|recSettle, app(3, 2, 8, 8, 1, 9, conf(8, 9, "remove 2"))),
			rec(recToLeader|recTick|7<<5, app(2, 1, 8, 8, 1, 8)),
		}},
	}
	var out []fuzzSeed
	for _, s := range seeds {
		seed := fuzzSeed{name: s.name, data: encodeFuzzRecords(s.recs...)}
		for _, r := range s.recs {
			seed.msgs = append(seed.msgs, r.msg)
		}
		out = append(out, seed)
	}
	// Bytes that are not a message at all.
	out = append(out, fuzzSeed{name: "garbage", data: []byte("\x09\x05\xff\xff\xff\xff\xff\x0a\x7fnot a protobuf message\x1b\x00")})
	return out
}

// TestFuzzStepSeedCorpus keeps the committed seed corpus equal to
// fuzzStepSeeds, and makes sure it covers every message type.
func TestFuzzStepSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzStep")
	types := map[raftpb.MessageType]bool{}
	for _, s := range fuzzStepSeeds() {
		for _, m := range s.msgs {
			types[m.Type] = true
		}
		path := filepath.Join(dir, "seed-"+s.name)
		want := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", s.data)
		if *updateFuzzSeeds {
			require.NoError(t, os.MkdirAll(dir, 0o755))
			require.NoError(t, os.WriteFile(path, want, 0o644))
			continue
		}
		got, err := os.ReadFile(path)
		require.NoError(t, err, "run go test -run TestFuzzStepSeedCorpus -update-fuzz-seeds")
		require.Equal(t, string(want), string(got), "%s is stale: run go test -run TestFuzzStepSeedCorpus -update-fuzz-seeds", path)
	}
	for name, v := range raftpb.MessageType_value {
		require.True(t, types[raftpb.MessageType(v)], "no seed has a %s", name)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "seed-") {
			names = append(names, e.Name())
		}
	}
	require.Len(t, names, len(fuzzStepSeeds()), "seed files without a seed in fuzzStepSeeds: %v", names)
}
