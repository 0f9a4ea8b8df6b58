module github.com/raftly/raft/rafttest/lincheck

go 1.26.8

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/raftly/raft v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.11.1
)

require (
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/raftly/raft => ../..
