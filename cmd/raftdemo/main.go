// Command raftdemo runs a three-node Raft cluster inside one process and
// walks it through a leader failure: it commits a few commands, stops the
// leader, waits for the other two to elect a new one and commit again, then
// restarts the stopped node from what it had persisted and waits for it to
// catch up. Each node runs the loop of the package documentation in its own
// goroutine; the "disk" and the "network" are in memory.
//
// It exits 0 when every step happened, and 1, saying which step did not,
// when one takes longer than the step timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// The recommended ratio of 10 heartbeats per election timeout, on a fast
// clock: a tick of a few milliseconds instead of the usual 100 ms.
const (
	electionTicks  = 10
	heartbeatTicks = 1
)

var (
	tickEvery   = flag.Duration("tick", 5*time.Millisecond, "interval between ticks")
	stepTimeout = flag.Duration("timeout", 10*time.Second, "how long each step may take")
)

func main() {
	flag.Parse()
	start := time.Now()
	c := newCluster([]int64{1, 2, 3})
	say("started a 3-node cluster in process (election %d ticks, heartbeat %d tick, a tick every %v)",
		electionTicks, heartbeatTicks, *tickEvery)

	leader := c.waitLeader(c.ids)
	say("node %d was elected leader in term %d", leader, c.term(leader))
	for _, cmd := range []string{"x=1", "y=2", "z=3"} {
		index := c.commit(cmd, c.ids)
		say("committed %q at index %d on nodes %s", cmd, index, list(c.ids))
	}

	say("stopping the leader, node %d", leader)
	c.stop(leader)
	rest := without(c.ids, leader)
	newLeader := c.waitLeader(rest)
	say("node %d was elected leader in term %d (node %d is down)", newLeader, c.term(newLeader), leader)
	for _, cmd := range []string{"x=4", "w=5"} {
		index := c.commit(cmd, rest)
		say("committed %q at index %d on nodes %s", cmd, index, list(rest))
	}

	hs, ents := c.restart(leader)
	say("restarted node %d from its saved state: term %d, vote %d, commit %d, %d entries",
		leader, hs.Term, hs.Vote, hs.Commit, len(ents))
	index := c.commit("v=6", c.ids)
	say("committed %q at index %d on nodes %s", "v=6", index, list(c.ids))
	n := c.waitSameApplied()
	say("node %d caught up: it applied the same %d entries as nodes %s (commands %s)",
		leader, n, list(rest), strings.Join(c.commands(leader), " "))

	c.stopAll()
	say("stopped all nodes after %v", time.Since(start).Round(time.Millisecond))
}

func say(format string, args ...any) {
	fmt.Printf("raftdemo: "+format+"\n", args...)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "raftdemo: FAILED: "+format+"\n", args...)
	os.Exit(1)
}

// disk is what one node persisted. The demo never compacts, so it holds no
// snapshot, but the loop handles one the way an application must.
type disk struct {
	snap raftpb.Snapshot
	hs   raftpb.HardState
	ents []raftpb.Entry // the entries after snap, contiguous
}

// save persists one Ready: snapshot, then entries, then HardState.
func (d *disk) save(snap raftpb.Snapshot, ents []raftpb.Entry, st raftpb.HardState) {
	if !raft.IsEmptySnap(snap) {
		d.snap, d.ents = snap, nil
	}
	if len(ents) > 0 {
		// New entries replace the persisted ones at the same or a higher
		// index. Copy rather than write into an array the node handed out.
		keep := min(max(ents[0].Index-d.snap.Index-1, 0), int64(len(d.ents)))
		d.ents = append(slices.Clip(d.ents[:keep]), ents...)
	}
	if !raft.IsEmptyHardState(st) {
		d.hs = st
	}
}

// member is one node of the cluster, across its restarts.
type member struct {
	id    int64
	inbox chan raftpb.Message // the network's queue to this node

	mu      sync.Mutex
	node    raft.Node // nil while the node is down
	stopc   chan struct{}
	done    chan struct{}
	disk    disk
	soft    raft.SoftState
	applied []raftpb.Entry // the state machine: every entry applied, in order
}

type cluster struct {
	ids     []int64
	members map[int64]*member
	quit    chan struct{}
	wg      sync.WaitGroup // the delivery goroutines
}

func newCluster(ids []int64) *cluster {
	c := &cluster{ids: ids, members: map[int64]*member{}, quit: make(chan struct{})}
	for _, id := range ids {
		m := &member{id: id, inbox: make(chan raftpb.Message, 4096)}
		c.members[id] = m
		c.wg.Add(1)
		go c.deliver(m)
	}
	for _, id := range ids {
		c.run(c.members[id], raft.StartNode(id, ids, electionTicks, heartbeatTicks))
	}
	return c
}

// run starts the loop of the package documentation for node n of m.
func (c *cluster) run(m *member, n raft.Node) {
	m.mu.Lock()
	m.node, m.stopc, m.done = n, make(chan struct{}), make(chan struct{})
	stopc, done := m.stopc, m.done
	m.mu.Unlock()
	go func() {
		defer close(done)
		ticker := time.NewTicker(*tickEvery)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				n.Tick()
			case rd := <-n.Ready():
				m.mu.Lock()
				m.disk.save(rd.Snapshot, rd.Entries, rd.State)
				if rd.SoftState != nil {
					m.soft = *rd.SoftState
				}
				if !raft.IsEmptySnap(rd.Snapshot) {
					m.applied = nil // restore: the demo's snapshots would hold no commands
				}
				for _, e := range rd.CommittedEntries {
					// The demo proposes no membership change. An application
					// decodes a raft.EntryConfig entry here and calls
					// n.AddNode or n.RemoveNode (or neither) for it.
					m.applied = append(m.applied, e)
				}
				m.mu.Unlock()
				c.send(rd.Messages) // only now: this Ready is persisted
			case <-stopc:
				return
			}
		}
	}()
}

// send queues messages on the in-memory network; a full queue drops them,
// as a real network may.
func (c *cluster) send(msgs []raftpb.Message) {
	for _, msg := range msgs {
		m, ok := c.members[msg.To]
		if !ok {
			continue
		}
		select {
		case m.inbox <- msg:
		default:
		}
	}
}

// deliver hands the messages queued for m to its node; while m is down,
// they are lost.
func (c *cluster) deliver(m *member) {
	defer c.wg.Done()
	for {
		select {
		case msg := <-m.inbox:
			if n := m.current(); n != nil {
				err := n.Step(context.Background(), msg)
				if err != nil && !errors.Is(err, raft.ErrStopped) {
					fail("node %d refused a message from node %d: %v", m.id, msg.From, err)
				}
			}
		case <-c.quit:
			return
		}
	}
}

func (m *member) current() raft.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// stop stops the loop of node id, then the node; what it persisted stays.
func (c *cluster) stop(id int64) {
	m := c.members[id]
	m.mu.Lock()
	n, stopc, done := m.node, m.stopc, m.done
	m.node = nil
	m.mu.Unlock()
	if n == nil {
		return
	}
	close(stopc)
	<-done
	n.Stop()
}

// restart starts node id again from exactly what it persisted, with an
// empty state machine: RestartNode hands the committed entries out again.
func (c *cluster) restart(id int64) (raftpb.HardState, []raftpb.Entry) {
	m := c.members[id]
	m.mu.Lock()
	var snap *raftpb.Snapshot
	if !raft.IsEmptySnap(m.disk.snap) {
		s := m.disk.snap
		snap = &s
	}
	hs, ents := m.disk.hs, slices.Clone(m.disk.ents)
	m.applied, m.soft = nil, raft.SoftState{}
	m.mu.Unlock()
	c.run(m, raft.RestartNode(id, c.ids, electionTicks, heartbeatTicks, snap, hs, ents))
	return hs, ents
}

func (c *cluster) stopAll() {
	for _, id := range c.ids {
		c.stop(id)
	}
	close(c.quit)
	c.wg.Wait()
}

// waitFor polls cond until it holds, or fails the demo after the step
// timeout.
func waitFor(what string, cond func() bool) {
	deadline := time.Now().Add(*stepTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			fail("%s did not happen within %v", what, *stepTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// leaderAmong returns the node of ids that leads with all of ids following
// it, or raft.None.
func (c *cluster) leaderAmong(ids []int64) int64 {
	lead := raft.None
	for _, id := range ids {
		m := c.members[id]
		m.mu.Lock()
		soft, up := m.soft, m.node != nil
		m.mu.Unlock()
		if !up || soft.Lead == raft.None || (lead != raft.None && soft.Lead != lead) {
			return raft.None
		}
		lead = soft.Lead
	}
	if !slices.Contains(ids, lead) {
		return raft.None
	}
	m := c.members[lead]
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.soft.RaftState != raft.StateLeader {
		return raft.None
	}
	return lead
}

func (c *cluster) waitLeader(ids []int64) int64 {
	var lead int64
	waitFor(fmt.Sprintf("the election of a leader among nodes %s", list(ids)), func() bool {
		lead = c.leaderAmong(ids)
		return lead != raft.None
	})
	return lead
}

func (c *cluster) term(id int64) int64 {
	if n := c.members[id].current(); n != nil {
		return n.Status().Term
	}
	return 0
}

// commit proposes cmd until every node of ids has applied it, and returns
// its index. A proposal can be lost when leadership changes; then it is
// proposed again.
func (c *cluster) commit(cmd string, ids []int64) int64 {
	var index int64
	deadline := time.Now().Add(*stepTimeout)
	for time.Now().Before(deadline) {
		lead := c.leaderAmong(ids)
		if lead == raft.None {
			time.Sleep(time.Millisecond)
			continue
		}
		n := c.members[lead].current()
		if n == nil {
			time.Sleep(time.Millisecond)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := n.Propose(ctx, []byte(cmd))
		cancel()
		if err != nil {
			continue
		}
		retry := time.Now().Add(time.Second)
		for time.Now().Before(retry) {
			if index = c.appliedEverywhere(cmd, ids); index != 0 {
				return index
			}
			time.Sleep(time.Millisecond)
		}
	}
	fail("command %q was not applied on nodes %s within %v", cmd, list(ids), *stepTimeout)
	return 0
}

// appliedEverywhere returns the index at which every node of ids applied
// cmd, or 0.
func (c *cluster) appliedEverywhere(cmd string, ids []int64) int64 {
	var index int64
	for _, id := range ids {
		m := c.members[id]
		m.mu.Lock()
		i := slices.IndexFunc(m.applied, func(e raftpb.Entry) bool { return string(e.Data) == cmd })
		var at int64
		if i >= 0 {
			at = m.applied[i].Index
		}
		m.mu.Unlock()
		if at == 0 || (index != 0 && at != index) {
			return 0
		}
		index = at
	}
	return index
}

// waitSameApplied waits until every node has applied the same entries, and
// returns how many.
func (c *cluster) waitSameApplied() int {
	var n int
	waitFor("all nodes applying the same entries", func() bool {
		var first []raftpb.Entry
		for i, id := range c.ids {
			m := c.members[id]
			m.mu.Lock()
			applied := slices.Clone(m.applied)
			m.mu.Unlock()
			if i == 0 {
				first = applied
				continue
			}
			if !slices.EqualFunc(first, applied, sameEntry) {
				return false
			}
		}
		n = len(first)
		return true
	})
	return n
}

func sameEntry(a, b raftpb.Entry) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type && string(a.Data) == string(b.Data)
}

// commands lists the non-empty commands node id applied, in order.
func (c *cluster) commands(id int64) []string {
	m := c.members[id]
	m.mu.Lock()
	defer m.mu.Unlock()
	var cmds []string
	for _, e := range m.applied {
		if len(e.Data) > 0 {
			cmds = append(cmds, string(e.Data))
		}
	}
	return cmds
}

func without(ids []int64, id int64) []int64 {
	return slices.DeleteFunc(slices.Clone(ids), func(x int64) bool { return x == id })
}

// list renders ids as "1, 2 and 3".
func list(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
