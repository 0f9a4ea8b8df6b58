package raftstore

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// The crash test runs a child process (this test binary, re-executed) that
// writes a generated stream of Readys into two groups of one DB, and
// reports on stdout each write it begins and each that returned. The
// parent kills it with SIGKILL at a random moment, reopens the DB and
// checks that each group holds exactly what the acknowledged writes made
// of it, with or without the one write in flight, and that its log is one
// RestartNode accepts.
var (
	crashIterations = flag.Int("crash.iterations", 100, "kills of the crash test")
	crashSoak       = flag.Duration("crash.soak", 0, "run the crash test for this long instead")
	crashSeed       = flag.Uint64("crash.seed", 0, "seed of the crash test (0: from the clock)")
)

const (
	crashChildEnv = "RAFTSTORE_CRASH_CHILD" // dir,seed
	crashGroups   = 2
)

// crashOp is one write of the child: Bootstrap, Compact, or a Save of a
// snapshot, entries Lo..Hi of term T and a HardState; Applied, when not 0,
// is set just before it and written with it.
type crashOp struct {
	Boot         bool              `json:",omitempty"`
	SnapI, SnapT int64             `json:",omitempty"`
	Lo, Hi, T    int64             `json:",omitempty"`
	HS           *raftpb.HardState `json:",omitempty"`
	Compact      int64             `json:",omitempty"`
	Applied      int64             `json:",omitempty"`
}

// entData is the data of entry i of term t in group g: its name, padded to
// a size that varies with it.
func entData(g uint64, i, t int64) []byte {
	s := fmt.Sprintf("%d/%d/%d;", g, i, t)
	return []byte(s + strings.Repeat("x", int((i*7+t*13)%300)))
}

// crashModel is what a group holds.
type crashModel struct {
	Boot         bool
	SnapI, SnapT int64
	Terms        []int64 // terms of the entries after the snapshot
	HS           raftpb.HardState
	Applied      int64
}

// String shows the terms as runs: 2x11 3x4 means 11 entries of term 2,
// then 4 of term 3.
func (m crashModel) String() string {
	var runs []string
	for k := 0; k < len(m.Terms); {
		n := 1
		for k+n < len(m.Terms) && m.Terms[k+n] == m.Terms[k] {
			n++
		}
		runs = append(runs, fmt.Sprintf("%dx%d", m.Terms[k], n))
		k += n
	}
	return fmt.Sprintf("{boot %v, snapshot %d/%d, entries (%d, %d] terms [%s], HardState %+v, applied %d}",
		m.Boot, m.SnapT, m.SnapI, m.SnapI, m.last(), strings.Join(runs, " "), m.HS, m.Applied)
}

func (m crashModel) last() int64 { return m.SnapI + int64(len(m.Terms)) }

func (m crashModel) term(i int64) int64 {
	if i == m.SnapI {
		return m.SnapT
	}
	return m.Terms[i-m.SnapI-1]
}

// apply returns the model after op.
func (m crashModel) apply(op crashOp) crashModel {
	m.Terms = append([]int64(nil), m.Terms...)
	if op.Applied != 0 {
		m.Applied = op.Applied
	}
	if op.Boot {
		m.Boot = true
	}
	if op.Compact != 0 {
		m.SnapT = m.term(op.Compact)
		m.Terms = m.Terms[op.Compact-m.SnapI:]
		m.SnapI = op.Compact
	}
	if op.SnapI != 0 {
		m.SnapI, m.SnapT, m.Terms = op.SnapI, op.SnapT, nil
	}
	if op.Hi >= op.Lo && op.Lo != 0 {
		m.Terms = m.Terms[:op.Lo-m.SnapI-1]
		for i := op.Lo; i <= op.Hi; i++ {
			m.Terms = append(m.Terms, op.T)
		}
	}
	if op.HS != nil {
		m.HS = *op.HS
	}
	if len(m.Terms) == 0 {
		m.Terms = nil
	}
	return m
}

// synced reports whether Save waits for a sync to write op on m: all
// writes but a Save that only raises the commit index.
func (op crashOp) synced(m crashModel) bool {
	return op.Boot || op.Compact != 0 || op.SnapI != 0 || op.Lo != 0 ||
		op.HS == nil || op.HS.Term != m.HS.Term || op.HS.Vote != m.HS.Vote
}

// holdsUnsyncedPrefix reports whether have is durable after the first k
// of the unsynced writes, for some k.
func holdsUnsyncedPrefix(have, durable crashModel, unsynced []crashOp) bool {
	m := durable
	for _, op := range unsynced {
		if reflect.DeepEqual(have, m) {
			return true
		}
		m = m.apply(op)
	}
	return reflect.DeepEqual(have, m)
}

// TestCrashChild is the child's body; it does nothing in a normal run.
func TestCrashChild(t *testing.T) {
	env := os.Getenv(crashChildEnv)
	if env == "" {
		t.Skip("the crash test's child")
	}
	dir, seedText, _ := strings.Cut(env, ",")
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	db, err := Open(dir, nil)
	if err != nil {
		fail(err)
	}
	var out sync.Mutex
	emit := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...) // one write(2) a line
	}
	var wg sync.WaitGroup
	for g := uint64(1); g <= crashGroups; g++ {
		s, st, err := db.Group(g)
		if err != nil {
			fail(err)
		}
		gen := newCrashGen(s, st, rand.New(rand.NewPCG(seed, g)))
		wg.Go(func() {
			// The parent kills the child long before this ends.
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
				op := gen.next()
				b, _ := json.Marshal(op)
				emit("B %d %s", g, b)
				if err := gen.do(op); err != nil {
					fail(fmt.Errorf("group %d: %v: %w", g, op, err))
				}
				emit("A %d", g)
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// crashGen generates a group's writes: appends, conflicting suffixes
// replaced in a new term, HardStates, snapshots from a leader, compactions
// and applied indexes.
type crashGen struct {
	s       *Store
	g       uint64
	r       *rand.Rand
	boot    bool
	m       crashModel // what the store holds
	term    int64
	vote    int64
	staged  int64
	pending int64 // applied index to write with the next op
}

func newCrashGen(s *Store, st State, r *rand.Rand) *crashGen {
	gen := &crashGen{s: s, g: s.id, r: r, boot: st.Bootstrapped}
	gen.m.SnapI, gen.m.HS, gen.m.Applied = s.snap.Index, st.HardState, st.Applied
	gen.m.SnapT = s.snap.Term
	for i := s.FirstIndex(); i <= s.LastIndex(); i++ {
		t, err := s.Term(i)
		if err != nil {
			panic(err)
		}
		gen.m.Terms = append(gen.m.Terms, t)
	}
	gen.term, gen.vote = max(st.HardState.Term, 1), st.HardState.Vote
	gen.staged = st.Applied
	return gen
}

func (gen *crashGen) next() crashOp {
	m, r := gen.m, gen.r
	op := crashOp{Applied: gen.pending}
	gen.pending = 0
	commit := max(m.HS.Commit, m.SnapI)
	last := m.last()
	switch p := r.IntN(100); {
	case !gen.boot:
		op.Boot = true
	case p < 55: // append, and commit some
		n := 1 + r.IntN(16)
		if r.IntN(10) == 0 {
			n = 64 + r.IntN(200)
		}
		op.Lo, op.Hi, op.T = last+1, last+int64(n), gen.term
		op.HS = &raftpb.HardState{Term: gen.term, Vote: gen.vote, Commit: commit + r.Int64N(op.Hi-commit+1)}
	case p < 65: // a new term replaces an uncommitted suffix
		gen.term++
		gen.vote = r.Int64N(4)
		from := commit + 1 + r.Int64N(last-commit+1)
		op.Lo, op.Hi, op.T = from, from+r.Int64N(4), gen.term
		op.HS = &raftpb.HardState{Term: gen.term, Vote: gen.vote, Commit: commit}
	case p < 73: // only a HardState
		op.HS = &raftpb.HardState{Term: gen.term, Vote: gen.vote, Commit: commit + r.Int64N(last-commit+1)}
	case p < 78: // a snapshot from the leader, beyond the log
		op.SnapI, op.SnapT = last+1+r.Int64N(30), gen.term
		if n := r.Int64N(4); n > 0 {
			op.Lo, op.Hi, op.T = op.SnapI+1, op.SnapI+n, gen.term
		}
		op.HS = &raftpb.HardState{Term: gen.term, Vote: gen.vote, Commit: op.SnapI}
	case p < 88 && commit > m.SnapI: // compaction
		op.Compact = m.SnapI + 1 + r.Int64N(commit-m.SnapI)
	case p < 95: // an applied index, written with the next op
		if a := max(m.Applied, gen.staged); a < commit {
			gen.staged = a + 1 + r.Int64N(commit-a)
			gen.pending = gen.staged
		}
		return gen.next()
	default:
		op.Lo, op.Hi, op.T = last+1, last+1, gen.term
	}
	if op.HS != nil && *op.HS == m.HS {
		op.HS = nil
	}
	if !op.Boot && op.SnapI == 0 && op.Lo == 0 && op.HS == nil && op.Compact == 0 {
		// A Save with nothing in it writes nothing, not even the applied
		// index: append an entry instead.
		op.Lo, op.Hi, op.T = last+1, last+1, gen.term
	}
	return op
}

// do performs op on the store and advances the model.
func (gen *crashGen) do(op crashOp) error {
	s := gen.s
	if op.Applied != 0 {
		if err := s.SetApplied(op.Applied); err != nil {
			return err
		}
	}
	var err error
	switch {
	case op.Boot:
		err = s.Bootstrap([]int64{2, 3}, nil, 0)
		gen.boot = err == nil
	case op.Compact != 0:
		err = s.Compact(raftpb.Snapshot{Index: op.Compact, Nodes: []int64{1, 2, 3}})
	default:
		var rd raft.Ready
		if op.SnapI != 0 {
			rd.Snapshot = raftpb.Snapshot{Index: op.SnapI, Term: op.SnapT, Nodes: []int64{1, 2, 3}, Data: entData(gen.g, op.SnapI, op.SnapT)}
		}
		for i := op.Lo; op.Lo != 0 && i <= op.Hi; i++ {
			rd.Entries = append(rd.Entries, raftpb.Entry{Index: i, Term: op.T, Data: entData(gen.g, i, op.T)})
		}
		if op.HS != nil {
			rd.State = *op.HS
		}
		err = s.Save(rd)
	}
	if err == nil {
		gen.m = gen.m.apply(op)
	}
	return err
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash test seed %d (replay with -crash.seed %d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	models := make([]crashModel, crashGroups+1)
	start := time.Now()
	var acks, inflight, lost int
	iter := 0
	for ; ; iter++ {
		if *crashSoak > 0 {
			if time.Since(start) > *crashSoak {
				break
			}
		} else if iter >= *crashIterations {
			break
		}
		a, f, l := crashOnce(t, dir, seed, iter, r, models)
		acks, inflight, lost = acks+a, inflight+f, lost+l
		if t.Failed() {
			return
		}
	}
	t.Logf("%d kills in %v: %d writes acknowledged, %d found in flight after a kill, %d groups lost unsynced commit-only writes, seed %d",
		iter, time.Since(start).Round(time.Millisecond), acks, inflight, lost, seed)
}

// crashOnce runs the child once, kills it, and checks the DB against
// models, which it updates. It returns how many writes were acknowledged,
// how many groups held their write in flight, and how many lost unsynced
// writes.
func crashOnce(t *testing.T, dir string, seed uint64, iter int, r *rand.Rand, models []crashModel) (acks, inflightSeen, unsyncedLost int) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", crashChildEnv, dir, seed+uint64(iter)))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill after a random delay (often while the child opens the DB) or
	// after a random number of acknowledged writes.
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var got []string
	if r.IntN(2) == 0 {
		time.Sleep(time.Duration(r.Int64N(int64(60 * time.Millisecond))))
	} else {
		for n := r.IntN(300); n > 0; {
			l, ok := <-lines
			if !ok {
				break
			}
			got = append(got, l)
			if strings.HasPrefix(l, "A") {
				n--
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	for l := range lines {
		got = append(got, l)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("iteration %d (seed %d): the child was not killed: %v\n%s", iter, seed, err, stderr.String())
	}

	// Replay the acknowledged writes on the models. A Save that only
	// raises the commit index is not synced: the writes of a group since
	// its last synced one (unsynced[g], applied in order to durable[g])
	// may be lost, any suffix of them.
	inflight := make([]*crashOp, crashGroups+1)
	durable := slices.Clone(models)
	unsynced := make([][]crashOp, crashGroups+1)
	for _, l := range got {
		kind, rest, _ := strings.Cut(l, " ")
		gText, opText, _ := strings.Cut(rest, " ")
		g, _ := strconv.Atoi(gText)
		switch kind {
		case "B":
			var op crashOp
			if err := json.Unmarshal([]byte(opText), &op); err != nil {
				t.Fatalf("iteration %d: line %q: %v", iter, l, err)
			}
			inflight[g] = &op
		case "A":
			op := *inflight[g]
			if op.synced(models[g]) {
				durable[g], unsynced[g] = models[g].apply(op), nil
			} else {
				unsynced[g] = append(unsynced[g], op)
			}
			models[g] = models[g].apply(op)
			inflight[g] = nil
			acks++
		}
	}

	db, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("iteration %d (seed %d): reopen after the kill: %v", iter, seed, err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("iteration %d: close: %v", iter, err)
		}
	}()
	for g := uint64(1); g <= crashGroups; g++ {
		s, st, err := db.Group(g)
		if err != nil {
			t.Fatalf("iteration %d (seed %d): group %d: %v", iter, seed, g, err)
		}
		have := readModel(t, s, st)
		want := models[g]
		switch {
		case reflect.DeepEqual(have, want):
		case inflight[g] != nil && reflect.DeepEqual(have, want.apply(*inflight[g])):
			inflightSeen++
			models[g] = have
		case holdsUnsyncedPrefix(have, durable[g], unsynced[g]):
			unsyncedLost++
			models[g] = have
		default:
			t.Fatalf("iteration %d (seed %d): group %d holds\n%v\nbut the acknowledged writes made\n%v\n(write in flight: %+v)",
				iter, seed, g, have, want, inflight[g])
		}
		checkRestart(t, s, st)
	}
	return acks, inflightSeen, unsyncedLost
}

// readModel reads what s holds, checking every entry's data.
func readModel(t *testing.T, s *Store, st State) crashModel {
	m := crashModel{Boot: st.Bootstrapped, HS: st.HardState, Applied: st.Applied}
	if st.Snapshot != nil {
		m.SnapI, m.SnapT = st.Snapshot.Index, st.Snapshot.Term
		if want := entData(s.id, m.SnapI, m.SnapT); st.Snapshot.Data != nil && string(st.Snapshot.Data) != string(want) {
			t.Fatalf("group %d: snapshot data %q", s.id, st.Snapshot.Data)
		}
	}
	ents, err := s.Entries(s.FirstIndex(), s.LastIndex()+1, 0)
	if err != nil {
		t.Fatalf("group %d: %v", s.id, err)
	}
	for k, e := range ents {
		if e.Index != s.FirstIndex()+int64(k) || string(e.Data) != string(entData(s.id, e.Index, e.Term)) {
			t.Fatalf("group %d: entry %d of the log is %d/%d %q", s.id, k, e.Term, e.Index, e.Data)
		}
		m.Terms = append(m.Terms, e.Term)
	}
	if m.HS.Commit > m.last() {
		t.Fatalf("group %d: commit %d beyond the last index %d", s.id, m.HS.Commit, m.last())
	}
	return m
}

// checkRestart checks that a node restarts from what s holds: the library
// panics on a log that is not valid Raft.
func checkRestart(t *testing.T, s *Store, st State) {
	if !st.Bootstrapped {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("group %d: RestartNode refuses the stored state: %v", s.id, p)
		}
	}()
	rn := raft.RestartRawNode(1, st.Peers, 10, 1, st.Snapshot, st.HardState, nil,
		raft.WithStorage(s), raft.Learners(st.Learners...), raft.Joining(st.Joining))
	if c := rn.Status().Commit; c != max(st.HardState.Commit, s.FirstIndex()-1) {
		t.Fatalf("group %d: restarted with commit %d, want %d (HardState %d, snapshot %d)", s.id, c, max(st.HardState.Commit, s.FirstIndex()-1), st.HardState.Commit, s.FirstIndex()-1)
	}
}
