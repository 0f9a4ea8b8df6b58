package raftstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/raftly/raft/raftstore"
)

// server is what an application keeps beside each node: its DB and store,
// and a state machine, the list of commands applied.
type server struct {
	id      int64
	db      *raftstore.DB
	store   *raftstore.Store
	node    raft.Node
	cmds    []string
	applied chan string // each command as it is applied
}

// compactEvery is how often, in log entries, a server compacts its log.
const compactEvery = 3

// open opens the server's DB and its group, and starts its node: with
// StartNode on a new store, with RestartNode on one that holds a log.
func open(dir string, id int64, ids []int64) *server {
	db, err := raftstore.Open(filepath.Join(dir, fmt.Sprint(id)), nil)
	if err != nil {
		panic(err)
	}
	s := &server{id: id, db: db, applied: make(chan string, 16)}
	store, st, err := db.Group(1)
	if err != nil {
		panic(err)
	}
	s.store = store
	if !st.Bootstrapped {
		var peers []int64
		for _, p := range ids {
			if p != id {
				peers = append(peers, p)
			}
		}
		if err := store.Bootstrap(peers, nil, 0); err != nil {
			panic(err)
		}
		s.node = raft.StartNode(id, peers, 10, 1, raft.WithStorage(store))
		return s
	}
	// Restarting takes these two lines (and restoring the state machine).
	s.node = raft.RestartNode(id, st.Peers, 10, 1, st.Snapshot, st.HardState, nil,
		raft.WithStorage(store), raft.Learners(st.Learners...), raft.Joining(st.Joining))
	if st.Snapshot != nil {
		s.cmds = strings.Split(string(st.Snapshot.Data), ",")
	}
	fmt.Printf("node %d restarts: term %d, commit %d, log (%d, %d], state %v\n",
		id, st.HardState.Term, st.HardState.Commit, st.FirstIndex-1, st.LastIndex, s.cmds)
	return s
}

// run is the loop of the package documentation with the store: save, apply,
// send. Committed entries are applied again after a restart, from the
// snapshot on.
func (s *server) run(done <-chan struct{}, send func([]raftpb.Message)) {
	for {
		select {
		case rd := <-s.node.Ready():
			if err := s.store.Save(rd); err != nil {
				panic(err)
			}
			if !raft.IsEmptySnap(rd.Snapshot) {
				s.cmds = strings.Split(string(rd.Snapshot.Data), ",")
			}
			for _, e := range rd.CommittedEntries {
				if e.Type == raft.EntryNormal && len(e.Data) > 0 {
					s.cmds = append(s.cmds, string(e.Data))
					s.applied <- string(e.Data)
				}
				if e.Index%compactEvery == 0 {
					s.compact(e.Index)
				}
			}
			if n := len(rd.CommittedEntries); n > 0 {
				if err := s.store.SetApplied(rd.CommittedEntries[n-1].Index); err != nil {
					panic(err)
				}
			}
			send(rd.Messages)
		case <-done:
			return
		}
	}
}

// compact snapshots the state machine at index: the node hands the
// snapshot to the store (a raft.CompactingStorage), which records it and
// drops the entries it covers.
func (s *server) compact(index int64) {
	voters, data := []int64{1, 2, 3}, []byte(strings.Join(s.cmds, ","))
	if err := s.node.Compact(index, voters, data); err != nil {
		panic(err)
	}
}

// cluster runs the servers' loops until stop.
type cluster struct {
	servers map[int64]*server
	done    chan struct{}
	wg      sync.WaitGroup
}

func start(dir string, ids []int64) *cluster {
	c := &cluster{servers: map[int64]*server{}, done: make(chan struct{})}
	for _, id := range ids {
		c.servers[id] = open(dir, id, ids)
	}
	send := func(msgs []raftpb.Message) {
		for _, m := range msgs {
			_ = c.servers[m.To].node.Step(context.Background(), m)
		}
	}
	for _, s := range c.servers {
		c.wg.Go(func() { s.run(c.done, send) })
	}
	return c
}

// propose makes node 1 leader if it is not, proposes cmd and prints it as
// every node applies it.
func (c *cluster) propose(ids []int64, cmd string) {
	ctx := context.Background()
	if c.servers[1].node.Status().Lead != 1 {
		if err := c.servers[1].node.Campaign(ctx); err != nil {
			panic(err)
		}
	}
	if err := c.servers[1].node.Propose(ctx, []byte(cmd)); err != nil {
		panic(err)
	}
	c.print(ids, 1)
}

// print prints the next n commands each node applies.
func (c *cluster) print(ids []int64, n int) {
	for _, id := range ids {
		var got []string
		for range n {
			got = append(got, <-c.servers[id].applied)
		}
		fmt.Printf("node %d applied %s\n", id, strings.Join(got, " "))
	}
}

func (c *cluster) stop() {
	close(c.done)
	c.wg.Wait()
	for _, s := range c.servers {
		s.node.Stop()
		if err := s.db.Close(); err != nil {
			panic(err)
		}
	}
}

// This example runs a three-node cluster whose nodes keep their logs in
// raftstore, each in its own directory. It stops every node, reopens every
// store and restarts every node from what its store returns: each node
// restores its state machine from its snapshot and applies the committed
// entries after it again, and the cluster goes on.
func Example() {
	dir, err := os.MkdirTemp("", "raftstore-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ids := []int64{1, 2, 3}

	c := start(dir, ids)
	for _, cmd := range []string{"x=1", "y=2", "x=3"} {
		c.propose(ids, cmd)
	}
	c.stop()

	c = start(dir, ids)
	c.print(ids, 1) // x=3, after the snapshot at 3, is applied again
	c.propose(ids, "z=4")
	c.stop()
	for _, id := range ids {
		fmt.Printf("node %d state %v\n", id, c.servers[id].cmds)
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
	// node 1 restarts: term 1, commit 4, log (3, 4], state [x=1 y=2]
	// node 2 restarts: term 1, commit 4, log (3, 4], state [x=1 y=2]
	// node 3 restarts: term 1, commit 4, log (3, 4], state [x=1 y=2]
	// node 1 applied x=3
	// node 2 applied x=3
	// node 3 applied x=3
	// node 1 applied z=4
	// node 2 applied z=4
	// node 3 applied z=4
	// node 1 state [x=1 y=2 x=3 z=4]
	// node 2 state [x=1 y=2 x=3 z=4]
	// node 3 state [x=1 y=2 x=3 z=4]
}
