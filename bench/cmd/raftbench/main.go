// Command raftbench runs one benchmark workload against one library and
// prints the result as JSON; bench/cmd/benchrun starts it once per
// measurement. It holds this repository's library, etcd raft v3.6 and
// hashicorp raft (etcd raft v3.7 needs a build of its own: bench/etcd37).
package main

import (
	"github.com/raftly/raft/bench/adapters/etcd36"
	"github.com/raftly/raft/bench/adapters/hashicorp"
	"github.com/raftly/raft/bench/adapters/ours"
	"github.com/raftly/raft/bench/workload"
)

func main() {
	workload.Main(ours.Library(), etcd36.Library(), hashicorp.Library())
}
