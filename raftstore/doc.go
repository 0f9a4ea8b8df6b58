// Package raftstore is durable storage for the Raft log of package raft,
// on Pebble, that an application can use as it is.
//
// One [DB] is one Pebble instance in one directory. It holds any number of
// Raft groups, each under its own key prefix, so that the groups of a
// process share one write-ahead log and its syncs: Pebble's commit
// pipeline makes the synced writes of groups that save at the same time
// wait for one sync together (group commit).
//
// A group is opened with [DB.Group], which returns its [Store] and the
// [State] the node restarts from:
//
//	db, err := raftstore.Open(dir, nil)
//	store, st, err := db.Group(1)
//	if !st.Bootstrapped {
//		// A new group: record how it starts, then start it.
//		err = store.Bootstrap(peers, nil, 0)
//		n = raft.StartNode(id, peers, 10, 1, raft.WithStorage(store))
//	} else {
//		n = raft.RestartNode(id, st.Peers, 10, 1, st.Snapshot, st.HardState, nil,
//			raft.WithStorage(store), raft.Learners(st.Learners...), raft.Joining(st.Joining))
//	}
//
// and the application's loop persists each Ready with one call before it
// applies and sends:
//
//	rd := <-n.Ready()
//	if err := store.Save(rd); err != nil { ... } // one atomic, synced write
//	apply(rd.CommittedEntries)
//	store.SetApplied(lastApplied) // written with the next Save
//	send(rd.Messages)
//
// A Store is a [raft.CompactingStorage]: [raft.Node.Compact] hands it the
// snapshot it makes, and [Store.Compact] records it and drops the entries
// it covers (an application that runs a RawNode without WithStorage may
// call Store.Compact itself).
//
// A Store implements [raft.Storage]: with [raft.WithStorage] the node reads
// old entries from it, so the node's memory holds only what is in flight.
// The store keeps the most recent entries of each group in a small bounded
// cache, so that the node's hot reads (entries committed just after they
// were persisted, appends to followers that keep up) rarely reach Pebble.
//
// # Layout
//
// A group's keys share its prefix. The entries of one Save are stored
// together as one block, keyed by the index of the first: a Save costs
// Pebble one key whatever its number of entries. A Save that replaces a
// suffix deletes the blocks that start at or after its first index and
// writes its own there, which hides the rest of the block before it;
// Compact deletes the blocks that lie wholly at or below the snapshot
// (DeleteRange). The HardState, the snapshot (its metadata and Data: keep
// Data small, a reference to the application's own files, when the state
// is large), the applied index and the bootstrap record are one key each.
//
// # Durability and errors
//
// Every Save, Compact and Bootstrap is one atomic Pebble batch, synced
// before the call returns: after a crash the store holds every call that
// returned, and of the call in progress all or nothing. The one exception
// is a Save that only raises the commit index (no snapshot, no entries,
// the same term and vote): Raft does not need the commit index durable,
// so it is not waited for, and after a crash the store may hold an older
// commit index until a later synced write made it durable. Input that would
// leave an invalid Raft log (a gap, entries that do not follow the log or
// replace committed ones, a HardState that goes back or commits entries
// the log lacks, a snapshot older than the stored one) is refused with an
// error wrapping [ErrInvalid] before anything is written.
//
// Damage to the files is reported, not hidden, with the name of the
// damaged file where it can be known. Pebble checksums its log, its
// tables and its manifest. Opening a group reads its whole log, so that a
// damaged table is found then, and checks that the log is valid Raft:
// contiguous after the snapshot, terms that never go down, a commit index
// within it. When replaying its log after a crash, Pebble tells a torn end
// (a write that was in progress, never acknowledged) from damage by the
// synced offsets that every later record carries: damage followed by
// later records is an error. [DB.Close] records what each group holds in
// a small checksummed file beside Pebble's; the next Open checks every
// group against it, so that a closed store whose log, manifest or tables
// were truncated or rolled back fails to open rather than come back with
// less. What remains: after a crash (no clean close), damage to the last
// records of the last log (within its final 32 KiB block), or a
// truncation of it, looks to Pebble like a torn write and is dropped.
package raftstore
