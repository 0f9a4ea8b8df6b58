package raft

import (
	"fmt"
	"strings"

	"github.com/raftly/raft/raftpb"
)

// DescribeEntry returns a one-line description of e: "Term/Index Type Data".
func DescribeEntry(e raftpb.Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d/%d", e.Term, e.Index)
	if e.Type == raftpb.EntryConfig {
		b.WriteString(" Config")
	}
	if len(e.Data) > 0 {
		fmt.Fprintf(&b, " %q", abbreviate(e.Data))
	}
	return b.String()
}

// DescribeMessage returns a one-line description of m, such as
// "1->2 MsgApp Term:2 Log:1/3 Commit:3 Entries:[2/4]".
func DescribeMessage(m raftpb.Message) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%x->%x %s Term:%d", m.From, m.To, m.Type, m.Term)
	if m.Index != 0 || m.LogTerm != 0 {
		fmt.Fprintf(&b, " Log:%d/%d", m.LogTerm, m.Index)
	}
	if m.Commit != 0 {
		fmt.Fprintf(&b, " Commit:%d", m.Commit)
	}
	if m.Reject {
		fmt.Fprintf(&b, " Rejected (Hint:%d)", m.RejectHint)
	}
	if len(m.Entries) > 0 {
		parts := make([]string, len(m.Entries))
		for i, e := range m.Entries {
			parts[i] = DescribeEntry(e)
		}
		fmt.Fprintf(&b, " Entries:[%s]", strings.Join(parts, ", "))
	}
	if s := m.Snapshot; !IsEmptySnap(s) {
		fmt.Fprintf(&b, " Snapshot:%d/%d Nodes:%v", s.Term, s.Index, s.Nodes)
		if len(s.Learners) > 0 {
			fmt.Fprintf(&b, " Learners:%v", s.Learners)
		}
	}
	return b.String()
}

func abbreviate(data []byte) string {
	const limit = 24
	if len(data) > limit {
		return string(data[:limit]) + "…"
	}
	return string(data)
}
