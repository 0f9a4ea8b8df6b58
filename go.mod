module github.com/raftly/raft

go 1.26.8

require github.com/gogo/protobuf v1.3.2
