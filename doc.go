// Package raft is an implementation of the Raft consensus algorithm that an
// application embeds to replicate a log of commands among a small group of
// machines. Every member applies the same commands in the same order, and a
// command once committed survives as long as a majority of the voting
// members survive.
//
// The package does the algorithm and nothing else. It owns no disk, no
// network and no clock: the application stores what the node tells it to
// store, carries its messages to the other members, and tells it when time
// passes. That keeps the algorithm deterministic and lets the application
// choose its own storage, transport and batching. A node is a [Node],
// driven by a goroutine of the library; [RawNode] is the same node without
// the goroutine, for applications that run their own event loop and for
// deterministic tests.
//
// Node ids, terms and log indexes are int64. Id 0 is [None]: no node.
//
// # Starting and restarting
//
// Every member of a new cluster is started with [StartNode], with the same
// ids and an empty log:
//
//	n := raft.StartNode(0x01, []int64{0x02, 0x03}, 10, 1)
//
// The voters are the node's own id and peers (listing the own id in peers
// too is harmless); [Learners] names members that receive the log but never
// vote. StartNode writes nothing: the first leader's empty entry is entry 1.
// StartNode(id, nil, ...) is a one-node cluster that elects itself.
//
// A member that stopped, or whose process crashed, is started again with
// [RestartNode] from exactly what it had persisted: its latest snapshot (nil
// if it never had one), its latest non-empty HardState (an empty one if none
// was ever persisted) and the entries after the snapshot. peers is the
// membership at the start of that log: the snapshot's Nodes (and its
// Learners through the option), or, with no snapshot, what the node was
// first started with. The committed entries of that log are handed out again
// in CommittedEntries, so an application whose state machine lives in memory
// rebuilds it by applying them again; config entries among them bring the
// membership up to date. An application whose state machine is durable
// passes the index it had applied with the option [Applied], and the
// membership at that index as peers (and Learners): only the entries after
// it are handed out.
//
// # Time
//
// There is no clock inside. The application calls [Node.Tick] at a regular
// interval, and election and heartbeat are counted in ticks. A follower that
// hears from no leader for a random timeout in [election, 2*election) ticks
// starts an election; a leader sends heartbeats every heartbeat ticks.
// heartbeat must be less than election; about 10 heartbeats per election
// timeout is the setting we recommend, for example
//
//	raft.StartNode(id, peers, 10, 1) // with n.Tick() every 100 ms
//
// which replaces a failed leader after one to two seconds. A shorter tick
// elects faster and costs more messages; an election timeout much shorter
// than the time the application takes to persist a Ready causes needless
// elections.
//
// # The caller's duties
//
// The application does these, and the library counts on all of them:
//
//  1. Start the node with StartNode, or with RestartNode after a restart.
//  2. Call Tick at a regular interval.
//  3. Hand every message that arrives from another member to [Node.Step].
//  4. Run the Ready loop: receive each [Ready] from [Node.Ready] and handle
//     it completely, as described next, before receiving the next one.
//  5. Stop the node with [Node.Stop] when done.
//
// Handling a Ready rd means, in this order:
//
//  1. Persist rd.Snapshot when it is not empty: it replaces the whole
//     persisted log, and the state machine is restored from its Data.
//  2. Persist rd.Entries: they replace any persisted entries at the same or
//     a higher index.
//  3. Persist rd.State when it is not empty (an empty one means unchanged:
//     keep the one persisted before). It goes after the entries, because
//     the HardState may commit them.
//  4. Apply rd.CommittedEntries to the state machine, in order.
//  5. Send rd.Messages, each to the member named by its To field.
//
// Snapshot, entries and HardState may also go to disk in one atomic write;
// what matters is that the HardState never reaches the disk before the
// entries it may commit, and that no message leaves before its Ready is
// persisted.
//
// Every message of a Ready leaves only after that Ready is persisted. This
// is what the algorithm's safety rests on: a vote or an acknowledgement
// promises that the state it reports is on disk, and a leader counts its own
// entries toward a commit as soon as it hands them out in rd.Entries,
// before the application has written them, because the application will
// have written them before any message that could lead to their commit
// leaves. Sending early can lose committed entries in a crash, or make a
// node vote twice in one term.
//
// One exception is safe, and saves a disk write of latency on every write:
// [Ready.SplitMessages] names the messages that may leave before their
// Ready is persisted, a leader's appends, heartbeats, snapshots and
// read-index answers in a Ready that changes neither term nor vote. None
// of them reports this Ready's writes as done, and what the followers'
// answers let the leader conclude (a commit, a read index) leaves the node
// only in a later Ready, received once this one is persisted. The leader
// then writes its log while its followers write theirs (Raft thesis,
// section 10.2.1). Likewise rd.CommittedEntries are on a quorum's disks
// already: normal entries may be applied while the Ready is persisted
// (package raftkv does both); a config entry, whose AddNode or RemoveNode
// call the node takes as the sign that the Ready is persisted, and
// Compact wait until it is.
//
// Receiving the next Ready acknowledges the previous one: the loop needs no
// other call. [Node.Ready] returns the same channel every time; after Stop
// it never delivers again (it is not closed). rd.SoftState, when not nil,
// tells the application who leads now and what role this node has.
//
// From inside the loop the application may call [Node.AddNode],
// [Node.RemoveNode] and [Node.Compact]. [Node.Propose], [Node.Configure],
// [Node.Step] and [Node.Campaign] may wait for the loop, and belong in other
// goroutines.
//
// # The loop
//
// The documented loop, with the application's own saveToStable, process and
// send:
//
//	for {
//		select {
//		case <-s.Ticker:
//			s.Node.Tick()
//		case rd := <-s.Node.Ready():
//			if !raft.IsEmptySnap(rd.Snapshot) {
//				saveSnapshot(rd.Snapshot) // drop the persisted log, restore the state machine
//			}
//			saveToStable(rd.State, rd.Entries) // entries reach the disk before rd.State
//			process(rd.CommittedEntries)       // apply in order; see Membership
//			send(rd.Messages)                  // only now: the Ready is persisted
//		case <-s.done:
//			return
//		}
//	}
//
// and, in other goroutines, messages from the network go to Step and
// commands to Propose:
//
//	err := n.Step(ctx, m)
//	err = n.Propose(ctx, data)
//
// Propose returns nil once the entry is in the leader's log, or handed to
// the leader when this node is a follower; nil does not mean committed, and
// a proposal can still be lost when the leader changes. The application
// learns that its command committed by seeing it in CommittedEntries: tag
// commands with a request id, and propose again after a timeout if needed.
// The same command can then commit twice, and so can a forwarded proposal
// that the network delivered twice: apply each request id once.
// While no leader is known, Propose waits for one or for ctx to end.
//
// # Membership
//
// Membership changes one node at a time, and takes effect when the change is
// applied, not when it is proposed. To change it, propose a config entry
// with [Node.Configure]; its data is in the application's own encoding, for
// example "add 4". When the application applies a committed entry with
// e.Type == [EntryConfig], it decides whether to make the change, using
// only the entry and the state applied before it, so that every member
// decides the same, and makes it by calling [Node.AddNode] or
// [Node.RemoveNode] once, from the loop, before it moves on:
//
//	for _, e := range rd.CommittedEntries {
//		if e.Type == raft.EntryConfig {
//			op, id := decodeChange(e.Data)
//			switch op {
//			case "add":
//				n.AddNode(id)
//			case "remove":
//				n.RemoveNode(id)
//			} // or neither, to reject the change
//			continue
//		}
//		apply(e)
//	}
//
// A Ready's CommittedEntries end at the first config entry, so a Ready holds
// at most one, as its last committed entry, and the call made while applying
// it belongs to it. A Ready that hands out a config entry is always followed
// by another, so a rejected change never leaves the node waiting. Calling
// AddNode or RemoveNode when no config entry is waiting to be applied, or
// twice for one entry, is a programming error and panics.
//
// Only one change is in flight at a time: while a config entry is in the
// leader's log and not yet applied, or before a new leader has committed an
// entry of its own term, Configure returns [ErrProposalDropped]. A node does
// not campaign while committed config entries are not yet applied, so that
// it never competes for leadership on an out-of-date membership.
//
// A node that joins a running cluster, once the entry that adds it (at index
// J) is applied, is started with StartNode, an empty log, the voters as they
// are after J (itself among them, or in Learners when it joins as a learner)
// and the option [Joining](J). It learns the log, or a snapshot, from the
// leader; its membership is exact from J on, and it neither campaigns nor
// compacts before it has applied J. It restarts with the same peers and
// Joining(J) until it has persisted a snapshot. Never reuse the id of a
// removed node, and never restart a node that was removed or whose disk was
// lost under its old id: it could vote twice in a term.
//
// A removed leader keeps leading until the remaining voters know that its
// removal committed, then steps down; stop it only once it no longer
// reports itself leader.
//
// Learners receive the log but never vote, never campaign and never count
// toward a quorum. [Node.AddLearner] and [Node.PromoteLearner] are
// membership calls like AddNode, made while applying their config entry.
// The recommended way to add a node is: add it as a learner, start it with
// Learners(itself) and Joining(J), wait until it has caught up (the
// leader's Status shows its Match near the leader's last index), then
// propose its promotion. Adding a voter directly counts it in the quorum
// before it has caught up. AddNode of a learner, AddLearner of a member and
// PromoteLearner of anything but a learner change nothing.
//
// # Reads
//
// A read that must see every write committed before it was asked goes
// through [Node.ReadIndex](ctx, rctx), rctx being a unique id of the
// request. Once the read is safe, a Ready carries a [ReadState] with that
// rctx and an Index; the application serves the read from its state
// machine as soon as it has applied the log up to Index. The leader makes
// a read safe with one round of heartbeats acknowledged by a quorum, sent
// after the read arrived (reads that arrive together share the round), and
// only once it has committed an entry of its own term; a follower forwards
// its reads to the leader. A read still in flight with the same rctx is
// refused with [ErrReadInFlight]. A read whose answer cannot come (the
// leader changed, a message was lost) is given up without a ReadState, so
// no read ever spans a leader change; the application times out and asks
// again, with the same rctx if it likes once the earlier attempt was given
// up (until then ReadIndex refuses it with ErrReadInFlight; a late answer
// to the earlier attempt is recognized and ignored). A ReadState's
// RequestCtx is the rctx slice the application passed. With the option [LeaseReads] the leader answers at once while
// its lease holds, which rests on clocks that drift boundedly (see
// LeaseReads).
//
// # Leadership transfer
//
// [Node.TransferLeadership](ctx, to) hands leadership to voter to: the
// leader refuses proposals with ErrProposalDropped meanwhile, brings to up
// to date and tells it to campaign at once, in an election that pre-vote
// and the followers' leader lease do not hold back (to still waits until
// it has applied its committed config entries). It returns nil once this
// node knows to as leader, an error wrapping [ErrTransferRefused] for a
// learner or a non-member, [ErrNotLeader] on a follower, and
// [ErrTransferAbandoned] when the transfer did not complete within an
// election timeout. The call waits for Readys to be taken: make it from
// another goroutine than the loop. Transfer leadership away before
// removing the leader.
//
// # Status and logs
//
// [Node.Status] returns the node's id, term, vote, commit and applied
// indexes, leader and role, its voters and learners and, on the leader,
// each member's progress (match, next, state). It is safe from any
// goroutine and costs about a microsecond. With [WithLogger] the node logs
// through a *slog.Logger: elections, leader changes, membership changes,
// snapshots sent and restored, and leadership transfers, at Info, each with
// the node's id ("raft") and its term; nothing is logged per proposal.
//
// # Compaction
//
// The log grows without bound unless the application compacts it. Having
// applied the entries up to index, it takes a snapshot of its state machine
// and calls, from the loop,
//
//	err := n.Compact(index, voters, data)
//
// with voters the voting members at index. It then persists that snapshot:
// Index = index, Term = the term of the entry at index, Nodes = voters,
// Learners = the learners at index, and Data; after that it may drop its
// persisted entries up to index. Compact returns an error and changes
// nothing when index is beyond the last entry handed out for applying, not
// above the last snapshot, or when voters does not match the membership the
// node recorded at index. Compact may be called from inside the loop, for
// entries just handed out in CommittedEntries.
//
// After compacting, the application keeps the snapshot it made, the
// HardState and the entries after index; it may delete its persisted
// entries up to index and any older snapshot. On restart it passes that
// snapshot and those entries to [RestartNode], with the snapshot's Nodes
// as peers. A node that keeps its log in its own memory releases the
// entries it compacted; with [WithStorage], the application records the
// snapshot in its storage and drops them there.
//
// A follower that needs discarded entries is sent the latest snapshot
// instead, in a MsgSnap, and receives it in its rd.Snapshot; the leader
// stops replicating to it until it answers. The application says how
// sending went with [Node.ReportSnapshot] (SnapshotFinish or
// SnapshotFailure) and reports a message it could not deliver with
// [Node.ReportUnreachable]. A failed snapshot is sent again at the next
// heartbeat; one that is never reported on is given up and sent again
// within two election timeouts, so a lost snapshot never wedges a
// follower. A follower restores a snapshot only when it is beyond its
// commit index and its log does not already hold that index with that
// term; otherwise it keeps its log and only advances its commit index.
//
// # Large state
//
// The library never copies Snapshot.Data: the bytes given to Compact are
// the bytes in the leader's MsgSnap and in the follower's rd.Snapshot. An
// application whose state is gigabytes keeps Data small, a reference to
// its own files (the name and checksum of a checkpoint, say). Its
// transport, when it meets a MsgSnap, streams the files named in Data to
// the follower before delivering the message, and calls ReportSnapshot
// with the outcome; the follower's application, given rd.Snapshot, loads
// its state from the files named in Data.
//
// # Ownership
//
// Data passed to Propose, Configure or Compact becomes part of the log: the
// caller must not modify it after the call. Everything a Ready hands out may
// be kept by the application, but must not be modified; the library never
// modifies or reuses it either.
//
// # Errors
//
// Errors the application can act on are sentinels, to be tested with
// errors.Is:
//
//   - [ErrStopped]: the node was stopped; every call after [Node.Stop]
//     returns it, or returns at once when it has no result.
//   - [ErrProposalDropped]: a proposal the node knows it will not carry (a
//     membership change while another is pending, too many uncommitted
//     bytes, a leader that removed itself). Retry later, or elsewhere.
//   - [ErrInvalidMessage]: Step refused a message that cannot be sane (a
//     local-only type, no sender, addressed elsewhere, an impossible index).
//     A message from a node outside the membership is not refused: it may
//     come from a member this node has not learned of yet; a leader ignores
//     answers from non-members. Messages
//     from the network are never trusted: Step never panics, and whatever
//     arrives, a node's term and commit index never go back, a committed
//     entry is never truncated and no vote is given twice in a term.
//   - [ErrCannotCampaign]: Campaign on a node that may not campaign (a
//     learner, a removed node, a node with committed config entries not
//     yet applied); the wrapped message says which.
//   - [ErrReadInFlight], [ErrReadDropped]: ReadIndex with a request context
//     still in flight, or with no leader known.
//   - [ErrNotLeader], [ErrTransferRefused], [ErrTransferAbandoned]:
//     TransferLeadership asked of a follower, to a node that cannot lead,
//     or not completed in time.
//   - ctx.Err() when the caller's context ends first.
//
// Nothing panics except programming errors, with a message that names the
// mistake: id 0, heartbeat >= election, an id both voter and learner,
// inconsistent restart state (a gap in the entries, or a HardState that
// commits entries that were not persisted), a membership call with no config
// entry to tie it to, or a broken invariant of the application's storage.
//
// # Defaults
//
// The protections are on unless an option turns them off. Pre-vote: a node
// first asks whether it could win before it raises its term, so a member
// that was cut off cannot disrupt a healthy leader when it returns
// ([WithoutPreVote] turns it off). Check-quorum: a leader that has not heard
// from a quorum for an election timeout steps down ([WithoutCheckQuorum]).
// The rules that safety rests on (no campaign on an unapplied membership,
// the Joining rules) have no off switch. Other options bound the size of
// append messages and of the leader's uncommitted log, fix the random seed,
// and give the node a *slog.Logger.
package raft
