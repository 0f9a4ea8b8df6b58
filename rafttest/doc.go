// Package rafttest tests code built on package raft without a wall clock or
// a real network: a deterministic cluster simulator, and checkers of Raft's
// safety properties that watch every step it takes.
//
// # The simulator
//
// A [Cluster] owns what an application owns: for every node a
// [raft.RawNode], its Ready loop, its disk and its state machine; and the
// network between them and the clock. It drives everything synchronously
// from one goroutine and one seeded random source, so a run is a pure
// function of its [Config]: the same seed replays the same run, event for
// event ([Cluster.TraceHash]).
//
// Each node's loop is the documented one: persist the Ready's Snapshot,
// Entries and State, in that order, to the node's simulated disk; apply the
// committed entries (config entries through AddNode, AddLearner,
// PromoteLearner and RemoveNode; each request once, as the network may
// duplicate a forwarded proposal); serve the reads whose ReadState came
// once their index is applied; send the messages. A crash ([Cluster.Crash]) loses everything that is not on
// the disk, and may strike in the middle of persisting a Ready
// ([Cluster.CrashMidPersist]); a restart ([Cluster.Restart]) goes through
// [raft.RestartRawNode] with exactly what is on the disk. Config entries
// use the simulator's encoding ([AddData], [AddLearnerData], [PromoteData],
// [RemoveData]; anything else is rejected by the application); when the
// first node applies "add X" or "learner X", the simulator starts X with
// an empty disk and [raft.Joining]. Ids are never
// reused, and a removed node is never restarted once down.
// [Cluster.Compact] compacts a node's log at its applied index with its
// state machine's snapshot, and the application persists that snapshot.
//
// Clients write and read the default KV state machine on any node, and
// the simulator records their operations as a history ([Cluster.History],
// [Op]): a write ("put k v", "del k", with a value no other write has)
// is called when proposed and returns when the node it was proposed on
// applies it, or stays open; a read ([Cluster.Read]) asks
// [raft.RawNode.ReadIndex] and returns the node's value once the node has
// applied up to its ReadState's index. Call and return times order the
// operations in real time, for a linearizability checker: the module
// rafttest/lincheck checks them with porcupine. [Config].UnsafeLocalReads
// serves reads without ReadIndex, to see such a checker fail.
//
// The [Network] carries messages with per-link [Faults] (loss,
// duplication, reordering, bounded delay counted in delivery rounds) and
// cuts links one way or both, so partitions take any shape: asymmetric
// ones, an isolated node, a bridge node that hears two halves.
//
// # The checkers
//
// On every step, incrementally (their cost does not grow with the run):
// election safety (at most one leader per term, as nodes report it and as
// their followers see it); log matching (two disks that hold an entry with
// the same index and term hold the same log up to it); leader completeness
// (a leader's persisted log holds every entry committed in an earlier
// term); state machine safety (no two nodes apply different entries, or
// reach different states, at one index, across crashes and restarts); a
// committed entry is never truncated from a disk nor changed; term and
// commit on disk, and applied within one incarnation, never go back; a node
// never votes twice in one term, across restarts, and persists its vote
// before granting it; acknowledgements never run ahead of the disk. After a
// fault-free tail, [Cluster.CheckLiveness] requires every live member to
// apply a new proposal within [Config].LivenessTicks. A violation stops the
// run and is returned as a [*Violation] error naming the checker, the seed
// and the tail of the trace; a panic of the library is one too.
//
// # Testing your own state machine
//
// Implement [StateMachine] (Apply, Snapshot, Restore; optionally
// [Digester], to have states compared after every entry), tell the
// simulator how to make random commands for it, add checks of your own,
// and run seeds:
//
//	for seed := uint64(0); seed < 500; seed++ {
//		_, err := rafttest.Run(rafttest.Config{
//			Seed:         seed,
//			Voters:       5,
//			StateMachine: func(id int64) rafttest.StateMachine { return newMyState() },
//			Command:      randomCommand,
//			Checks:       []func(*rafttest.Cluster) error{myInvariant},
//		}, 2000)
//		if err != nil {
//			t.Fatal(err) // the checker, the seed and the trace's tail
//		}
//	}
//
// [Run] takes random steps ([Cluster.RandomStep]: ticks, Ready loops,
// deliveries, proposals, client reads, leadership transfers, configuration
// changes one node at a time, partitions and heals, crashes and restarts,
// compactions, changes of the network's faults) and ends with the liveness
// check. Scripted scenarios use the same Cluster step by step:
// [Cluster.Campaign], [Cluster.Propose], [Cluster.Read],
// [Cluster.TransferLeadership], [Cluster.Process], [Cluster.Deliver],
// [Cluster.Stabilize], [Cluster.Tick], and the Network's cuts.
//
// The package's own randomized test replays one seed with
//
//	go test ./rafttest -run 'TestRandom$' -seed N -nodes 5
//
// and sweeps ranges with -first, -seeds, -steps and -nodes; -dump writes
// the whole trace of a failing seed to a file. The linearizability sweep
// of rafttest/lincheck replays one seed with
//
//	cd rafttest/lincheck && go test -run 'TestLinearizable$' -seed N -nodes 5
package rafttest
