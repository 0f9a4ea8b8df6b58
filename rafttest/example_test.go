package rafttest_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/raftly/raft/raftpb"
	"github.com/raftly/raft/rafttest"
)

// bank is an application's state machine: four accounts and transfers
// between them that never overdraw. Its invariant: the money in all
// accounts together never changes.
type bank struct{ accounts [4]int64 }

func newBank(int64) rafttest.StateMachine { return &bank{accounts: [4]int64{100, 100, 100, 100}} }

// Apply applies "<from><to><amount>" (two account digits, then digits).
func (b *bank) Apply(e raftpb.Entry) {
	var from, to, amount int64
	if _, err := fmt.Sscanf(string(e.Data), "%1d%1d%d", &from, &to, &amount); err != nil || from > 3 || to > 3 {
		return
	}
	if b.accounts[from] >= amount {
		b.accounts[from] -= amount
		b.accounts[to] += amount
	}
}

func (b *bank) Snapshot() []byte {
	var out []byte
	for _, a := range b.accounts {
		out = binary.AppendVarint(out, a)
	}
	return out
}

func (b *bank) Restore(data []byte) error {
	for i := range b.accounts {
		v, n := binary.Varint(data)
		if n <= 0 {
			return errors.New("bank: short snapshot")
		}
		b.accounts[i], data = v, data[n:]
	}
	return nil
}

// Digest lets the simulator compare the states of all nodes after every
// entry they apply.
func (b *bank) Digest() uint64 {
	var h uint64 = 17
	for _, a := range b.accounts {
		h = h*1_000_003 + uint64(a)
	}
	return h
}

func transfer(r *rand.Rand) []byte {
	return fmt.Appendf(nil, "%d%d%d", r.IntN(4), r.IntN(4), r.IntN(60))
}

// noMoneyCreated is a check of the application's own, run after every
// step on every running node.
func noMoneyCreated(c *rafttest.Cluster) error {
	for _, id := range c.Running() {
		b := c.Node(id).StateMachine().(*bank)
		if total := b.accounts[0] + b.accounts[1] + b.accounts[2] + b.accounts[3]; total != 400 {
			return fmt.Errorf("node %x holds %d in all, not 400", id, total)
		}
	}
	return nil
}

// An application tests its own state machine under the simulator: random
// runs with crashes, partitions, lost messages, membership changes and
// compactions, checked by Raft's safety checkers and by its own.
func Example() {
	violations := 0
	for seed := uint64(0); seed < 20; seed++ {
		_, err := rafttest.Run(rafttest.Config{
			Seed:         seed,
			Voters:       5,
			StateMachine: newBank,
			Command:      transfer,
			Faults:       rafttest.FaultProfiles[1],
			Checks:       []func(*rafttest.Cluster) error{noMoneyCreated},
		}, 1000)
		if err != nil {
			violations++
			fmt.Println(err) // names the checker and the seed, with the trace's tail
		}
	}
	fmt.Printf("%d violations in 20 seeds\n", violations)
	// Output: 0 violations in 20 seeds
}

// A scripted scenario: the leader is cut off with an entry it could not
// commit; the others elect a new leader and go on; after the heal the old
// leader's entry is gone and every node agrees.
func ExampleCluster() {
	c := rafttest.New(rafttest.Config{Seed: 1})
	_ = c.Campaign(1)
	c.Stabilize(100)
	fmt.Println("leader:", c.Leader())

	c.Network().Isolate(1)
	_ = c.Propose(1, []byte("put x lost"))
	c.Stabilize(100)
	for range 50 {
		c.Tick()
		c.Stabilize(100)
	}
	fmt.Println("leader while 1 is cut off:", c.Leader())
	_ = c.Propose(c.Leader(), []byte("put x kept"))
	c.Stabilize(100)

	c.Network().Heal()
	for range 5 {
		c.Tick()
		c.Stabilize(100)
	}
	for _, id := range c.IDs() {
		v, _ := c.Node(id).StateMachine().(*rafttest.KV).Get("x")
		fmt.Printf("node %d: x=%s\n", id, v)
	}
	fmt.Println("violation:", c.Err())
	// Output:
	// leader: 1
	// leader while 1 is cut off: 3
	// node 1: x=kept
	// node 2: x=kept
	// node 3: x=kept
	// violation: <nil>
}
