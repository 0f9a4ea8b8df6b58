// Command raftbench-etcd37 runs one benchmark workload against etcd raft
// v3.7; see workload.Main for its flags.
package main

import (
	"github.com/raftly/raft/bench/etcd37"
	"github.com/raftly/raft/bench/workload"
)

func main() { workload.Main(etcd37.Library()) }
