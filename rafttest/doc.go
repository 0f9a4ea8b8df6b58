// Package rafttest will hold the tools for testing code built on package
// raft without a wall clock or a real network: a deterministic cluster
// simulator, which owns what an application owns (the Ready loop, the disk,
// the state machine, the network and the clock) and drives RawNodes step by
// step from one seeded random source, so that a run is a pure function of
// its seed and a failing seed can be replayed; and checkers of Raft's safety
// properties over the runs it produces (one leader per term, committed
// entries never lost or changed, every member applying the same sequence).
//
// It is empty for now: the simulator and the checkers arrive with the
// second issue of the series (2/7).
package rafttest
