package rafttest

import (
	"slices"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// Faults describes how a link misbehaves. The zero value is a perfect
// link: every message arrives once, in order, at the next delivery.
type Faults struct {
	// Drop is the probability that a message is lost.
	Drop float64
	// Duplicate is the probability that a message arrives twice.
	Duplicate float64
	// Reorder is the probability that a message ignores the link's order:
	// it may overtake earlier messages or be overtaken by later ones.
	Reorder float64
	// MaxDelay bounds the delay of a message, in deliveries: a message
	// sent now arrives at one of the next 1+MaxDelay calls of Deliver.
	MaxDelay int
}

func (f Faults) perfect() bool { return f == Faults{} }

type link struct{ from, to int64 }

// envelope is a message in flight.
type envelope struct {
	m   raftpb.Message
	at  int // the delivery round at which it arrives
	inc int // the sender's incarnation
}

// Network is the simulated network of a Cluster: links between every pair
// of nodes, each with its Faults, that can be cut one way or both. A cut
// link loses the messages that would cross it, including those already in
// flight when it was cut. Messages are delivered in rounds (Deliver);
// delays count rounds. Everything random is drawn from the cluster's
// source.
type Network struct {
	c        *Cluster
	defaults Faults
	links    map[link]Faults
	cut      map[link]bool
	inflight []envelope
	due      []envelope // scratch for Deliver
	// old holds a sample of delivered messages, for Replay.
	old    []envelope
	lastAt map[link]int
	now    int
}

func newNetwork(c *Cluster, f Faults) *Network {
	return &Network{c: c, defaults: f, links: map[link]Faults{}, cut: map[link]bool{}, lastAt: map[link]int{}}
}

// SetFaults sets the faults of every link that has none of its own.
func (nw *Network) SetFaults(f Faults) {
	nw.defaults = f
	nw.c.logf(0, "network faults %+v", f)
}

// SetLinkFaults sets the faults of the link from -> to, overriding the
// default.
func (nw *Network) SetLinkFaults(from, to int64, f Faults) {
	nw.links[link{from, to}] = f
	nw.c.logf(0, "link %x->%x faults %+v", from, to, f)
}

// ClearFaults makes every link perfect.
func (nw *Network) ClearFaults() {
	nw.defaults = Faults{}
	clear(nw.links)
	nw.c.logf(0, "network faults cleared")
}

func (nw *Network) faults(l link) Faults {
	if len(nw.links) > 0 {
		if f, ok := nw.links[l]; ok {
			return f
		}
	}
	return nw.defaults
}

// Cut cuts the link from -> to: to no longer hears from.
func (nw *Network) Cut(from, to int64) {
	if from != to {
		nw.cut[link{from, to}] = true
	}
}

// Connect restores the link from -> to.
func (nw *Network) Connect(from, to int64) { delete(nw.cut, link{from, to}) }

// Connected reports whether to hears from.
func (nw *Network) Connected(from, to int64) bool { return !nw.cut[link{from, to}] }

// Isolate cuts id off from every other node of the cluster, both ways.
func (nw *Network) Isolate(id int64) {
	for _, other := range nw.c.ids {
		nw.Cut(id, other)
		nw.Cut(other, id)
	}
	nw.c.logf(0, "isolate %x", id)
}

// Partition cuts, both ways, every link between nodes of different groups.
// Links of nodes in no group are left as they are.
func (nw *Network) Partition(groups ...[]int64) {
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					nw.Cut(a, b)
				}
			}
		}
	}
	nw.c.logf(0, "partition %x", groups)
}

// Heal restores every link (faults stay as they are).
func (nw *Network) Heal() {
	clear(nw.cut)
	nw.c.logf(0, "heal")
}

// InFlight returns the number of messages in flight.
func (nw *Network) InFlight() int { return len(nw.inflight) }

// Cuts returns the cut links, as [from, to] pairs in order.
func (nw *Network) Cuts() [][2]int64 {
	var out [][2]int64
	for l, cut := range nw.cut {
		if cut {
			out = append(out, [2]int64{l.from, l.to})
		}
	}
	slices.SortFunc(out, func(a, b [2]int64) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
	return out
}

// send puts m in flight, applying the link's faults.
func (nw *Network) send(m raftpb.Message, inc int) {
	l := link{m.From, m.To}
	f := nw.faults(l)
	rng := nw.c.rng
	copies := 1
	if !f.perfect() {
		if f.Drop > 0 && rng.Float64() < f.Drop {
			nw.c.trace.add(event{step: nw.c.step, kind: evDrop, text: "loss", msg: m})
			nw.c.stats.Lost++
			nw.reportLoss(m, inc)
			return
		}
		if f.Duplicate > 0 && rng.Float64() < f.Duplicate {
			copies = 2
		}
	}
	for range copies {
		at := nw.now + 1
		if f.MaxDelay > 0 {
			at += rng.IntN(f.MaxDelay + 1)
		}
		if f.Reorder == 0 || rng.Float64() >= f.Reorder {
			// In order with the link's earlier messages.
			at = max(at, nw.lastAt[l])
			nw.lastAt[l] = at
		}
		nw.inflight = append(nw.inflight, envelope{m: m, at: at, inc: inc})
	}
}

// Deliver runs one delivery round, as one step of the cluster: every
// message due arrives, in the order it was sent (unless reordered), and is
// stepped into its recipient. It returns the number of messages delivered
// or lost.
func (nw *Network) Deliver() int {
	var k int
	nw.c.op(func() { k = nw.deliverRound() })
	return k
}

func (nw *Network) deliverRound() int {
	c := nw.c
	nw.now++
	if len(nw.inflight) == 0 {
		return 0
	}
	// Split off the due messages (delivering sends nothing, so the
	// in-flight list can be filtered in place).
	due := nw.due[:0]
	rest := nw.inflight[:0]
	for _, env := range nw.inflight {
		if env.at <= nw.now {
			due = append(due, env)
		} else {
			rest = append(rest, env)
		}
	}
	clear(nw.inflight[len(rest):])
	nw.inflight = rest
	nw.due = due
	if len(due) == 0 {
		return 0
	}
	slices.SortStableFunc(due, func(a, b envelope) int { return a.at - b.at })
	defer clear(due)
	for i := range due {
		if c.err != nil {
			break
		}
		nw.deliver(&due[i])
	}
	return len(due)
}

func (nw *Network) deliver(env *envelope) {
	c := nw.c
	m := env.m
	to := c.nodes[m.To]
	switch {
	case nw.cut[link{m.From, m.To}]:
		c.trace.add(event{step: c.step, kind: evDrop, text: "cut", msg: m})
		c.stats.Lost++
		nw.reportLoss(m, env.inc)
		return
	case to == nil || !to.up:
		c.trace.add(event{step: c.step, kind: evDrop, text: "down", msg: m})
		c.stats.Lost++
		nw.reportLoss(m, env.inc)
		return
	}
	c.trace.add(event{step: c.step, kind: evDeliver, msg: m})
	c.stats.Delivered++
	if c.rng.IntN(8) == 0 {
		if len(nw.old) < 64 {
			nw.old = append(nw.old, *env)
		} else {
			nw.old[c.rng.IntN(len(nw.old))] = *env
		}
	}
	c.stepMessage(to, m)
	if m.Type == raftpb.MsgSnap {
		if from := nw.sender(m, env.inc); from != nil && c.rng.IntN(5) != 0 {
			c.doing, c.doingNode = "ReportSnapshot", from.id
			from.rn.ReportSnapshot(m.To, raft.SnapshotFinish)
		}
	}
}

// Replay puts one of the messages delivered in the past (a random one of a
// sample) in flight again: a network may deliver a message twice, however
// late. It reports whether there was one.
func (nw *Network) Replay() bool {
	if len(nw.old) == 0 {
		return false
	}
	env := nw.old[nw.c.rng.IntN(len(nw.old))]
	env.at = nw.now + 1
	nw.inflight = append(nw.inflight, env)
	nw.c.logf(0, "replay %s", raft.DescribeMessage(env.m))
	return true
}

// sender returns the node that sent m, if it still runs the incarnation
// that sent it.
func (nw *Network) sender(m raftpb.Message, inc int) *Node {
	if n := nw.c.nodes[m.From]; n != nil && n.up && n.inc == inc {
		return n
	}
	return nil
}

// reportLoss tells the sender, as a transport would now and then, that a
// message was lost.
func (nw *Network) reportLoss(m raftpb.Message, inc int) {
	from := nw.sender(m, inc)
	if from == nil {
		return
	}
	c := nw.c
	switch {
	case m.Type == raftpb.MsgSnap:
		if c.rng.IntN(5) != 0 {
			c.doing, c.doingNode = "ReportSnapshot", from.id
			from.rn.ReportSnapshot(m.To, raft.SnapshotFailure)
		}
	case c.rng.IntN(4) == 0:
		c.doing, c.doingNode = "ReportUnreachable", from.id
		from.rn.ReportUnreachable(m.To)
	}
}
