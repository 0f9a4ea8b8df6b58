package rafttest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// The Node harness: real raft.Node values, each with its own goroutine
// running the documented loop (persist to an in-memory disk, apply to a KV,
// config entries through AddNode/RemoveNode, send), over an in-memory
// network with seeded random loss and delay, inside a testing/synctest
// bubble. Time is explicit Tick calls (and the bubble's fake clock for the
// odd timeout); synctest.Wait, not a sleep, tells when every node has
// handled what it was given. The simulator's checkers (checker.go) watch
// every Ready, message and Status.
//
// Unlike the simulator the run is not deterministic (goroutines interleave
// as the scheduler likes, and the random source is shared by them), so it
// is bounded, and its seed is logged: -nodeseed N runs that seed again,
// which usually, not always, replays the failure.

var (
	flagNodeSeed = flag.Int64("nodeseed", -1, "seed of TestNodeHarness (default: random seeds, logged)")
	flagNodeRuns = flag.Int("noderuns", 10, "number of seeds TestNodeHarness runs (ignored with -nodeseed)")
)

const (
	nhElection  = 10
	nhHeartbeat = 1
	nhSubRounds = 3 // delivery rounds per tick; delays count delivery rounds
)

// nhDisk is what a node persisted; it survives crashes.
type nhDisk struct {
	hs     raftpb.HardState
	ents   []raftpb.Entry // from index 1 (the harness does not compact)
	chains []uint64       // chains[i] is the chain hash of the log up to ents[i]
}

func (d *nhDisk) lastIndex() int64 { return int64(len(d.ents)) }

func (d *nhDisk) chainAt(i int64) uint64 {
	if i <= 0 || i > d.lastIndex() {
		return 0
	}
	return d.chains[i-1]
}

// nhNode is one node as its application sees it.
type nhNode struct {
	id  int64
	n   raft.Node
	up  bool
	inc int // incarnation, +1 on every start
	// stopped: n and the loop goroutine have ended (up is false). A node
	// that crashes inside its loop is down but not yet stopped.
	stopped bool
	// tear >= 0 makes the next Ready crash the node after that many
	// writes of it reached the disk (snapshot, each entry, HardState).
	tear int
	quit chan struct{} // closed to end the loop goroutine (a crash)
	done chan struct{} // closed when the loop goroutine has ended

	disk  nhDisk
	maxHS raftpb.HardState // the highest term and commit ever persisted
	// maxSent is the highest term of a message the node sent (pre-vote
	// messages aside), in any incarnation.
	maxSent int64

	kv           *KV
	applied      int64 // this incarnation
	appliedChain uint64

	term int64 // as of the last Ready
	soft raft.SoftState
}

type nhMsg struct {
	m   raftpb.Message
	due int // the delivery round at which it arrives
}

type nodeHarness struct {
	seed  uint64
	peers []int64

	mu       sync.Mutex // guards everything below
	rng      *rand.Rand
	nodes    map[int64]*nhNode
	chk      *checker
	err      error // the first violation
	inflight []nhMsg
	cut      map[[2]int64]bool
	drop     float64
	maxDelay int
	now      int // delivery rounds so far
	trace    []string
	stats    nhStats
}

type nhStats struct {
	Ticks, Sent, Lost, Delivered, Readys, Applied, Crashes, Torn, Proposed, ProposeErrs int
}

func newNodeHarness(seed uint64, size int) *nodeHarness {
	h := &nodeHarness{
		seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		nodes: map[int64]*nhNode{}, chk: newChecker(), cut: map[[2]int64]bool{},
	}
	for id := int64(1); id <= int64(size); id++ {
		h.peers = append(h.peers, id)
		h.nodes[id] = &nhNode{id: id, stopped: true, tear: -1}
	}
	return h
}

// logf adds a line to the trace (the tail is printed with a violation).
// h.mu must be held.
func (h *nodeHarness) logf(format string, args ...any) {
	h.trace = append(h.trace, fmt.Sprintf("r%d: ", h.now)+fmt.Sprintf(format, args...))
	if len(h.trace) > 4*TraceTail {
		h.trace = slices.Delete(h.trace, 0, len(h.trace)-TraceTail)
	}
}

// fail records f as the run's violation, if it is the first. h.mu must be
// held. It reports whether f is one.
func (h *nodeHarness) fail(f *finding) bool {
	if f == nil {
		return false
	}
	if h.err == nil {
		tail := h.trace[max(0, len(h.trace)-TraceTail):]
		h.err = &Violation{Checker: f.checker, Seed: h.seed, Step: h.now, Detail: f.detail, Trace: slices.Clone(tail)}
	}
	return true
}

func (h *nodeHarness) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// start starts id (RestartNode from its disk after its first start) and
// its loop goroutine.
func (h *nodeHarness) start(id int64) {
	h.mu.Lock()
	nd := h.nodes[id]
	if nd.up || !nd.stopped {
		h.mu.Unlock()
		return
	}
	opt := raft.Seed(h.rng.Uint64())
	if nd.inc == 0 {
		nd.n = raft.StartNode(id, h.peers, nhElection, nhHeartbeat, opt)
	} else {
		nd.n = raft.RestartNode(id, h.peers, nhElection, nhHeartbeat, nil, nd.disk.hs, slices.Clone(nd.disk.ents), opt)
	}
	nd.inc++
	nd.up, nd.stopped, nd.tear = true, false, -1
	nd.quit, nd.done = make(chan struct{}), make(chan struct{})
	nd.kv, nd.applied, nd.appliedChain = &KV{}, 0, 0
	// The node's term may be above the one on its disk: a restart takes
	// the term of the last persisted entry when the HardState of its Ready
	// did not reach the disk. It must not be below a term the node sent
	// messages in before (pre-vote messages carry a term not yet taken).
	st := nd.n.Status()
	nd.term, nd.soft = st.Term, st.SoftState
	if st.Term < nd.maxSent {
		h.fail(found(CheckMonotonic, "node %x restarts in term %d, after sending messages in term %d (its disk: %+v, %d entries)", id, st.Term, nd.maxSent, nd.disk.hs, len(nd.disk.ents)))
	}
	h.logf("start %x (incarnation %d, disk %d entries, %+v)", id, nd.inc, len(nd.disk.ents), nd.disk.hs)
	n, inc, quit, done := nd.n, nd.inc, nd.quit, nd.done
	h.mu.Unlock()
	go h.loop(nd, n, inc, quit, done)
}

// crash stops id: whatever its loop has not persisted is lost. It also
// finishes off a node that crashed in the middle of persisting a Ready.
func (h *nodeHarness) crash(id int64) {
	h.mu.Lock()
	nd := h.nodes[id]
	if nd.stopped {
		h.mu.Unlock()
		return
	}
	if nd.up {
		nd.up = false
		h.stats.Crashes++
		h.logf("crash %x", id)
	}
	nd.stopped = true
	n, quit, done := nd.n, nd.quit, nd.done
	h.mu.Unlock()
	close(quit)
	n.Stop()
	<-done
}

// loop is the application's loop of one incarnation of a node.
func (h *nodeHarness) loop(nd *nhNode, n raft.Node, inc int, quit, done chan struct{}) {
	defer close(done)
	for {
		select {
		case rd := <-n.Ready():
			if !h.handle(nd, inc, rd) {
				return
			}
		case <-quit:
			return
		}
	}
}

// handle runs one turn of the loop for rd: persist, apply, send, with the
// checkers watching. It returns false when the incarnation is over (or the
// run failed).
func (h *nodeHarness) handle(nd *nhNode, inc int, rd raft.Ready) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !nd.up || nd.inc != inc || h.err != nil {
		return false // crashed before persisting anything of rd
	}
	h.stats.Readys++
	if nd.tear >= 0 {
		// A crash in the middle of persisting rd: a prefix of its writes
		// (entries in order, then the HardState) reaches the disk.
		ents := rd.Entries[:min(nd.tear, len(rd.Entries))]
		ok := h.observe(nd, rd) && h.persistEntries(nd, ents)
		if ok && nd.tear > len(rd.Entries) {
			h.persistState(nd, rd.State)
		}
		nd.up = false
		h.stats.Crashes++
		h.stats.Torn++
		h.logf("crash %x after %d writes of a Ready with %d entries", nd.id, nd.tear, len(rd.Entries))
		return false
	}
	ok := h.observe(nd, rd) && h.persistEntries(nd, rd.Entries) &&
		h.persistState(nd, rd.State) && h.checkLeader(nd)
	for i := 0; ok && i < len(rd.CommittedEntries); i++ {
		ok = h.apply(nd, &rd.CommittedEntries[i])
	}
	for i := 0; ok && i < len(rd.Messages); i++ {
		ok = h.send(nd, rd.Messages[i])
	}
	return ok
}

// observe: election safety, as the Ready's soft state tells it.
func (h *nodeHarness) observe(nd *nhNode, rd raft.Ready) bool {
	if !raft.IsEmptyHardState(rd.State) {
		nd.term = rd.State.Term
	}
	if rd.SoftState != nil {
		nd.soft = *rd.SoftState
		h.logf("%x soft state %v lead %x term %d", nd.id, nd.soft.RaftState, nd.soft.Lead, nd.term)
	}
	switch {
	case nd.soft.RaftState == raft.StateLeader:
		return !h.fail(h.chk.leader(nd.term, nd.id, "its Ready says so"))
	case nd.soft.Lead != raft.None:
		return !h.fail(h.chk.leader(nd.term, nd.soft.Lead, fmt.Sprintf("as follower %x's Ready says", nd.id)))
	}
	return true
}

// persistEntries: log matching, and no committed entry is overwritten.
func (h *nodeHarness) persistEntries(nd *nhNode, ents []raftpb.Entry) bool {
	if len(ents) == 0 {
		return true
	}
	d := &nd.disk
	first := ents[0].Index
	if first < 1 || first > d.lastIndex()+1 {
		return !h.fail(found(CheckPersistence, "node %x is handed entries from %d, but its disk ends at %d", nd.id, first, d.lastIndex()))
	}
	prev := d.chainAt(first - 1)
	chains := make([]uint64, len(ents))
	for i := range ents {
		if ents[i].Index != first+int64(i) {
			return !h.fail(found(CheckPersistence, "node %x is handed non-contiguous entries at %s", nd.id, raft.DescribeEntry(ents[i])))
		}
		prev = chainHash(prev, &ents[i])
		chains[i] = prev
	}
	for idx := first; idx <= d.lastIndex() && idx <= h.chk.commitIndex; idx++ {
		var now uint64
		if k := idx - first; k < int64(len(chains)) {
			now = chains[k]
		}
		if old := d.chainAt(idx); old != now && h.chk.isCommitted(idx, old) {
			return !h.fail(found(CheckCommitted, "node %x persists entries from %s, overwriting committed entry %s", nd.id, raft.DescribeEntry(ents[0]), raft.DescribeEntry(d.ents[idx-1])))
		}
	}
	for i := range ents {
		if h.fail(h.chk.persisted(nd.id, ents[i].Index, ents[i].Term, chains[i])) {
			return false
		}
	}
	d.ents = append(d.ents[:first-1], ents...)
	d.chains = append(d.chains[:first-1], chains...)
	return true
}

// persistState: term and commit never go back, across restarts; one vote
// per term; a committed entry never changes.
func (h *nodeHarness) persistState(nd *nhNode, hs raftpb.HardState) bool {
	if raft.IsEmptyHardState(hs) {
		return true
	}
	d := &nd.disk
	if h.fail(hardStateWrite(nd.id, nd.maxHS, hs, d.lastIndex())) {
		return false
	}
	if hs.Vote != raft.None && h.fail(h.chk.vote(nd.id, hs.Term, hs.Vote)) {
		return false
	}
	nd.maxHS, d.hs = hs, hs
	return !h.fail(h.chk.commit(nd.id, hs.Term, hs.Commit, d.chainAt(hs.Commit), d.chainAt))
}

// checkLeader: a leader's persisted log holds every entry committed in an
// earlier term (§5.4).
func (h *nodeHarness) checkLeader(nd *nhNode) bool {
	if nd.soft.RaftState != raft.StateLeader {
		return true
	}
	need := h.chk.committedBefore(nd.term)
	if want := at(h.chk.committed, need); need > 0 && want != 0 && nd.disk.chainAt(need) != want {
		return !h.fail(found(CheckLeaderCompleteness, "node %x leads term %d, but its log lacks entry %d, committed in an earlier term", nd.id, nd.term, need))
	}
	return true
}

// apply applies one committed entry: state machine safety.
func (h *nodeHarness) apply(nd *nhNode, e *raftpb.Entry) bool {
	if e.Index != nd.applied+1 {
		return !h.fail(found(CheckMonotonic, "node %x is handed entry %d to apply after %d", nd.id, e.Index, nd.applied))
	}
	nd.appliedChain = chainHash(nd.appliedChain, e)
	nd.applied = e.Index
	h.stats.Applied++
	switch {
	case e.Type == raftpb.EntryConfig:
		// The node's goroutine never waits for h.mu, so calling it with
		// h.mu held cannot deadlock.
		switch op, id, ok := parseConfig(e.Data); {
		case ok && op == "add":
			nd.n.AddNode(id)
		case ok && op == "remove":
			nd.n.RemoveNode(id)
		}
		h.logf("%x applied config %s", nd.id, raft.DescribeEntry(*e))
	case len(e.Data) > 0:
		nd.kv.Apply(*e)
	}
	return !h.fail(h.chk.apply(nd.id, e.Index, nd.appliedChain, digestOf(nd.kv)))
}

// send checks a message as it leaves and puts it in flight.
func (h *nodeHarness) send(nd *nhNode, m raftpb.Message) bool {
	switch {
	case m.Type == raftpb.MsgVoteResp && !m.Reject:
		if h.fail(h.chk.vote(nd.id, m.Term, m.To)) {
			return false
		}
		if hs := nd.disk.hs; hs.Term < m.Term || (hs.Term == m.Term && hs.Vote != m.To) {
			return !h.fail(found(CheckVote, "node %x grants its vote in term %d to %x before persisting it (its disk has %d/%x)", nd.id, m.Term, m.To, hs.Term, hs.Vote))
		}
		h.logf("%x grants its vote in term %d to %x", nd.id, m.Term, m.To)
	case m.Type == raftpb.MsgAppResp && !m.Reject && m.Term >= nd.disk.hs.Term && m.Index > nd.disk.lastIndex():
		return !h.fail(found(CheckPersistence, "node %x acknowledges entries up to %d, but its disk holds only up to %d", nd.id, m.Index, nd.disk.lastIndex()))
	}
	if m.Type != raftpb.MsgPreVote && m.Type != raftpb.MsgPreVoteResp {
		nd.maxSent = max(nd.maxSent, m.Term)
	}
	h.stats.Sent++
	if h.drop > 0 && h.rng.Float64() < h.drop {
		h.stats.Lost++
		return true
	}
	due := h.now + 1
	if h.maxDelay > 0 {
		due += h.rng.IntN(h.maxDelay + 1)
	}
	h.inflight = append(h.inflight, nhMsg{m: m, due: due})
	return true
}

// deliver runs one delivery round and waits until every goroutine of the
// bubble is idle again.
func (h *nodeHarness) deliver(ctx context.Context) {
	h.mu.Lock()
	h.now++
	var due []nhMsg
	rest := h.inflight[:0]
	for _, env := range h.inflight {
		if env.due <= h.now {
			due = append(due, env)
		} else {
			rest = append(rest, env)
		}
	}
	clear(h.inflight[len(rest):])
	h.inflight = rest
	h.mu.Unlock()
	for _, env := range due {
		m := env.m
		h.mu.Lock()
		to := h.nodes[m.To]
		ok := to != nil && to.up && !h.cut[[2]int64{m.From, m.To}]
		var n raft.Node
		if ok {
			n = to.n
			h.stats.Delivered++
		} else {
			h.stats.Lost++
		}
		h.mu.Unlock()
		if !ok {
			continue
		}
		if err := n.Step(ctx, m); err != nil && !errors.Is(err, raft.ErrStopped) && ctx.Err() == nil {
			h.mu.Lock()
			h.fail(found(CheckStep, "node %x refused %s: %v", m.To, raft.DescribeMessage(m), err))
			h.mu.Unlock()
		}
	}
	synctest.Wait()
}

// tick ticks every running node, runs the delivery rounds of one tick, and
// checks election safety as Status reports it.
func (h *nodeHarness) tick(ctx context.Context) {
	for _, nd := range h.running() {
		nd.n.Tick()
	}
	h.mu.Lock()
	h.stats.Ticks++
	h.mu.Unlock()
	synctest.Wait()
	for range nhSubRounds {
		h.deliver(ctx)
	}
	for _, nd := range h.running() {
		st := nd.n.Status()
		h.mu.Lock()
		switch {
		case st.ID == 0: // stopped meanwhile
		case st.RaftState == raft.StateLeader:
			h.fail(h.chk.leader(st.Term, st.ID, "its Status says so"))
		case st.Lead != raft.None:
			h.fail(h.chk.leader(st.Term, st.Lead, fmt.Sprintf("as follower %x's Status says", st.ID)))
		}
		h.mu.Unlock()
	}
}

// running returns the running nodes, by id.
func (h *nodeHarness) running() []*nhNode {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*nhNode
	for _, id := range h.peers {
		if nd := h.nodes[id]; nd.up {
			out = append(out, nd)
		}
	}
	return out
}

// leader returns a running node whose Status says it leads, with the
// highest term, or nil.
func (h *nodeHarness) leader() *nhNode {
	var best *nhNode
	var term int64
	for _, nd := range h.running() {
		if st := nd.n.Status(); st.RaftState == raft.StateLeader && st.Term > term {
			best, term = nd, st.Term
		}
	}
	return best
}

// pick returns a random id among ids.
func (h *nodeHarness) pick(ids []int64) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return ids[h.rng.IntN(len(ids))]
}

func (h *nodeHarness) partition(a, b []int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			h.cut[[2]int64{x, y}], h.cut[[2]int64{y, x}] = true, true
		}
	}
	h.logf("partition %x | %x", a, b)
}

func (h *nodeHarness) setFaults(drop float64, maxDelay int, heal bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop, h.maxDelay = drop, maxDelay
	if heal {
		clear(h.cut)
	}
	h.logf("faults drop %.2f delay %d heal %v", drop, maxDelay, heal)
}

// converged reports whether every node runs, applied the probe, and all
// applied the same history up to the same index.
func (h *nodeHarness) converged(probe string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	var first *nhNode
	for _, id := range h.peers {
		nd := h.nodes[id]
		if !nd.up {
			return false
		}
		if _, ok := nd.kv.Get(probe); !ok {
			return false
		}
		if first == nil {
			first = nd
		} else if nd.applied != first.applied || nd.appliedChain != first.appliedChain || nd.kv.Digest() != first.kv.Digest() {
			return false
		}
	}
	return true
}

// runNodeHarness runs one seed: 5 nodes, 4 proposing goroutines, loss and
// delay, crashes and restarts (one node, the leader, two at once), a
// partition that cuts the leader off with one follower, and a heal; then a
// fault-free tail in which every node must apply the same history,
// including a final probe, within a bound of ticks.
func runNodeHarness(t *testing.T, seed uint64) {
	const (
		size      = 5
		proposers = 4
		tailTicks = 40 * nhElection
	)
	h := newNodeHarness(seed, size)
	ctx, cancel := context.WithCancel(context.Background())
	work := make(chan struct{}, 64)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, id := range h.peers {
			h.crash(id)
		}
		close(work)
		wg.Wait()
	}()
	for _, id := range h.peers {
		h.start(id)
	}
	for g := range proposers {
		wg.Go(func() {
			for i := 0; ; i++ {
				if _, ok := <-work; !ok {
					return
				}
				nodes := h.running()
				if len(nodes) == 0 {
					continue
				}
				id := h.pick(idsOf(nodes))
				h.mu.Lock()
				n, now := h.nodes[id].n, h.now
				h.stats.Proposed++
				h.mu.Unlock()
				if err := n.Propose(ctx, fmt.Appendf(nil, "put g%d-%d r%d", g, i, now)); err != nil {
					h.mu.Lock()
					h.stats.ProposeErrs++
					h.mu.Unlock()
				}
			}
		})
	}
	check := func() {
		t.Helper()
		if err := h.Err(); err != nil {
			t.Fatalf("%v\nreplay: go test ./rafttest -run 'TestNodeHarness$' -nodeseed %d", err, seed)
		}
	}

	// The faults: loss and delay all along; a partition that cuts the
	// leader off with one follower, then a heal; the leader crashed; and
	// random crashes (at most two nodes down at once), some of them in
	// the middle of persisting a Ready, each restarted a few ticks later.
	var (
		r        = rand.New(rand.NewPCG(seed, 1))
		tPart    = 60 + r.IntN(20)         // the leader and one follower cut off...
		tHeal    = tPart + 40 + r.IntN(30) // ...and healed
		tLead    = tHeal + 20 + r.IntN(20) // the leader crashes
		end      = tLead + 100
		downTill = map[int64]int{} // down nodes: when they restart
	)
	h.setFaults(0.05+0.1*r.Float64(), 1+r.IntN(4), false)
	crash := func(id int64, tk int) {
		h.mu.Lock()
		torn := h.nodes[id].up && r.IntN(2) == 0
		if torn {
			h.nodes[id].tear = r.IntN(3)
		}
		h.mu.Unlock()
		if !torn {
			h.crash(id)
		}
		downTill[id] = tk + 2 + r.IntN(3*nhElection)
	}
	for tk := 0; tk < end; tk++ {
		for id, till := range downTill {
			if tk >= till {
				h.crash(id) // finishes off a torn crash
				h.start(id)
				delete(downTill, id)
			}
		}
		switch {
		case tk == tPart:
			a := h.pick(h.peers)
			if l := h.leader(); l != nil {
				a = l.id
			}
			rest := slices.DeleteFunc(slices.Clone(h.peers), func(id int64) bool { return id == a })
			b := h.pick(rest)
			rest = slices.DeleteFunc(rest, func(id int64) bool { return id == b })
			h.partition([]int64{a, b}, rest)
		case tk == tHeal:
			h.setFaults(h.drop, h.maxDelay, true)
		case tk == tLead:
			if l := h.leader(); l != nil && downTill[l.id] == 0 {
				h.crash(l.id)
				downTill[l.id] = tk + 20
			}
		case len(downTill) < 2 && r.IntN(12) == 0:
			if up := h.running(); len(up) > 0 {
				if id := up[r.IntN(len(up))].id; downTill[id] == 0 {
					crash(id, tk)
				}
			}
		}
		h.mu.Lock()
		k := h.rng.IntN(4)
		h.mu.Unlock()
		for range k {
			select {
			case work <- struct{}{}:
			default:
			}
		}
		h.tick(ctx)
		check()
	}

	// The fault-free tail: every node applies the same history, with the
	// probe in it, within tailTicks.
	h.setFaults(0, 0, true)
	for _, id := range h.peers {
		h.crash(id) // finishes off a torn crash
		h.start(id)
	}
	const probe = "probe"
	for tk := 0; ; tk++ {
		if tk == tailTicks {
			h.mu.Lock()
			var b strings.Builder
			for _, id := range h.peers {
				nd := h.nodes[id]
				_, has := nd.kv.Get(probe)
				fmt.Fprintf(&b, "\n  node %x: up %v applied %d probe %v %+v %v", id, nd.up, nd.applied, has, nd.disk.hs, nd.soft)
			}
			h.mu.Unlock()
			t.Fatalf("liveness: after %d fault-free ticks the nodes do not agree on a history with the probe (seed %d):%s", tailTicks, seed, b.String())
		}
		if tk%(2*nhElection) == 0 {
			if l := h.leader(); l != nil {
				pctx, pcancel := context.WithTimeout(ctx, time.Second) // the bubble's fake clock
				_ = l.n.Propose(pctx, []byte("put "+probe+" 1"))
				pcancel()
			}
		}
		h.tick(ctx)
		check()
		if h.converged(probe) {
			break
		}
	}
	h.mu.Lock()
	st, applied := h.stats, h.nodes[1].applied
	h.mu.Unlock()
	t.Logf("seed %d: %d ticks, all nodes applied the same %d entries; %+v", seed, st.Ticks, applied, st)
}

func idsOf(nodes []*nhNode) []int64 {
	out := make([]int64, len(nodes))
	for i, nd := range nodes {
		out[i] = nd.id
	}
	return out
}

func TestNodeHarness(t *testing.T) {
	var seeds []uint64
	if *flagNodeSeed >= 0 {
		seeds = []uint64{uint64(*flagNodeSeed)}
	} else {
		for range max(1, *flagNodeRuns) {
			seeds = append(seeds, rand.Uint64()%1_000_000)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Logf("seed %d (replay: go test ./rafttest -run 'TestNodeHarness$' -nodeseed %d)", seed, seed)
			synctest.Test(t, func(t *testing.T) { runNodeHarness(t, seed) })
		})
	}
}

// The harness's checks can fail: each case feeds hand-made Readys, with the
// fault a checker guards against, through the loop's handler (no Node
// runs) and expects that checker to report it.
func TestNodeHarnessCatches(t *testing.T) {
	ent := func(index, term int64, data string) raftpb.Entry {
		return raftpb.Entry{Index: index, Term: term, Type: raftpb.EntryNormal, Data: []byte(data)}
	}
	leader := &raft.SoftState{Lead: 0, RaftState: raft.StateLeader}
	hs := func(term, vote, commit int64) raftpb.HardState {
		return raftpb.HardState{Term: term, Vote: vote, Commit: commit}
	}
	grant := func(from, to, term int64) raftpb.Message {
		return raftpb.Message{Type: raftpb.MsgVoteResp, From: from, To: to, Term: term}
	}
	type step struct {
		node int64
		rd   raft.Ready
	}
	committed := step{1, raft.Ready{State: hs(1, 1, 1), Entries: []raftpb.Entry{ent(1, 1, "put a 1")}}}
	for _, tc := range []struct {
		name  string
		steps []step
		want  string
	}{
		{"two leaders in a term", []step{
			{1, raft.Ready{SoftState: leader, State: hs(2, 1, 0)}},
			{2, raft.Ready{SoftState: leader, State: hs(2, 2, 0)}},
		}, CheckElectionSafety},
		{"a follower sees another leader", []step{
			{1, raft.Ready{SoftState: leader, State: hs(2, 1, 0)}},
			{3, raft.Ready{SoftState: &raft.SoftState{Lead: 2, RaftState: raft.StateFollower}, State: hs(2, 0, 0)}},
		}, CheckElectionSafety},
		{"two votes in a term", []step{
			{3, raft.Ready{State: hs(2, 1, 0), Messages: []raftpb.Message{grant(3, 1, 2)}}},
			{3, raft.Ready{State: hs(2, 2, 0), Messages: []raftpb.Message{grant(3, 2, 2)}}},
		}, CheckVote},
		{"a vote granted before it is persisted", []step{
			{3, raft.Ready{Messages: []raftpb.Message{grant(3, 1, 2)}}},
		}, CheckVote},
		{"term goes back", []step{
			{1, raft.Ready{State: hs(3, 0, 0)}},
			{1, raft.Ready{State: hs(2, 0, 0)}},
		}, CheckMonotonic},
		{"commit goes back", []step{
			committed,
			{1, raft.Ready{State: hs(1, 1, 0)}},
		}, CheckMonotonic},
		{"a committed entry overwritten", []step{
			committed,
			{1, raft.Ready{Entries: []raftpb.Entry{ent(1, 2, "put a 2")}}},
		}, CheckCommitted},
		{"two logs that differ below a common entry", []step{
			{1, raft.Ready{Entries: []raftpb.Entry{ent(1, 1, "put a 1"), ent(2, 2, "")}}},
			{2, raft.Ready{Entries: []raftpb.Entry{ent(1, 1, "put a 9"), ent(2, 2, "")}}},
		}, CheckLogMatching},
		{"two nodes apply different entries at one index", []step{
			{1, raft.Ready{CommittedEntries: []raftpb.Entry{ent(1, 1, "put a 1")}}},
			{2, raft.Ready{CommittedEntries: []raftpb.Entry{ent(1, 1, "put a 2")}}},
		}, CheckStateMachine},
		{"an entry applied out of order", []step{
			{1, raft.Ready{CommittedEntries: []raftpb.Entry{ent(2, 1, "put a 1")}}},
		}, CheckMonotonic},
		{"a leader without an entry committed before its term", []step{
			committed,
			{2, raft.Ready{SoftState: leader, State: hs(2, 2, 0)}},
		}, CheckLeaderCompleteness},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newNodeHarness(1, 3)
			for _, nd := range h.nodes {
				nd.up, nd.inc, nd.kv = true, 1, &KV{}
			}
			for _, s := range tc.steps {
				h.handle(h.nodes[s.node], 1, s.rd)
			}
			var v *Violation
			if !errors.As(h.Err(), &v) || v.Checker != tc.want {
				t.Fatalf("want a %q violation, got %v", tc.want, h.Err())
			}
		})
	}
}
