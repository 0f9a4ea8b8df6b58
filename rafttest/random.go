package rafttest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/raftly/raft"
)

// The randomized driver: one random action per step, drawn from the
// cluster's source, so that a run is a pure function of its Config.

// Run starts a cluster, takes steps random steps (RandomStep), then checks
// liveness (CheckLiveness). It returns the cluster, for its trace, and the
// first violation (a *Violation), or nil.
func Run(cfg Config, steps int) (*Cluster, error) {
	c := New(cfg)
	for i := 0; i < steps && c.err == nil; i++ {
		c.RandomStep()
	}
	if c.err == nil {
		c.CheckLiveness()
	}
	return c, c.err
}

// FaultProfiles are the network fault settings the random driver switches
// between.
var FaultProfiles = []Faults{
	{},
	{Drop: 0.02, Duplicate: 0.02, Reorder: 0.05, MaxDelay: 2},
	{Drop: 0.1, Duplicate: 0.05, Reorder: 0.2, MaxDelay: 4},
	{Drop: 0.3},
	{Duplicate: 0.2, Reorder: 0.5, MaxDelay: 6},
	{Drop: 0.05, Reorder: 0.3, MaxDelay: 20},
}

// RandomStep takes one random step: ticks (of all nodes, or of some, as
// clocks drift, unless Config.SteadyClocks), Ready loops, deliveries,
// proposals (single or in bursts), client reads (single or several at
// once), leadership transfers, configuration changes (one node at a time,
// the leader included; voters, learners, promotions, removals), partitions
// of any shape and heals, crashes (also in the middle of persisting a
// Ready) and restarts, compactions, changes of the network's faults,
// replays of old messages, explicit campaigns, and the stop of a removed
// node.
func (c *Cluster) RandomStep() {
	c.op(c.randomAction)
}

func (c *Cluster) randomAction() {
	// Client reads and leadership transfers come on top of the rest.
	r := c.rng.IntN(1000 + readsPerMille + transfersPerMille)
	switch {
	case r >= 1000+transfersPerMille:
		c.randomReads()
	case r >= 1000:
		c.randomTransfer()
	case r < 160:
		c.tick()
	case r < 200 && c.cfg.SteadyClocks:
		c.tick()
	case r < 200:
		// Clocks drift: only some nodes tick.
		c.stats.Ticks++
		for _, id := range c.ids {
			if n := c.nodes[id]; n.up && c.rng.IntN(2) == 0 {
				c.doing, c.doingNode = "Tick", id
				n.rn.Tick()
			}
		}
	case r < 500:
		for i := 0; i < len(c.ids) && c.err == nil; i++ {
			n := c.nodes[c.ids[i]]
			switch k := c.rng.IntN(400); {
			case k < 100:
			case k == 100 && n.up && n.rn.HasReady():
				// A crash while persisting a Ready with something in it.
				c.crash(n, randomWrites)
			default:
				c.process(n)
			}
		}
	case r < 790:
		c.net.deliverRound()
	case r < 880:
		if n := c.pickProposer(600); n != nil {
			k := 1
			if c.rng.IntN(5) == 0 {
				k = 2 + c.rng.IntN(7) // a burst, batched by the leader
			}
			for range k {
				_ = c.propose(n.id, c.command())
			}
		}
	case r < 915:
		c.randomConfig()
	case r < 920:
		// A third of the crashes strike the leader.
		n := c.pickRunning()
		if lead := c.knownLeader(); lead != nil && c.rng.IntN(3) == 0 {
			n = lead
		}
		if n != nil {
			if c.rng.IntN(2) == 0 {
				c.crash(n, -1)
			} else {
				c.crash(n, randomWrites)
			}
		}
	case r < 950:
		var down []int64
		for _, id := range c.ids {
			if !c.nodes[id].up && !c.removed[id] {
				down = append(down, id)
			}
		}
		if len(down) > 0 {
			_ = c.restart(down[c.rng.IntN(len(down))])
		}
	case r < 956:
		c.randomPartition()
	case r < 970:
		c.net.Heal()
	case r < 985:
		if n := c.pickRunning(); n != nil {
			_ = c.compact(n.id)
		}
	case r < 989:
		c.randomFaults()
	case r < 992:
		c.net.Replay()
	case r < 995:
		if n := c.pickRunning(); n != nil {
			_ = c.campaign(n.id)
		}
	default:
		// The application stops a removed node (not while it leads).
		for _, id := range c.ids {
			if n := c.nodes[id]; n.up && c.removed[id] && n.soft.RaftState != raft.StateLeader {
				c.logf(id, "stop: removed")
				n.up, n.rn, n.sm, n.reads = false, nil, nil, nil
				break
			}
		}
	}
}

// How often the random driver makes client reads and leadership
// transfers, per thousand other actions.
const (
	readsPerMille     = 35
	transfersPerMille = 5
)

// randomWrites asks crash for a random prefix of the Ready's writes.
const randomWrites = -2

func (c *Cluster) pickRunning() *Node {
	k := 0
	for _, id := range c.ids {
		if c.nodes[id].up {
			k++
		}
	}
	if k == 0 {
		return nil
	}
	k = c.rng.IntN(k)
	for _, id := range c.ids {
		if c.nodes[id].up {
			if k == 0 {
				return c.nodes[id]
			}
			k--
		}
	}
	return nil
}

// knownLeader returns the running node that said last, in its latest
// Ready, that it leads, in the highest term.
func (c *Cluster) knownLeader() *Node {
	var lead *Node
	for _, id := range c.ids {
		n := c.nodes[id]
		if n.up && n.soft.RaftState == raft.StateLeader && (lead == nil || n.term > lead.term) {
			lead = n
		}
	}
	return lead
}

// pickProposer returns the known leader with probability perMille/1000,
// else a random running node.
func (c *Cluster) pickProposer(perMille int) *Node {
	if c.rng.IntN(1000) < perMille {
		if n := c.knownLeader(); n != nil {
			return n
		}
	}
	return c.pickRunning()
}

// randomReads makes client reads: one on a random running node, or, a
// third of the time, a few at once on several (with the KV state machine
// only).
func (c *Cluster) randomReads() {
	k := 1
	if c.rng.IntN(3) == 0 {
		k = 2 + c.rng.IntN(3)
	}
	for range k {
		n := c.pickRunning()
		if n == nil {
			return
		}
		if _, ok := n.sm.(*KV); !ok {
			return
		}
		_ = c.read(n.id, fmt.Sprintf("k%d", c.rng.IntN(historyKeys)))
	}
}

// randomTransfer asks the known leader to hand leadership to another
// voter; now and then to a learner or a non-member, which it refuses.
func (c *Cluster) randomTransfer() {
	lead := c.knownLeader()
	if lead == nil {
		return
	}
	st := lead.rn.Status()
	var to int64
	switch {
	case c.rng.IntN(10) == 0 && len(st.Learners) > 0:
		to = st.Learners[c.rng.IntN(len(st.Learners))]
	case c.rng.IntN(10) == 0:
		to = c.ids[c.rng.IntN(len(c.ids))] // perhaps removed, perhaps itself
	default:
		var others []int64
		for _, id := range st.Voters {
			if id != lead.id {
				others = append(others, id)
			}
		}
		if len(others) == 0 {
			return
		}
		to = others[c.rng.IntN(len(others))]
	}
	_ = c.transfer(lead.id, to)
}

func (c *Cluster) randomConfig() {
	n := c.pickProposer(800)
	if n == nil {
		return
	}
	voters := c.voters
	add := c.rng.IntN(2) == 0
	switch want := c.cfg.Voters; {
	case len(voters) <= c.cfg.MinVoters:
		add = true
	case len(voters) >= c.cfg.MaxVoters:
		add = false
	case len(voters) < want:
		add = c.rng.IntN(3) != 0
	case len(voters) > want:
		add = c.rng.IntN(3) == 0
	}
	var data []byte
	switch {
	case c.rng.IntN(12) == 0:
		data = []byte("rename cluster") // rejected by the application
	case add && len(c.learners) > 0 && c.rng.IntN(2) == 0:
		data = PromoteData(c.learners[c.rng.IntN(len(c.learners))])
	case add && len(c.learners) < 2 && c.rng.IntN(3) == 0:
		// A learner first: it catches up before it counts in a quorum
		// (promoted later, or removed).
		data = AddLearnerData(c.NextID())
	case add:
		data = AddData(c.NextID())
	case len(c.learners) > 0 && c.rng.IntN(4) == 0:
		data = RemoveData(c.learners[c.rng.IntN(len(c.learners))])
	default:
		target := voters[c.rng.IntN(len(voters))]
		if lead := c.knownLeader(); lead != nil && slices.Contains(voters, lead.id) && c.rng.IntN(3) == 0 {
			target = lead.id
		}
		data = RemoveData(target)
	}
	_ = c.proposeConfig(n.id, data)
}

func (c *Cluster) randomPartition() {
	var ids []int64
	for _, id := range c.ids {
		if !c.removed[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) < 2 {
		return
	}
	nw := c.net
	clear(nw.cut)
	c.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	switch c.rng.IntN(5) {
	case 0:
		// Half the isolations cut off the leader.
		if lead := c.knownLeader(); lead != nil && c.rng.IntN(2) == 0 {
			nw.Isolate(lead.id)
			break
		}
		nw.Isolate(ids[0])
	case 1:
		k := 1 + c.rng.IntN(len(ids)-1)
		a, b := slices.Clone(ids[:k]), slices.Clone(ids[k:])
		slices.Sort(a)
		slices.Sort(b)
		nw.Partition(a, b)
	case 2:
		// Asymmetric: around one node, each link cut one way.
		var in, out []int64
		for _, other := range ids[1:] {
			if c.rng.IntN(2) == 0 {
				nw.Cut(other, ids[0])
				in = append(in, other)
			} else {
				nw.Cut(ids[0], other)
				out = append(out, other)
			}
		}
		c.logf(ids[0], "asymmetric: hears none of %x, none of %x hears it", in, out)
	case 3:
		var cuts []string
		for _, a := range ids {
			for _, b := range ids {
				if a != b && c.rng.IntN(4) == 0 {
					nw.Cut(a, b)
					cuts = append(cuts, fmt.Sprintf("%x->%x", a, b))
				}
			}
		}
		c.logf(0, "cut links %s", strings.Join(cuts, " "))
	default:
		// Two nodes cannot talk; the others hear both.
		nw.Cut(ids[0], ids[1])
		nw.Cut(ids[1], ids[0])
		c.logf(0, "cut %x<->%x", ids[0], ids[1])
	}
}

func (c *Cluster) randomFaults() {
	f := FaultProfiles[c.rng.IntN(len(FaultProfiles))]
	if c.rng.IntN(5) == 0 && len(c.ids) >= 2 {
		a, b := c.ids[c.rng.IntN(len(c.ids))], c.ids[c.rng.IntN(len(c.ids))]
		if a != b {
			c.net.SetLinkFaults(a, b, f)
			return
		}
	}
	c.net.SetFaults(f)
}

// CheckLiveness ends the faults (heals the network, makes every link
// perfect, restarts every crashed node that was not removed) and then
// requires every live member (a current member that runs) to apply a new
// proposal within Config.LivenessTicks ticks. Each tick is a step: every
// running node ticks, then Ready loops run and messages are delivered
// until the cluster settles. The proposal goes to the leader, again every
// two election timeouts until someone applies it. It returns the first
// violation, or nil.
func (c *Cluster) CheckLiveness() error {
	c.op(func() {
		c.net.Heal()
		c.net.ClearFaults()
		for _, id := range c.ids {
			if n := c.nodes[id]; !n.up && !c.removed[id] {
				_ = c.restart(id)
			}
		}
		c.logf(0, "liveness: faults end; every live member must apply a new proposal within %d ticks", c.cfg.LivenessTicks)
	})
	cmd := c.command()
	proposedAt := -1
	for tick := 0; tick < c.cfg.LivenessTicks && c.err == nil; tick++ {
		done := false
		c.op(func() {
			c.tick()
			c.settle(1000)
			if c.err != nil {
				return
			}
			anyApplied, all := false, true
			for _, id := range c.ids {
				n := c.nodes[id]
				anyApplied = anyApplied || n.probeApplied
				if n.up && c.isMember(id) && !n.probeApplied {
					all = false
				}
			}
			if c.probe != 0 && all {
				c.logf(0, "liveness: every live member applied the probe, %d ticks after the faults ended", tick+1)
				c.stats.LivenessTicks = tick + 1
				done = true
				return
			}
			if !anyApplied && (proposedAt < 0 || tick-proposedAt >= 2*c.cfg.Election) {
				if lead := c.knownLeader(); lead != nil && c.isMember(lead.id) {
					c.nextRID++
					c.probe = c.nextRID
					for _, id := range c.ids {
						c.nodes[id].probeApplied = false
					}
					err := c.proposeTagged(lead, c.probe, cmd)
					c.logf(lead.id, "liveness probe %q: %v", tagCommand(c.probe, cmd), err)
					if err == nil {
						proposedAt = tick
						c.settle(1000)
					}
				}
			}
		})
		if done {
			return c.err
		}
	}
	if c.err != nil {
		return c.err
	}
	var lines []string
	for _, id := range c.ids {
		n := c.nodes[id]
		if !n.up {
			continue
		}
		st := n.rn.Status()
		lines = append(lines, fmt.Sprintf("  %x: member=%v applied-probe=%v %s term=%d lead=%x commit=%d applied=%d voters=%x learners=%x removed=%v disk=%d..%d",
			id, c.isMember(id), n.probeApplied, st.RaftState, st.Term, st.Lead, st.Commit, st.Applied, st.Voters, st.Learners, st.Removed,
			n.disk.snap.Index, n.disk.lastIndex()))
	}
	c.fail(found(CheckLiveness, "not every live member applied a new proposal within %d ticks after the faults ended (probe proposed: %v; members %x learners %x)\n%s",
		c.cfg.LivenessTicks, proposedAt >= 0, c.voters, c.learners, strings.Join(lines, "\n")))
	return c.err
}
