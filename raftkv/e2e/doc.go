// Package e2e runs raftkv as real processes: it builds the command
// cmd/raftkv, starts nodes on 127.0.0.1 with their data and logs under one
// directory, kills (SIGKILL), stops (SIGTERM) and restarts them, and talks
// to them over the client API of package raftkv. Its tests drive such
// clusters end to end (linearizability under a nemesis, bad input,
// membership changes); cmd/raftkv-demo uses it to show a leader failure.
//
// A caller's duties, in order:
//
//  1. Build the binary once (Build, with the directory FindModule gives),
//     or take one already built.
//  2. New(Config) picks free ports and lays out the nodes; Start starts
//     them. Join adds a node to a running cluster with -join.
//  3. Drive the nodes (Node.Kill, Node.Stop, Node.Start) and talk to them
//     with a Client; Cluster.Leader polls /status for a leader.
//  4. Close stops every process still running, whatever happened before:
//     call it on every path (defer, t.Cleanup). Each process runs in a
//     process group of its own, killed as a whole; on Linux a process is
//     also killed if the thread that started it dies, so that a crashed
//     caller leaves nothing behind.
//
// A process that exits without the harness asking is recorded
// (Node.Unexpected): a test checks there are none, and Node.LogTail shows
// what the process wrote.
package e2e
