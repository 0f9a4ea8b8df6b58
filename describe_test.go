package raft

import (
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

func TestDescribeMessage(t *testing.T) {
	m := raftpb.Message{From: 1, To: 2, Type: raftpb.MsgApp, Term: 2, LogTerm: 1, Index: 3, Commit: 3,
		Entries: []raftpb.Entry{{Term: 2, Index: 4, Data: []byte("x")}, {Term: 2, Index: 5, Type: raftpb.EntryConfig}}}
	require.Equal(t, `1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4 "x", 2/5 Config]`, DescribeMessage(m))
	r := raftpb.Message{From: 2, To: 1, Type: raftpb.MsgAppResp, Term: 2, Index: 3, Reject: true, RejectHint: 1, LogTerm: 1}
	require.Equal(t, "2->1 MsgAppResp Term:2 Log:1/3 Rejected (Hint:1)", DescribeMessage(r))
}
