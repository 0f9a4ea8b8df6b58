package rafttest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// Config describes a simulated cluster. The zero value (with a Seed) is a
// 3-node cluster of KV state machines on a perfect network.
type Config struct {
	// Seed seeds the one random source everything random is drawn from:
	// the same Config replays the same run.
	Seed uint64
	// Voters is the number of founding voters, ids 1..Voters (default 3).
	Voters int
	// Learners is the number of founding learners, ids after the voters.
	Learners int
	// Election and Heartbeat are the nodes' timeouts in ticks (default 10
	// and 1).
	Election, Heartbeat int
	// StateMachine makes a node's state machine, at each start (default
	// NewKV).
	StateMachine func(id int64) StateMachine
	// Command makes the data of a random proposal (default KVCommand).
	Command func(r *rand.Rand) []byte
	// Options returns extra options for a node, at each start (for example
	// raft.WithoutPreVote()). The simulator already passes the peers,
	// Learners, Joining and a Seed drawn from its source.
	Options func(id int64) []raft.Option
	// Faults are the initial faults of every link.
	Faults Faults
	// Checks are called after every step, with read access to the cluster;
	// an error stops the run as a Violation of CheckUser.
	Checks []func(c *Cluster) error
	// TraceSize is the number of trace events kept (default 1<<15); older
	// ones are dropped (they still count in TraceHash).
	TraceSize int
	// LivenessTicks bounds, in ticks, how long CheckLiveness waits for
	// every live member to apply a new proposal after the faults end
	// (default 40 election timeouts).
	LivenessTicks int
	// MinVoters and MaxVoters bound the voters the random driver's
	// configuration changes aim for (default 3 and 7).
	MinVoters, MaxVoters int
	// SteadyClocks makes the random driver tick every running node
	// together: it never lets clocks drift apart (some nodes ticking while
	// others do not). Reads served under a lease (raft.LeaseReads) rest on
	// clocks that run at the same rate: give SteadyClocks with them.
	SteadyClocks bool
	// UnsafeLocalReads is for tests of checkers only: a read (Read, and
	// the random driver's) is served from the node's local state at once,
	// without ReadIndex, so that the history is not linearizable. Never
	// serve reads this way.
	UnsafeLocalReads bool
	// SendEarly makes every node's loop send the messages that
	// Ready.SplitMessages allows before persisting the Ready (a leader's
	// appends), the rest after; a crash in the middle of persisting
	// (CrashMidPersist, and the random driver's) strikes after they left.
	SendEarly bool
}

func (cfg *Config) fill() {
	if cfg.Voters <= 0 {
		cfg.Voters = 3
	}
	if cfg.Election <= 0 {
		cfg.Election = 10
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 1
	}
	if cfg.StateMachine == nil {
		cfg.StateMachine = NewKV
	}
	if cfg.Command == nil {
		cfg.Command = KVCommand
	}
	if cfg.TraceSize <= 0 {
		cfg.TraceSize = 1 << 15
	}
	if cfg.LivenessTicks <= 0 {
		cfg.LivenessTicks = 40 * cfg.Election
	}
	if cfg.MinVoters <= 0 {
		cfg.MinVoters = 3
	}
	if cfg.MaxVoters <= 0 {
		cfg.MaxVoters = 7
	}
}

// Cluster is a simulated cluster of RawNodes. It plays the application of
// every node (the Ready loop, the disk, the state machine), the network
// and the clock, all in one goroutine, and checks Raft's safety properties
// as it goes. Every method is deterministic given the Config. After a
// violation, Err returns it and every operation does nothing.
//
// A Cluster is not safe for concurrent use.
type Cluster struct {
	cfg   Config
	rng   *rand.Rand
	nodes map[int64]*Node
	ids   []int64 // every node ever started, sorted
	net   *Network
	trace traceLog
	chk   *checker
	step  int
	err   error

	nextID  int64 // the next fresh node id
	nextRID int64 // the next request id

	// The membership after the latest config entry applied by any node,
	// and that entry's index.
	voters, learners []int64
	confIndex        int64
	removed          map[int64]bool

	// probe is the request id of the liveness probe, once proposed.
	probe int64

	// doing says what the simulator is doing, for a panic's report.
	doing     string
	doingNode int64

	scratch []uint64
	stats   Stats

	// The client history (history.go): every operation, in call order;
	// the writes not yet returned, by request id; the time of the last
	// event; the last unique value written and the last read number.
	ops    []Op
	writes map[int64]pendingWrite
	// firstIndex maps a request id to the index of the first entry that
	// carries it in the committed log: a later one is a duplicate.
	firstIndex  map[int64]int64
	clock       int64
	values      int64
	nextRead    int64
	userCommand bool // Config.Command was given: proposals use it

	// The transferee of the latest leadership transfer and the term it
	// was asked in, until some node leads a later term.
	transferee, transferTerm int64

	// Deliberately broken application rules, for the tests that prove the
	// checkers can fail.
	breakRules brokenRules
}

// brokenRules switch on application bugs, in tests only.
type brokenRules struct {
	forgetVote     bool // a restart passes the HardState without its vote
	wipeDisk       bool // a restart starts from an empty disk
	skipEntries    bool // entries are not persisted (but acknowledged)
	corruptApply   int64
	ignoreConfig   bool // config entries are applied without AddNode/RemoveNode
	reuseSnapshots bool // compaction records the term of the wrong entry
}

// Stats counts what happened in a run, to show what it covered.
type Stats struct {
	Steps, Ticks     int
	TicksLed         int   // ticks during which some running node led
	Committed        int64 // the highest index known committed
	Leaders          int   // terms that had a leader
	Proposals        int   // proposals made
	ProposalsRefused int   // proposals refused (no leader, dropped)
	ConfigsApplied   int   // config entries applied (counted once each)
	NodesAdded       int   // nodes started by a config entry
	NodesRemoved     int   // nodes removed by a config entry
	Crashes          int   // crashes, with those in the middle of persisting
	MidPersist       int   // crashes in the middle of persisting a Ready
	Restarts         int
	Compactions      int
	Restores         int // snapshots restored from a leader
	Delivered        int // messages delivered
	Lost             int // messages lost (drop, cut link, recipient down)
	Duplicates       int // entries skipped as a request applied before
	Writes           int // client writes recorded (KV proposals accepted)
	WritesDone       int // writes that returned (applied by their node)
	Reads            int // client reads asked
	ReadsRefused     int // reads ReadIndex refused (no leader known)
	ReadsServed      int // reads that returned a value
	Transfers        int // leadership transfers a leader accepted
	TransfersRefused int // leadership transfers refused
	TransfersDone    int // transfers whose transferee became leader
	// LivenessTicks is the number of ticks CheckLiveness took.
	LivenessTicks int
}

// Stats returns what happened so far.
func (c *Cluster) Stats() Stats {
	s := c.stats
	s.Steps = c.step
	s.Committed = c.chk.commitIndex
	s.Leaders = len(c.chk.leaders)
	return s
}

// New starts a cluster: Voters voters and Learners learners, all with an
// empty log, none of them leader yet.
func New(cfg Config) *Cluster {
	userCommand := cfg.Command != nil
	cfg.fill()
	c := &Cluster{
		cfg:         cfg,
		rng:         rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6a09e667f3bcc908)),
		nodes:       map[int64]*Node{},
		trace:       newTraceLog(cfg.TraceSize),
		chk:         newChecker(),
		removed:     map[int64]bool{},
		writes:      map[int64]pendingWrite{},
		firstIndex:  map[int64]int64{},
		userCommand: userCommand,
	}
	c.net = newNetwork(c, cfg.Faults)
	for i := 1; i <= cfg.Voters; i++ {
		c.voters = append(c.voters, int64(i))
	}
	for i := 1; i <= cfg.Learners; i++ {
		c.learners = append(c.learners, int64(cfg.Voters+i))
	}
	c.nextID = int64(cfg.Voters + cfg.Learners + 1)
	c.logf(0, "start seed=%d voters=%x learners=%x", cfg.Seed, c.voters, c.learners)
	defer c.catch()
	for _, id := range append(slices.Clone(c.voters), c.learners...) {
		c.start(id, c.voters, c.learners, 0)
	}
	return c
}

// start starts a fresh node with an empty disk.
func (c *Cluster) start(id int64, voters, learners []int64, join int64) *Node {
	n := &Node{c: c, id: id, peers: slices.Clone(voters), learners: slices.Clone(learners), join: join}
	opts := []raft.Option{raft.Seed(c.rng.Uint64())}
	if len(learners) > 0 {
		opts = append(opts, raft.Learners(learners...))
	}
	if join > 0 {
		opts = append(opts, raft.Joining(join))
	}
	if c.cfg.Options != nil {
		opts = append(opts, c.cfg.Options(id)...)
	}
	c.doing, c.doingNode = "NewRawNode", id
	n.rn = raft.NewRawNode(id, voters, c.cfg.Election, c.cfg.Heartbeat, opts...)
	n.up, n.inc = true, 1
	n.sm = c.cfg.StateMachine(id)
	c.nodes[id] = n
	c.ids = append(c.ids, id)
	slices.Sort(c.ids)
	if join > 0 {
		c.stats.NodesAdded++
		c.logf(id, "start, joining at %d with voters %x learners %x", join, voters, learners)
	}
	return n
}

// Seed returns the seed of the run.
func (c *Cluster) Seed() uint64 { return c.cfg.Seed }

// Rand returns the cluster's random source; drawing from it keeps a run
// deterministic only if the draws are.
func (c *Cluster) Rand() *rand.Rand { return c.rng }

// Network returns the cluster's network.
func (c *Cluster) Network() *Network { return c.net }

// Err returns the first violation found (a *Violation), or nil.
func (c *Cluster) Err() error { return c.err }

// Steps returns the number of steps taken.
func (c *Cluster) Steps() int { return c.step }

// Node returns the node with id, or nil if it was never started.
func (c *Cluster) Node(id int64) *Node { return c.nodes[id] }

// IDs returns the ids of every node ever started, sorted.
func (c *Cluster) IDs() []int64 { return slices.Clone(c.ids) }

// Running returns the ids of the nodes that run, sorted.
func (c *Cluster) Running() []int64 {
	var out []int64
	for _, id := range c.ids {
		if c.nodes[id].up {
			out = append(out, id)
		}
	}
	return out
}

// Members returns the voters and learners after the latest config entry
// applied by any node (the founding members before the first).
func (c *Cluster) Members() (voters, learners []int64) {
	return slices.Clone(c.voters), slices.Clone(c.learners)
}

func (c *Cluster) isMember(id int64) bool {
	return slices.Contains(c.voters, id) || slices.Contains(c.learners, id)
}

// Leader returns the running node that reports itself leader in the
// highest term, or 0.
func (c *Cluster) Leader() int64 {
	var lead, term int64
	for _, id := range c.ids {
		if n := c.nodes[id]; n.up {
			if st := n.rn.Status(); st.RaftState == raft.StateLeader && st.Term > term {
				lead, term = id, st.Term
			}
		}
	}
	return lead
}

// Trace returns the last n events of the trace (every event kept when
// n <= 0), oldest first, one line each.
func (c *Cluster) Trace(n int) []string { return c.trace.lines(n) }

// TraceHash returns a hash of every event so far: two runs of one Config
// have the same.
func (c *Cluster) TraceHash() uint64 { return c.trace.hash }

// Log adds a line to the trace.
func (c *Cluster) Log(format string, args ...any) { c.logf(0, format, args...) }

func (c *Cluster) logf(node int64, format string, args ...any) {
	c.trace.add(event{step: c.step, kind: evText, node: node, text: fmt.Sprintf(format, args...)})
}

// fail records f as the run's violation, unless one was found before.
func (c *Cluster) fail(f *finding) bool {
	if f == nil {
		return false
	}
	if c.err == nil {
		c.logf(0, "VIOLATION of %s: %s", f.checker, f.detail)
		c.err = &Violation{Checker: f.checker, Seed: c.cfg.Seed, Step: c.step, Detail: f.detail, Trace: c.trace.lines(TraceTail)}
	}
	return true
}

// catch turns a panic into a violation; deferred by every operation.
func (c *Cluster) catch() {
	r := recover()
	if r == nil {
		return
	}
	stack := strings.Split(string(debug.Stack()), "\n")
	if len(stack) > 40 {
		stack = stack[:40]
	}
	c.fail(found(CheckPanic, "%v (while %s on node %x)\n%s", r, c.doing, c.doingNode, strings.Join(stack, "\n")))
}

// begin starts a step; it returns false after a violation.
func (c *Cluster) begin() bool {
	if c.err != nil {
		return false
	}
	c.step++
	return true
}

// end finishes a step with the user's checks.
func (c *Cluster) end() {
	if c.err != nil {
		return
	}
	for _, check := range c.cfg.Checks {
		c.doing, c.doingNode = "a user check", 0
		if err := check(c); err != nil {
			c.fail(found(CheckUser, "%v", err))
			return
		}
	}
}

// op runs f as one step.
func (c *Cluster) op(f func()) {
	if !c.begin() {
		return
	}
	defer c.catch()
	f()
	c.end()
}

func (c *Cluster) running(id int64) (*Node, error) {
	n := c.nodes[id]
	switch {
	case n == nil:
		return nil, fmt.Errorf("rafttest: no node %x", id)
	case !n.up:
		return nil, fmt.Errorf("rafttest: node %x is down", id)
	}
	return n, nil
}

var errViolated = errors.New("rafttest: the run stopped at a violation")

// Tick advances the clock of every running node by one tick.
func (c *Cluster) Tick() { c.op(c.tick) }

func (c *Cluster) tick() {
	c.doing = "Tick"
	c.stats.Ticks++
	if c.knownLeader() != nil {
		c.stats.TicksLed++
	}
	for _, id := range c.ids {
		if n := c.nodes[id]; n.up {
			c.doingNode = id
			n.rn.Tick()
		}
	}
}

// TickNode advances the clock of one running node by one tick.
func (c *Cluster) TickNode(id int64) {
	c.op(func() {
		if n, err := c.running(id); err == nil {
			c.doing, c.doingNode = "Tick", id
			n.rn.Tick()
		}
	})
}

// Process runs one turn of a node's Ready loop, if it runs and has a
// Ready: persist, apply, send. It reports whether there was a Ready.
func (c *Cluster) Process(id int64) bool {
	var did bool
	c.op(func() {
		if n, err := c.running(id); err == nil {
			did = c.process(n)
		}
	})
	return did
}

// ProcessAll runs one turn of the Ready loop on every running node, and
// returns how many had a Ready.
func (c *Cluster) ProcessAll() int {
	var k int
	c.op(func() { k = c.processAll() })
	return k
}

func (c *Cluster) processAll() int {
	k := 0
	for i := 0; i < len(c.ids) && c.err == nil; i++ {
		if c.process(c.nodes[c.ids[i]]) {
			k++
		}
	}
	return k
}

// Deliver runs one delivery round of the network (see Network.Deliver).
func (c *Cluster) Deliver() int { return c.net.Deliver() }

// Stabilize runs Ready loops and delivers messages until no node has a
// Ready and no message is in flight, or maxRounds rounds have passed; it
// reports whether the cluster settled. Faults of the network apply.
func (c *Cluster) Stabilize(maxRounds int) bool {
	settled := false
	c.op(func() { settled = c.settle(maxRounds) })
	return settled
}

func (c *Cluster) settle(maxRounds int) bool {
	for range maxRounds {
		moved := c.processAll() > 0
		if c.net.deliverRound() > 0 {
			moved = true
		}
		if c.err != nil {
			return false
		}
		if !moved && len(c.net.inflight) == 0 {
			return true
		}
	}
	return false
}

// Propose proposes cmd at a running node, tagged with a fresh request id
// (the state machine sees cmd alone), and returns RawNode.Propose's error.
func (c *Cluster) Propose(id int64, cmd []byte) error {
	err := errViolated
	c.op(func() { err = c.propose(id, cmd) })
	return err
}

func (c *Cluster) propose(id int64, cmd []byte) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	c.nextRID++
	err = c.proposeTagged(n, c.nextRID, cmd)
	c.stats.Proposals++
	if err != nil {
		c.stats.ProposalsRefused++
	}
	c.logf(id, "propose %q: %v", tagCommand(c.nextRID, cmd), err)
	return err
}

// AddData returns the data of a config entry that adds id as a voter. The
// simulator's application applies "add <id>" with AddNode, "learner <id>"
// with AddLearner, "promote <id>" with PromoteLearner, "remove <id>" with
// RemoveNode, and rejects anything else.
func AddData(id int64) []byte { return fmt.Appendf(nil, "add %d", id) }

// AddLearnerData returns the data of a config entry that adds id as a
// learner (see AddData).
func AddLearnerData(id int64) []byte { return fmt.Appendf(nil, "learner %d", id) }

// PromoteData returns the data of a config entry that makes learner id a
// voter (see AddData).
func PromoteData(id int64) []byte { return fmt.Appendf(nil, "promote %d", id) }

// RemoveData returns the data of a config entry that removes id, voter or
// learner (see AddData).
func RemoveData(id int64) []byte { return fmt.Appendf(nil, "remove %d", id) }

func parseConfig(data []byte) (op string, id int64, ok bool) {
	op, arg, _ := strings.Cut(string(data), " ")
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return "", 0, false
	}
	switch op {
	case "add", "learner", "promote", "remove":
		return op, id, true
	}
	return "", 0, false
}

// ProposeConfig proposes a config entry (AddData, AddLearnerData,
// PromoteData, RemoveData, or anything else to see it rejected) at a
// running node. An "add" must name an id never used before.
func (c *Cluster) ProposeConfig(id int64, data []byte) error {
	err := errViolated
	c.op(func() { err = c.proposeConfig(id, data) })
	return err
}

func (c *Cluster) proposeConfig(id int64, data []byte) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	if op, x, ok := parseConfig(data); ok && (op == "add" || op == "learner") && x >= c.nextID {
		c.nextID = x + 1
	}
	c.doing, c.doingNode = "ProposeConfig", id
	err = n.rn.ProposeConfig(data)
	c.logf(id, "propose config %q: %v", data, err)
	return err
}

// NextID returns an id never used before, for AddData.
func (c *Cluster) NextID() int64 {
	c.nextID++
	return c.nextID - 1
}

// Campaign makes a running node campaign (RawNode.Campaign).
func (c *Cluster) Campaign(id int64) error {
	err := errViolated
	c.op(func() { err = c.campaign(id) })
	return err
}

func (c *Cluster) campaign(id int64) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	c.doing, c.doingNode = "Campaign", id
	err = n.rn.Campaign()
	c.logf(id, "campaign: %v", err)
	return err
}

// Crash stops a running node: it loses everything not on its disk.
func (c *Cluster) Crash(id int64) {
	c.op(func() {
		if n, err := c.running(id); err == nil {
			c.crash(n, -1)
		}
	})
}

// CrashMidPersist crashes a running node while it persists its next Ready,
// if it has one: only the first writes of that Ready reach the disk, in
// order: the snapshot (one write, if the Ready has one), each entry (one
// write each), the HardState (one write, if not empty). Nothing of the
// Ready is applied or sent, except, with Config.SendEarly, the messages
// sent before persisting.
func (c *Cluster) CrashMidPersist(id int64, writes int) {
	c.op(func() {
		if n, err := c.running(id); err == nil {
			c.crash(n, max(writes, 0))
		}
	})
}

// crash crashes n; with writes >= 0 (or randomWrites) and a Ready
// waiting, in the middle of persisting it.
func (c *Cluster) crash(n *Node, writes int) {
	c.doing, c.doingNode = "crash", n.id
	c.stats.Crashes++
	if writes != -1 && n.rn.HasReady() {
		rd := n.rn.Ready()
		if writes == randomWrites {
			writes = c.rng.IntN(persistWrites(rd) + 1)
		}
		c.trace.add(event{step: c.step, kind: evReady, node: n.id, rd: summarize(rd)})
		c.observe(n, rd)
		early, _ := c.splitMessages(rd)
		c.send(n, early)
		c.persist(n, rd, writes)
		c.stats.MidPersist++
		c.logf(n.id, "crash while persisting: %d of %d writes reached the disk", min(writes, persistWrites(rd)), persistWrites(rd))
	} else {
		c.logf(n.id, "crash")
	}
	n.up, n.rn, n.sm, n.reads = false, nil, nil, nil
}

func persistWrites(rd raft.Ready) int {
	k := len(rd.Entries)
	if !raft.IsEmptySnap(rd.Snapshot) {
		k++
	}
	if !raft.IsEmptyHardState(rd.State) {
		k++
	}
	return k
}

// Restart restarts a crashed node from its disk, through RestartRawNode.
// A removed node is never restarted.
func (c *Cluster) Restart(id int64) error {
	err := errViolated
	c.op(func() { err = c.restart(id) })
	return err
}

func (c *Cluster) restart(id int64) error {
	n := c.nodes[id]
	switch {
	case n == nil:
		return fmt.Errorf("rafttest: no node %x", id)
	case n.up:
		return fmt.Errorf("rafttest: node %x runs", id)
	case c.removed[id]:
		return fmt.Errorf("rafttest: node %x was removed: it is not restarted", id)
	}
	d := &n.disk
	hs, ents := d.hs, slices.Clone(d.ents)
	if c.breakRules.forgetVote {
		hs.Vote = raft.None
	}
	if c.breakRules.wipeDisk {
		*d = disk{}
		n.maxHS = raftpb.HardState{}
		hs, ents = raftpb.HardState{}, nil
	}
	opts := []raft.Option{raft.Seed(c.rng.Uint64())}
	peers := n.peers
	var snap *raftpb.Snapshot
	if !raft.IsEmptySnap(d.snap) {
		s := d.snap
		snap, peers = &s, s.Nodes
		if len(s.Learners) > 0 {
			opts = append(opts, raft.Learners(s.Learners...))
		}
	} else {
		if len(n.learners) > 0 {
			opts = append(opts, raft.Learners(n.learners...))
		}
		if n.join > 0 {
			opts = append(opts, raft.Joining(n.join))
		}
	}
	if c.cfg.Options != nil {
		opts = append(opts, c.cfg.Options(id)...)
	}
	c.doing, c.doingNode = "RestartRawNode", id
	c.logf(id, "restart from disk: snapshot %d/%d, HardState %d/%x/%d, entries %d..%d", d.snap.Term, d.snap.Index,
		hs.Term, hs.Vote, hs.Commit, d.snap.Index+1, d.lastIndex())
	n.rn = raft.RestartRawNode(id, peers, c.cfg.Election, c.cfg.Heartbeat, snap, hs, ents, opts...)
	n.up = true
	n.inc++
	c.stats.Restarts++
	n.probeApplied = false
	n.sm = c.cfg.StateMachine(id)
	n.applied, n.appliedTerm, n.appliedChain = 0, 0, 0
	if snap != nil {
		c.doing = "StateMachine.Restore"
		if err := n.sm.Restore(snap.Data); err != nil {
			c.fail(found(CheckStateMachine, "node %x cannot restore the snapshot on its disk: %v", id, err))
			return nil
		}
		n.applied, n.appliedTerm, n.appliedChain = snap.Index, snap.Term, d.snapChain
		if c.fail(c.chk.restored(id, snap.Index, d.snapChain, digestOf(n.sm))) {
			return nil
		}
	}
	st := n.rn.Status()
	n.term, n.soft = st.Term, st.SoftState
	return nil
}

func digestOf(sm StateMachine) uint64 {
	if d, ok := sm.(Digester); ok {
		return mix(d.Digest(), 0x5bd1e995) | 1
	}
	return 0
}

// Compact compacts a running node's log at its applied index, as an
// application does: Compact(index, voters, its state machine's snapshot),
// then it persists the snapshot and drops the entries up to index. The
// library's refusal is returned as is.
func (c *Cluster) Compact(id int64) error {
	err := errViolated
	c.op(func() { err = c.compact(id) })
	return err
}

func (c *Cluster) compact(id int64) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	d := &n.disk
	idx := n.applied
	if idx <= d.snap.Index {
		return fmt.Errorf("rafttest: node %x applied nothing beyond its snapshot (%d)", id, d.snap.Index)
	}
	c.doing, c.doingNode = "Compact", id
	st := n.rn.Status()
	data := n.sm.Snapshot()
	if err := n.rn.Compact(idx, st.Voters, data); err != nil {
		c.logf(id, "compact at %d: %v", idx, err)
		return err
	}
	chain := d.chainAt(idx)
	if chain != n.appliedChain {
		c.fail(found(CheckPersistence, "node %x compacts at %d, but the log on its disk differs from the entries it applied", id, idx))
		return nil
	}
	term := n.appliedTerm
	if c.breakRules.reuseSnapshots {
		term = d.snap.Term
	}
	drop := idx - d.snap.Index // entries up to idx
	d.ents = append([]raftpb.Entry(nil), d.ents[drop:]...)
	d.chains = append([]uint64(nil), d.chains[drop:]...)
	d.snap = raftpb.Snapshot{Data: data, Nodes: st.Voters, Learners: st.Learners, Index: idx, Term: term}
	d.snapChain = chain
	c.stats.Compactions++
	c.logf(id, "compact at %d/%d, voters %x learners %x", term, idx, st.Voters, st.Learners)
	c.fail(c.chk.snapshotData(id, idx, hashBytes(fnvOffset, data)))
	return nil
}
