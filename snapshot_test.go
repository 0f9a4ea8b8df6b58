package raft

import (
	"fmt"
	"slices"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// Tests of snapshots between leader and follower: how sending them goes
// (ReportSnapshot, ReportUnreachable, a lost snapshot), what the follower
// persists, and restarting after a crash while persisting one.

// laggingFollower returns a 3-node cluster led by node 1 in which node 3
// missed entries that node 1 then compacted away, and the snapshot data
// node 1 compacted with. Node 3 is reachable again.
func laggingFollower(t *testing.T) (*network, []byte) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	nw.isolate(3)
	for i := range 5 {
		require.NoError(t, nw.propose(1, fmt.Sprint("e", i)))
	}
	lead := nw.nodes[1]
	data := []byte("state up to the compaction")
	require.NoError(t, lead.rn.Compact(lead.appliedIndex, []int64{1, 2, 3}, data))
	nw.heal()
	return nw, data
}

// snapshotsSent counts the MsgSnap messages node 1 hands out from now on.
func snapshotsSent(nw *network) *[]raftpb.Message {
	var sent []raftpb.Message
	nw.observe = func(id int64, rd Ready) {
		for _, m := range rd.Messages {
			if m.Type == raftpb.MsgSnap {
				sent = append(sent, m)
			}
		}
	}
	return &sent
}

func progressOf(nw *network, leader, id int64) Progress {
	return nw.nodes[leader].rn.Status().Progress[id]
}

func requireCaughtUp(t *testing.T, nw *network, id int64) {
	t.Helper()
	lead := nw.nodes[nw.leader()]
	n := nw.nodes[id]
	require.Equal(t, lead.appliedIndex, n.appliedIndex, "node %x applied up to the leader's index", id)
	// The same entry there, so the same log up to it (log matching).
	require.Equal(t, lead.rn.raft.log.termOrZero(lead.appliedIndex), n.rn.raft.log.termOrZero(n.appliedIndex))
}

// A snapshot whose sending failed (ReportSnapshot with SnapshotFailure) is
// sent again at the next heartbeat, and the follower catches up.
func TestSnapshotFailedSendIsRetried(t *testing.T) {
	nw, _ := laggingFollower(t)
	sent := snapshotsSent(nw)
	nw.drop = func(m raftpb.Message) bool { return m.Type == raftpb.MsgSnap }
	nw.tick(1)
	require.Len(t, *sent, 1)
	require.Equal(t, ProgressSnapshot, progressOf(nw, 1, 3).State)

	nw.nodes[1].rn.ReportSnapshot(3, SnapshotFailure)
	require.Equal(t, ProgressProbe, progressOf(nw, 1, 3).State, "a failed snapshot ends the snapshot state")
	nw.drop = nil
	nw.tick(1)
	require.Len(t, *sent, 2, "the snapshot is sent again at the next heartbeat")
	requireCaughtUp(t, nw, 3)
	require.Equal(t, ProgressReplicate, progressOf(nw, 1, 3).State)
}

// A snapshot lost without any report does not wedge the follower: the
// leader gives it up after at most two election timeouts and sends it again.
func TestSnapshotLostWithoutReportIsRetried(t *testing.T) {
	nw, _ := laggingFollower(t)
	sent := snapshotsSent(nw)
	nw.drop = func(m raftpb.Message) bool { return m.Type == raftpb.MsgSnap }
	nw.tick(1)
	require.Len(t, *sent, 1)
	nw.drop = nil
	ticks := 0
	for len(*sent) == 1 {
		require.Less(t, ticks, 2*10, "no new snapshot within two election timeouts")
		nw.tick(1)
		ticks++
	}
	require.GreaterOrEqual(t, ticks, 10-1, "the snapshot was given up before an election timeout")
	requireCaughtUp(t, nw, 3)
}

// ReportSnapshot with SnapshotFinish, before the follower's answer: the
// leader probes from after the snapshot, sends no second one, and
// replication resumes once the follower answers.
func TestSnapshotFinishedResumesAfterIt(t *testing.T) {
	nw, _ := laggingFollower(t)
	sent := snapshotsSent(nw)
	snapDelivered, answerLost := false, false
	nw.drop = func(m raftpb.Message) bool {
		// The follower's first answer after the snapshot is lost.
		switch {
		case m.Type == raftpb.MsgSnap:
			snapDelivered = true
		case snapDelivered && !answerLost && m.From == 3 && m.Type == raftpb.MsgAppResp:
			answerLost = true
			return true
		}
		return false
	}
	nw.tick(1)
	require.Len(t, *sent, 1)
	snapIndex := (*sent)[0].Snapshot.Index
	require.Equal(t, snapIndex, nw.nodes[3].appliedIndex, "node 3 restored the snapshot")
	require.Equal(t, ProgressSnapshot, progressOf(nw, 1, 3).State, "its answer was lost")

	nw.nodes[1].rn.ReportSnapshot(3, SnapshotFinish)
	pr := progressOf(nw, 1, 3)
	require.Equal(t, ProgressProbe, pr.State)
	require.Equal(t, snapIndex+1, pr.Next, "probing resumes after the snapshot")
	require.NoError(t, nw.propose(1, "after"))
	nw.tick(2)
	require.Len(t, *sent, 1, "no second snapshot")
	require.Equal(t, ProgressReplicate, progressOf(nw, 1, 3).State)
	requireCaughtUp(t, nw, 3)
}

// ReportUnreachable makes the leader stop streaming to the follower and
// probe it instead; the next answer resumes replication.
func TestReportUnreachableProbes(t *testing.T) {
	nw := newNetwork(t, []int64{1, 2, 3})
	nw.campaign(1)
	require.NoError(t, nw.propose(1, "a"))
	require.Equal(t, ProgressReplicate, progressOf(nw, 1, 2).State)
	nw.nodes[1].rn.ReportUnreachable(2)
	require.Equal(t, ProgressProbe, progressOf(nw, 1, 2).State)
	require.NoError(t, nw.propose(1, "b"))
	require.Equal(t, ProgressReplicate, progressOf(nw, 1, 2).State)
	requireCaughtUp(t, nw, 2)
}

// Snapshot data is never copied on its way: the leader's message carries
// the very bytes given to Compact, and the follower's rd.Snapshot the bytes
// of the message it received.
func TestSnapshotDataIsNotCopied(t *testing.T) {
	nw, data := laggingFollower(t)
	var sent, restored []raftpb.Snapshot
	nw.observe = func(id int64, rd Ready) {
		for _, m := range rd.Messages {
			if m.Type == raftpb.MsgSnap {
				sent = append(sent, m.Snapshot)
			}
		}
		if !IsEmptySnap(rd.Snapshot) {
			restored = append(restored, rd.Snapshot)
		}
	}
	nw.tick(1)
	require.Len(t, sent, 1)
	require.Len(t, restored, 1)
	require.Same(t, &data[0], &sent[0].Data[0], "the leader's message copied the data")
	require.Same(t, &data[0], &restored[0].Data[0], "the follower's Ready copied the data")
	requireCaughtUp(t, nw, 3)
}

// A follower's Ready that carries a snapshot, entries after it and the
// HardState committing them can be cut short by a crash after any prefix of
// Snapshot, Entries, State reached the disk; the restarted node takes what
// is there and catches up.
func TestSnapshotReadyCrashAnywhereWhilePersisting(t *testing.T) {
	for persisted := 0; persisted <= 3; persisted++ {
		t.Run(fmt.Sprintf("%d of snapshot, entries, state", persisted), func(t *testing.T) {
			nw, _ := laggingFollower(t)
			for _, d := range []string{"x", "y"} {
				require.NoError(t, nw.nodes[1].rn.Propose([]byte(d)))
			}
			var snapMsg raftpb.Message
			nw.drop = func(m raftpb.Message) bool {
				if m.Type == raftpb.MsgSnap {
					snapMsg = m
					return true
				}
				return false
			}
			nw.tick(1)
			require.Equal(t, raftpb.MsgSnap, snapMsg.Type)
			nw.drop = nil

			// Node 3 receives the snapshot and the entries after it before
			// its loop runs: one Ready holds all three.
			lead, n3 := nw.nodes[1], nw.nodes[3]
			snap := snapMsg.Snapshot
			after, err := lead.rn.raft.log.slice(snap.Index+1, lead.rn.raft.log.lastIndex()+1, 0)
			require.NoError(t, err)
			require.NoError(t, n3.rn.Step(snapMsg))
			require.NoError(t, n3.rn.Step(raftpb.Message{
				Type: raftpb.MsgApp, From: 1, To: 3, Term: lead.rn.raft.term,
				Index: snap.Index, LogTerm: snap.Term, Entries: after, Commit: lead.rn.raft.log.committed,
			}))
			rd := n3.rn.Ready()
			require.False(t, IsEmptySnap(rd.Snapshot))
			require.NotEmpty(t, rd.Entries)
			require.False(t, IsEmptyHardState(rd.State))

			disk := n3.disk
			disk.ents = slices.Clone(disk.ents)
			if persisted >= 1 {
				disk.snap, disk.ents = rd.Snapshot, nil
			}
			if persisted >= 2 {
				disk.ents = slices.Clone(rd.Entries)
			}
			if persisted >= 3 {
				disk.hs = rd.State
			}
			n3.disk = disk
			nw.crash(3)
			nw.restart(3)
			// The leader hears nothing of its snapshot: it sends it again
			// within two election timeouts, if node 3 still needs it.
			nw.tick(2 * 10)
			require.NoError(t, nw.propose(1, "z"))
			requireCaughtUp(t, nw, 3)
			require.Equal(t, lead.rn.raft.log.committed, n3.rn.raft.log.committed)
		})
	}
}
