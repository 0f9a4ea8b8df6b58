package raft_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
)

// server is what an application keeps beside each node. Here the "disk" is
// memory and the state machine is a list of applied commands.
type server struct {
	node  raft.Node
	ticks chan struct{} // the node's clock: a real server feeds it from a time.Ticker

	state   raftpb.HardState // persisted by saveToStable
	entries []raftpb.Entry   // persisted by saveToStable
	applied chan string      // commands applied to the state machine
}

// others returns the ids of every node but id.
func others(id int64, ids []int64) []int64 {
	var peers []int64
	for _, p := range ids {
		if p != id {
			peers = append(peers, p)
		}
	}
	return peers
}

// This example runs a three-node cluster in one process. Each node has its
// own goroutine running the loop of the package documentation; a message is
// sent by stepping it into the node it is addressed to. Node 1 is made
// leader with Campaign, and every command proposed to it is applied by all
// three nodes, in the same order.
func Example() {
	ctx := context.Background()
	ids := []int64{1, 2, 3}
	servers := map[int64]*server{}
	for _, id := range ids {
		servers[id] = &server{
			node:    raft.StartNode(id, others(id, ids), 10, 1),
			ticks:   make(chan struct{}),
			applied: make(chan string, 16),
		}
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range servers {
		n := s.node
		saveToStable := func(st raftpb.HardState, ents []raftpb.Entry) {
			if !raft.IsEmptyHardState(st) {
				s.state = st
			}
			if len(ents) > 0 { // they replace what was persisted from their first index on
				s.entries = append(s.entries[:ents[0].Index-1], ents...)
			}
		}
		process := func(ents []raftpb.Entry) {
			for _, e := range ents {
				if e.Type == raft.EntryNormal && len(e.Data) > 0 {
					s.applied <- string(e.Data)
				}
			}
		}
		send := func(msgs []raftpb.Message) {
			for _, m := range msgs {
				// Over a network, a lost message is fine: Raft sends again.
				_ = servers[m.To].node.Step(ctx, m)
			}
		}
		wg.Go(func() {
			for {
				select {
				case <-s.ticks:
					n.Tick()
				case rd := <-n.Ready():
					saveToStable(rd.State, rd.Entries)
					process(rd.CommittedEntries)
					send(rd.Messages)
				case <-done:
					return
				}
			}
		})
	}

	if err := servers[1].node.Campaign(ctx); err != nil {
		fmt.Println("campaign:", err)
		return
	}
	for _, cmd := range []string{"x=1", "y=2", "x=3"} {
		// Propose waits until node 1 knows it leads.
		if err := servers[1].node.Propose(ctx, []byte(cmd)); err != nil {
			fmt.Println("propose:", err)
			return
		}
		for _, id := range ids {
			fmt.Printf("node %d applied %s\n", id, <-servers[id].applied)
		}
		// Every node applied the command: the cluster is idle, and time
		// passes by one tick on each node. That is far too little for an
		// election timeout (10 ticks), so what happens does not depend on
		// how the goroutines are scheduled.
		for _, id := range ids {
			servers[id].ticks <- struct{}{}
		}
	}
	fmt.Println("leader:", servers[2].node.Status().Lead)

	close(done)
	wg.Wait()
	for _, s := range servers {
		s.node.Stop()
	}

	// Output:
	// node 1 applied x=1
	// node 2 applied x=1
	// node 3 applied x=1
	// node 1 applied y=2
	// node 2 applied y=2
	// node 3 applied y=2
	// node 1 applied x=3
	// node 2 applied x=3
	// node 3 applied x=3
	// leader: 1
}
