package raft

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
)

// Option adjusts how a node is started; pass options to StartNode,
// RestartNode or NewRawNode.
type Option func(*config)

// config is everything a node is built from.
type config struct {
	id            int64
	peers         []int64
	learners      []int64
	electionTick  int
	heartbeatTick int
	preVote       bool
	checkQuorum   bool
	readMode      readMode
	flowLimits
	seed      uint64
	seeded    bool
	logger    *slog.Logger
	joinIndex int64
	storage   Storage // nil: the node keeps its own MemoryStorage
	// appliedIndex: on restart, the application's state machine already
	// holds the log up to it (Applied).
	appliedIndex int64
}

// flowLimits are the flow-control settings, shared by config and raft.
type flowLimits struct {
	maxMsgBytes         int64
	maxInflight         int
	maxInflightBytes    int64
	maxUncommittedBytes int64
}

// Defaults for the flow-control options.
const (
	DefaultMaxMsgBytes = 1 << 20
	DefaultMaxInflight = 256
)

func newConfig(id int64, peers []int64, election, heartbeat int, opts []Option) config {
	c := config{
		id:            id,
		peers:         slices.Clone(peers),
		electionTick:  election,
		heartbeatTick: heartbeat,
		preVote:       true,
		checkQuorum:   true,
		flowLimits:    flowLimits{maxMsgBytes: DefaultMaxMsgBytes, maxInflight: DefaultMaxInflight},
	}
	for _, opt := range opts {
		opt(&c)
	}
	if !c.seeded {
		c.seed = rand.Uint64()
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	c.validate()
	return c
}

// validate panics on a programming error in how the node was started.
func (c *config) validate() {
	if c.id == None {
		panic("raft: node id 0 is reserved for None: give every node a non-zero id")
	}
	if c.heartbeatTick <= 0 {
		panic(fmt.Sprintf("raft: heartbeat must be at least 1 tick, got %d", c.heartbeatTick))
	}
	if c.heartbeatTick >= c.electionTick {
		panic(fmt.Sprintf("raft: heartbeat (%d ticks) must be less than election (%d ticks): about 10 heartbeats per election timeout is sensible; were the two arguments swapped?", c.heartbeatTick, c.electionTick))
	}
	for _, id := range append(slices.Clone(c.peers), c.learners...) {
		if id == None {
			panic("raft: peer id 0 is reserved for None: give every node a non-zero id")
		}
	}
	for _, id := range c.learners {
		if slices.Contains(c.peers, id) {
			panic(fmt.Sprintf("raft: node %x is listed both in peers and in Learners: a node is either a voter or a learner", id))
		}
	}
	if c.maxInflight <= 0 {
		panic(fmt.Sprintf("raft: MaxInflight must be positive, got %d", c.maxInflight))
	}
	if c.joinIndex < 0 {
		panic(fmt.Sprintf("raft: Joining index must not be negative, got %d", c.joinIndex))
	}
	if c.appliedIndex < 0 {
		panic(fmt.Sprintf("raft: Applied index must not be negative, got %d", c.appliedIndex))
	}
	if c.readMode == readLease && !c.checkQuorum {
		panic("raft: LeaseReads needs check-quorum, which WithoutCheckQuorum turned off: the lease rests on it")
	}
}

// initialMembership is ({id} ∪ peers) minus learners, with learners.
func (c *config) initialMembership() membership {
	voters := []int64{}
	if !slices.Contains(c.learners, c.id) {
		voters = append(voters, c.id)
	}
	voters = append(voters, c.peers...)
	return newMembership(voters, c.learners)
}

// Learners names the nodes that are learners: they receive the log but
// never vote, campaign or count toward a quorum. Include the node's own id
// for a node that joins as a learner.
func Learners(ids ...int64) Option {
	return func(c *config) { c.learners = append(c.learners, ids...) }
}

// Joining starts a node that is being added to a running cluster by the
// config entry at index: the membership calls for the entries up to index
// change nothing, and the node neither campaigns nor compacts before it has
// applied index. A node restarted from a snapshot is past these rules, and
// the option then has no effect.
func Joining(index int64) Option {
	return func(c *config) { c.joinIndex = index }
}

// WithoutPreVote turns pre-vote off: a node then campaigns without first
// asking whether it could win, and may disturb a healthy leader.
func WithoutPreVote() Option { return func(c *config) { c.preVote = false } }

// WithoutCheckQuorum turns check-quorum off: a leader then keeps leading
// even when it cannot hear from a quorum.
func WithoutCheckQuorum() Option { return func(c *config) { c.checkQuorum = false } }

// LeaseReads makes the leader answer ReadIndex at once, without a round
// of heartbeats, while it holds a lease: a quorum of voters answered its
// heartbeats within the last election timeout, less a tenth of it. Each
// of those voters ignores vote requests for an election timeout after
// such a heartbeat (check-quorum, which LeaseReads needs), and a node
// ignores them for its first election timeout after it starts (it may have
// answered such a heartbeat just before a crash), so no other leader can
// have been elected meanwhile, provided that no node's clock runs more
// than a tenth faster than another's over an election timeout: ticks must
// come at the same steady rate on every node, and every node must have
// the option. A leader without
// the lease falls back to a round of heartbeats. Without LeaseReads every
// read costs one round, shared by the reads that arrive together, and
// rests on no clock at all.
func LeaseReads() Option { return func(c *config) { c.readMode = readLease } }

// MaxMsgBytes caps the entry bytes of one append message (at least one
// entry is always sent). The default is DefaultMaxMsgBytes.
func MaxMsgBytes(n int64) Option { return func(c *config) { c.maxMsgBytes = n } }

// MaxInflight caps the appends in flight to one follower. The default is
// DefaultMaxInflight.
func MaxInflight(n int) Option { return func(c *config) { c.maxInflight = n } }

// MaxInflightBytes caps the entry bytes in flight to one follower; 0 (the
// default) means no cap beyond MaxInflight.
func MaxInflightBytes(n int64) Option { return func(c *config) { c.maxInflightBytes = n } }

// MaxUncommittedBytes caps the entry bytes a leader holds uncommitted;
// proposals beyond it get ErrProposalDropped. 0 (the default) means no cap.
func MaxUncommittedBytes(n int64) Option { return func(c *config) { c.maxUncommittedBytes = n } }

// Seed fixes the seed of the node's random source (election timeouts), for
// reproducible runs. By default the seed is random.
func Seed(seed uint64) Option {
	return func(c *config) { c.seed, c.seeded = seed, true }
}

// WithStorage makes the node read its persisted log from s, which the
// application fills: it persists each Ready into s before it takes the
// next Ready (on a RawNode, before Advance), and records there the
// snapshots it makes with Compact (when s is a CompactingStorage, Compact
// hands it the snapshot itself). The node then keeps in memory only what
// is not yet persisted. s is read from the node's goroutine while the
// application writes to it, so it must be safe for that. With WithStorage,
// RestartNode takes nil entries (the node reads them from s) and the
// snapshot s holds. By default the node keeps the log in memory, in a
// MemoryStorage it fills itself from the Readys it hands out.
func WithStorage(s Storage) Option { return func(c *config) { c.storage = s } }

// Applied tells RestartNode that the application's state machine already
// holds the log up to index (it is durable): CommittedEntries start after
// index, and peers and Learners give the membership at index rather than
// at the start of the log (config entries up to index are not handed out
// again). index must lie between the snapshot's and the HardState's
// commit. Compact then refuses indexes below it, where the node knows no
// membership. Only for RestartNode.
func Applied(index int64) Option { return func(c *config) { c.appliedIndex = index } }

// WithLogger makes the node log through logger. By default it logs nothing.
func WithLogger(logger *slog.Logger) Option { return func(c *config) { c.logger = logger } }
