// Package raftkv is the reference application of package raft: a
// replicated key-value store served over HTTP, its log kept in raftstore,
// its nodes talking over net/http. It is written only against the public
// APIs of raft and raftstore, as any application would be; the command
// cmd/raftkv runs one server process.
//
// # Running a cluster
//
// Three processes on one machine:
//
//	raftkv -id 1 -cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 -listen 127.0.0.1:8001 -data /tmp/kv1
//	raftkv -id 2 -cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 -listen 127.0.0.1:8002 -data /tmp/kv2
//	raftkv -id 3 -cluster 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003 -listen 127.0.0.1:8003 -data /tmp/kv3
//
// -cluster names the first members and the address each listens on for
// its peers (-peer-listen, by default its own entry). A node restarted
// with the same -data comes back from its store; -cluster then only
// supplies addresses it has not learned from its log.
//
// A fourth node joins a running cluster with -join, the client address of
// any member, instead of -cluster:
//
//	raftkv -id 4 -join 127.0.0.1:8001 -peer-listen 127.0.0.1:7004 -listen 127.0.0.1:8004 -data /tmp/kv4
//
// It asks that member to add it (POST /members/4), starts as a learner,
// and the leader promotes it to voter once it has caught up. Restart it
// with the same flags: -join is ignored once the data directory holds a
// node.
//
// Other flags: -snapshot-every (applied entries between snapshots of the
// store, 10,000), -tick (the Raft tick, 10ms; an election timeout is 10
// ticks, a heartbeat 1), -request-timeout (the deadline of a client
// request, 5s), -log-level, and -test-faults (below).
//
// # Client API (on -listen)
//
//	PUT    /kv/{key}      body: the value. 204 once committed and applied.
//	GET    /kv/{key}      200 with the value, 404 when absent. Linearizable
//	                      (read index) unless ?stale=true, which reads the
//	                      node's local state.
//	DELETE /kv/{key}      204 once committed and applied (absent or not).
//	POST   /batch         body: operations in package client/wire's binary
//	                      encoding. 200 with one result per operation, in
//	                      order (below).
//	GET    /status        200, JSON: id, term, leader, role, commit, applied,
//	                      snapshot (the index of the latest snapshot kept),
//	                      voters, learners, peers (id -> peer address).
//	POST   /members/{id}  body JSON {"peer": "host:port"}: adds node id as a
//	                      learner; 200 with JSON {id, index, voters,
//	                      learners, peers} once the change is applied
//	                      (index: the entry that added it).
//	DELETE /members/{id}  removes node id; 200 with the same JSON.
//
// Keys are 1 to 1024 bytes, values at most 1 MiB. A key is the rest of the
// path, unescaped: a key with "//", "." or ".." segments must be escaped,
// since the router answers a path that is not clean with a redirect. Any node serves any
// request: writes and linearizable reads go through the leader. Errors are
// a status and a one-line text/plain message: 400 for a malformed request,
// 404 for an unknown route or key, 405 for a method a route does not take,
// 413 for a key or value too large, 409 for a membership change that the
// membership refuses (adding a node that is a member, removing one that is
// not), 503 when no
// leader is known, another membership change is in progress, or the
// request was refused (nothing was written), 504 when the deadline passed
// with the outcome unknown (the write may still be applied).
//
// # Batches
//
// POST /batch carries independent operations, not a transaction: put,
// delete, get (linearizable) and get-stale, each answered as its
// single-key route would be (its status, and the value or the one-line
// message), so that one request serves many callers; package client
// batches the concurrent calls made to one node this way. The writes of
// a batch are proposed together, as one log entry, and answered together
// once it is applied (or all refused, or all of unknown outcome); its
// linearizable gets share one read index, asked after the batch arrived.
//
// The encoding (package client/wire has it in full, with its limits): a
// request is a version byte (1), a uvarint count (1 to 1024), then per
// operation a kind byte (1 put, 2 delete, 3 get, 4 get-stale), the key
// (uvarint length and bytes) and, for a put, the value (likewise). The
// answer is a version byte (1), the same count, then per operation its
// status (uvarint) and its body (uvarint length and bytes). Varints are
// minimal and nothing follows the last entry. A body that breaks the
// encoding is answered 400, one of more than 1024 operations or 4 MiB
// 413, as a whole, with a one-line message, and nothing of it is done; an
// operation whose key or value breaks the limits above gets its own 400
// or 413, and the others are done.
//
// With -test-faults, POST /debug/faults takes JSON {"block": [ids]}: the
// transport drops every message to and from those peers until the next
// call ({"block": []} heals). Without the flag the route does not exist.
package raftkv
