package hashicorp

import (
	"testing"

	"github.com/raftly/raft/bench/workload/adaptertest"
)

func TestAdapter(t *testing.T) { adaptertest.Run(t, Library()) }
