package raft

import (
	"encoding/binary"
	"flag"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/raftly/raft/raftpb"
)

// A randomized cluster run inside the package, checking Raft's safety
// properties on every step. (Package rafttest grows the full simulator.)

var (
	flagSeed  = flag.Int64("seed", -1, "replay one seed of TestRandomized")
	flagSeeds = flag.Int("seeds", 200, "number of seeds TestRandomized runs")
	flagSteps = flag.Int("steps", 1500, "steps per seed in TestRandomized")
	flagTrace = flag.String("dump", "", "write the whole trace of a failing TestRandomized seed to this file")
)

type randomRun struct {
	t     *testing.T
	seed  int64
	rng   *rand.Rand
	nw    *network
	trace []string

	nextID  int64
	retired map[int64]bool // removed nodes: never restarted once down
	joined  map[int64]int64
	// appliedHash[i] is the state-machine hash after applying entry i,
	// the same on every node (state machine safety).
	appliedHash map[int64]uint64
	// committed[i] is the entry committed at i (never lost or changed).
	committed  map[int64]string
	leaders    map[int64]int64 // term -> leader (election safety)
	hashOf     map[int64]uint64
	votes      map[[2]int64]int64 // (node, term) -> vote
	lastHS     map[int64]raftpb.HardState
	proposalNo int
}

func (rr *randomRun) fail(format string, args ...any) {
	rr.t.Helper()
	if *flagTrace != "" {
		_ = os.WriteFile(*flagTrace, []byte(strings.Join(rr.trace, "\n")+"\n"), 0o644)
	}
	start := max(0, len(rr.trace)-60)
	rr.t.Fatalf("seed %d: %s\nlast events:\n%s\nreplay: go test -run TestRandomized -seed %d",
		rr.seed, fmt.Sprintf(format, args...), strings.Join(rr.trace[start:], "\n"), rr.seed)
}

func (rr *randomRun) log(format string, args ...any) {
	rr.trace = append(rr.trace, fmt.Sprintf(format, args...))
}

func entryKey(e raftpb.Entry) string {
	return fmt.Sprintf("%d/%d/%d/%x", e.Term, e.Index, e.Type, e.Data)
}

func chainHash(prev uint64, e raftpb.Entry) uint64 {
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], prev)
	h.Write(b[:])
	h.Write([]byte(entryKey(e)))
	return h.Sum64()
}

func TestRandomized(t *testing.T) {
	seeds := make([]int64, 0, *flagSeeds)
	if *flagSeed >= 0 {
		seeds = append(seeds, *flagSeed)
	} else {
		for s := 0; s < *flagSeeds; s++ {
			seeds = append(seeds, int64(s))
		}
	}
	for _, seed := range seeds {
		runRandom(t, seed, *flagSteps)
	}
}

func runRandom(t *testing.T, seed int64, steps int) {
	size := 3 + 2*int(seed%2)
	ids := make([]int64, size)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	rr := &randomRun{
		t: t, seed: seed, rng: rand.New(rand.NewPCG(uint64(seed), 7)),
		nextID: int64(size + 1), retired: map[int64]bool{}, joined: map[int64]int64{},
		appliedHash: map[int64]uint64{}, committed: map[int64]string{}, leaders: map[int64]int64{},
		hashOf: map[int64]uint64{}, votes: map[[2]int64]int64{}, lastHS: map[int64]raftpb.HardState{},
	}
	rr.nw = newNetwork(t, nil)
	for _, id := range ids {
		rr.nw.addNode(id, ids, Seed(uint64(seed)<<8|uint64(id)))
	}
	for step := 0; step < steps; step++ {
		rr.step()
	}
	rr.checkLiveness()
}

func (rr *randomRun) live() []int64 {
	var out []int64
	for _, id := range rr.nw.ids {
		if n := rr.nw.nodes[id]; !n.down {
			out = append(out, id)
		}
	}
	return out
}

func (rr *randomRun) pick(ids []int64) int64 { return ids[rr.rng.IntN(len(ids))] }

// step performs one random action.
func (rr *randomRun) step() {
	nw := rr.nw
	switch p := rr.rng.IntN(100); {
	case p < 30:
		for _, id := range rr.live() {
			nw.nodes[id].rn.Tick()
		}
	case p < 45:
		rr.propose()
	case p < 47:
		rr.configure()
	case p < 49:
		rr.crash()
	case p < 52:
		rr.restartOne()
	case p < 54:
		rr.partition()
	case p < 57:
		nw.heal()
		rr.log("heal")
	case p < 59:
		rr.compact()
	default:
		rr.runLoops()
	}
	rr.check()
}

func (rr *randomRun) propose() {
	live := rr.live()
	if len(live) == 0 {
		return
	}
	id := rr.pick(live)
	rr.proposalNo++
	data := fmt.Sprintf("s%d-p%d", rr.seed, rr.proposalNo)
	err := rr.nw.nodes[id].rn.Propose([]byte(data))
	rr.log("propose %s at %x: %v", data, id, err)
}

func (rr *randomRun) configure() {
	live := rr.live()
	if len(live) == 0 {
		return
	}
	id := rr.pick(live)
	voters := rr.nw.nodes[id].rn.Status().Voters
	var data []byte
	switch {
	case len(voters) < 5 && rr.rng.IntN(2) == 0 && rr.nextID < 12:
		data = configData("add", rr.nextID)
		rr.nextID++
	case len(voters) > 3:
		data = configData("remove", rr.pick(voters))
	default:
		data = []byte("noop change")
	}
	err := rr.nw.nodes[id].rn.ProposeConfig(data)
	rr.log("configure %q at %x: %v", data, id, err)
}

func (rr *randomRun) crash() {
	live := rr.live()
	if len(live) <= 1 {
		return
	}
	id := rr.pick(live)
	n := rr.nw.nodes[id]
	// Crash in the middle of persisting a Ready: any prefix of
	// (Snapshot, Entries, State) reaches the disk.
	if n.rn.HasReady() && rr.rng.IntN(2) == 0 {
		rd := n.rn.Ready()
		part := rr.rng.IntN(3)
		partial := Ready{Snapshot: rd.Snapshot}
		if part >= 1 {
			partial.Entries = rd.Entries
		}
		if part >= 2 {
			partial.State = rd.State
		}
		n.disk.save(partial)
		rr.log("crash %x while persisting (prefix %d)", id, part)
	} else {
		rr.log("crash %x", id)
	}
	rr.nw.crash(id)
}

func (rr *randomRun) restartOne() {
	var down []int64
	for _, id := range rr.nw.ids {
		if rr.nw.nodes[id].down && !rr.retired[id] {
			down = append(down, id)
		}
	}
	if len(down) == 0 {
		return
	}
	id := rr.pick(down)
	rr.restart(id)
}

func (rr *randomRun) restart(id int64) {
	n := rr.nw.nodes[id]
	var extra []Option
	if j, ok := rr.joined[id]; ok && IsEmptySnap(n.disk.snap) {
		extra = append(extra, Joining(j))
	}
	rr.nw.restart(id, extra...)
	rr.hashOf[id] = 0
	if !IsEmptySnap(n.disk.snap) {
		rr.hashOf[id] = binary.LittleEndian.Uint64(n.disk.snap.Data)
	}
	rr.log("restart %x (hs %+v, %d entries, snap %d)", id, n.disk.hs, len(n.disk.ents), n.disk.snap.Index)
}

func (rr *randomRun) partition() {
	live := rr.live()
	if len(live) < 2 {
		return
	}
	rr.nw.heal()
	id := rr.pick(live)
	if rr.rng.IntN(2) == 0 {
		rr.nw.isolate(id)
		rr.log("isolate %x", id)
		return
	}
	// One-way cut: id hears nobody, or nobody hears id.
	for _, other := range rr.nw.ids {
		if other != id {
			if rr.rng.IntN(2) == 0 {
				rr.nw.cut[link{other, id}] = true
			} else {
				rr.nw.cut[link{id, other}] = true
			}
		}
	}
	rr.log("asymmetric cut around %x", id)
}

func (rr *randomRun) compact() {
	live := rr.live()
	if len(live) == 0 {
		return
	}
	id := rr.pick(live)
	n := rr.nw.nodes[id]
	st := n.rn.Status()
	idx := n.appliedIndex
	if idx <= n.disk.snap.Index || n.rn.raft.log.applying != idx {
		return
	}
	data := binary.LittleEndian.AppendUint64(nil, rr.hashOf[id])
	voters := slices.DeleteFunc(slices.Clone(st.Voters), func(v int64) bool { return v == id })
	if err := n.rn.Compact(idx, voters, data); err != nil {
		rr.log("compact %x at %d: %v", id, idx, err)
		return
	}
	snap := n.rn.storage.Snapshot()
	n.disk.snap = snap
	n.disk.ents = slices.DeleteFunc(slices.Clone(n.disk.ents), func(e raftpb.Entry) bool { return e.Index <= idx })
	rr.log("compact %x at %d", id, idx)
}

// runLoops runs one loop turn on a few nodes and delivers some messages.
func (rr *randomRun) runLoops() {
	nw := rr.nw
	for _, id := range rr.live() {
		if rr.rng.IntN(2) == 0 {
			rr.processNode(id)
		}
	}
	msgs := nw.queue
	nw.queue = nil
	rr.rng.Shuffle(len(msgs), func(i, j int) { msgs[i], msgs[j] = msgs[j], msgs[i] })
	for _, m := range msgs {
		switch r := rr.rng.IntN(100); {
		case r < 5:
			continue // lost
		case r < 15:
			nw.queue = append(nw.queue, m) // delayed
			continue
		case r < 18:
			nw.queue = append(nw.queue, m) // duplicated
		}
		to := nw.nodes[m.To]
		if to == nil || to.down || nw.cut[link{m.From, m.To}] {
			continue
		}
		rr.log("%s", DescribeMessage(m))
		if err := to.rn.Step(m); err != nil {
			rr.fail("step of a message from a correct peer failed: %v", err)
		}
	}
}

func (rr *randomRun) processNode(id int64) {
	n := rr.nw.nodes[id]
	if n.down || !n.rn.HasReady() {
		return
	}
	rd := n.rn.Ready()
	rr.checkReady(id, rd)
	n.disk.save(rd)
	if !IsEmptySnap(rd.Snapshot) {
		n.appliedIndex = rd.Snapshot.Index
		rr.hashOf[id] = binary.LittleEndian.Uint64(rd.Snapshot.Data)
		rr.log("%x restores snapshot %d", id, rd.Snapshot.Index)
	}
	for _, e := range rd.CommittedEntries {
		if e.Index != n.appliedIndex+1 {
			rr.fail("node %x applies %d after %d", id, e.Index, n.appliedIndex)
		}
		h := chainHash(rr.hashOf[id], e)
		if prev, ok := rr.appliedHash[e.Index]; ok && prev != h {
			rr.fail("state machine safety: node %x applied a different entry or history at %d (%s)", id, e.Index, DescribeEntry(e))
		}
		rr.appliedHash[e.Index] = h
		rr.hashOf[id] = h
		rr.nw.apply(n, e)
		if e.Type == EntryConfig {
			rr.log("%x applied config %s: %s", id, DescribeEntry(e), n.rn.raft.membership())
			rr.afterConfig(id, e)
		}
	}
	rr.nw.queue = append(rr.nw.queue, rd.Messages...)
	n.rn.Advance()
}

// afterConfig starts a node that an applied entry added.
func (rr *randomRun) afterConfig(id int64, e raftpb.Entry) {
	op, arg, _ := strings.Cut(string(e.Data), " ")
	var x int64
	fmt.Sscan(arg, &x)
	st := rr.nw.nodes[id].rn.Status()
	switch {
	case op == "add" && rr.nw.nodes[x] == nil && slices.Contains(st.Voters, x):
		rr.nw.addNode(x, st.Voters, Seed(uint64(rr.seed)<<8|uint64(x)), Joining(e.Index))
		rr.joined[x] = e.Index
		rr.hashOf[x] = 0
		rr.log("start %x joining at %d with voters %v", x, e.Index, st.Voters)
	case op == "remove" && !slices.Contains(st.Voters, x):
		// A removed node is never restarted once it goes down.
		rr.retired[x] = true
	}
}

// checkReady checks what a node hands out against what was committed.
func (rr *randomRun) checkReady(id int64, rd Ready) {
	hs := rd.State
	if IsEmptyHardState(hs) {
		return
	}
	prev := rr.lastHS[id]
	if hs.Term < prev.Term || hs.Commit < prev.Commit {
		rr.fail("node %x HardState went back: %+v after %+v", id, hs, prev)
	}
	if hs.Term == prev.Term && prev.Vote != None && hs.Vote != prev.Vote {
		rr.fail("node %x voted twice in term %d: %x then %x", id, hs.Term, prev.Vote, hs.Vote)
	}
	rr.lastHS[id] = hs
}

// check verifies election safety, and that committed entries are never
// lost or changed, on every node.
func (rr *randomRun) check() {
	for _, id := range rr.nw.ids {
		n := rr.nw.nodes[id]
		if n.down {
			continue
		}
		r := n.rn.raft
		if r.state == StateLeader {
			if l, ok := rr.leaders[r.term]; ok && l != id {
				rr.fail("election safety: %x and %x both lead term %d", l, id, r.term)
			}
			rr.leaders[r.term] = id
		}
		// Committed entries still in this node's log must be the ones committed.
		from := max(r.log.firstIndex(), r.log.committed-3)
		ents, err := r.log.slice(from, r.log.committed+1, 0)
		if err != nil {
			rr.fail("node %x cannot read its committed entries: %v", id, err)
		}
		for _, e := range ents {
			k := entryKey(e)
			if prev, ok := rr.committed[e.Index]; ok && prev != k {
				rr.fail("committed entry %d changed on %x: %s, was %s", e.Index, id, k, prev)
			}
			rr.committed[e.Index] = k
		}
	}
}

// checkLiveness heals everything and requires a new proposal to be applied
// by every live member within a bound of ticks.
func (rr *randomRun) checkLiveness() {
	nw := rr.nw
	nw.heal()
	for _, id := range nw.ids {
		if nw.nodes[id].down && !rr.retired[id] {
			rr.restart(id)
		}
	}
	rr.log("liveness: healed and restarted")
	data := fmt.Sprintf("s%d-final", rr.seed)
	proposed := false
	for tick := 0; tick < 400; tick++ {
		for _, id := range rr.live() {
			nw.nodes[id].rn.Tick()
		}
		for round := 0; round < 20; round++ {
			for _, id := range rr.live() {
				rr.processNode(id)
			}
			msgs := nw.queue
			nw.queue = nil
			for _, m := range msgs {
				if to := nw.nodes[m.To]; to != nil && !to.down {
					rr.log("%s", DescribeMessage(m))
					_ = to.rn.Step(m)
				}
			}
			rr.check()
		}
		if !proposed {
			for _, id := range rr.live() {
				if nw.nodes[id].rn.raft.state == StateLeader && nw.nodes[id].rn.Propose([]byte(data)) == nil {
					proposed = true
					break
				}
			}
			continue
		}
		done := true
		for _, id := range rr.live() {
			n := nw.nodes[id]
			if rr.retired[id] {
				continue // removed: it may never learn so, and that is fine
			}
			if !slices.Contains(n.appliedData(), data) {
				done = false
			}
		}
		if done {
			return
		}
	}
	var states []string
	for _, id := range rr.live() {
		r := nw.nodes[id].rn.raft
		states = append(states, fmt.Sprintf("%x: %s term %d lead %x %s members %v blocker %v", id, r.state, r.term, r.lead, r.log, r.membership(), r.campaignBlocker()))
		for pid, pr := range r.prs {
			if r.state == StateLeader {
				states = append(states, fmt.Sprintf("   progress %x: %s", pid, pr))
			}
		}
	}
	rr.fail("liveness: proposal %q not applied everywhere within 400 ticks (proposed=%v)\n%s", data, proposed, strings.Join(states, "\n"))
}
