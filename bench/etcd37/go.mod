module github.com/raftly/raft/bench/etcd37

go 1.26.8

require (
	github.com/raftly/raft/bench v0.0.0-00010101000000-000000000000
	go.etcd.io/raft/v3 v3.7.0
	google.golang.org/protobuf v1.36.12
)

replace github.com/raftly/raft/bench => ../

replace github.com/raftly/raft => ../../
