package raft

import (
	"fmt"
)

// ProgressState is how a leader replicates to one follower.
type ProgressState uint8

const (
	// ProgressProbe: the leader does not know where the follower's log
	// matches its own, and sends one append per heartbeat interval until
	// it finds out.
	ProgressProbe ProgressState = iota
	// ProgressReplicate: the follower's log matches up to Match; the leader
	// streams appends optimistically, up to a window of in-flight messages.
	ProgressReplicate
	// ProgressSnapshot: the follower needs entries that were compacted; the
	// leader has sent a snapshot and waits until it is applied or fails.
	ProgressSnapshot
)

func (s ProgressState) String() string {
	switch s {
	case ProgressProbe:
		return "probe"
	case ProgressReplicate:
		return "replicate"
	case ProgressSnapshot:
		return "snapshot"
	}
	return fmt.Sprintf("ProgressState(%d)", uint8(s))
}

// Progress is the leader's view of one follower.
//
// Invariant: Match < Next.
type Progress struct {
	Match, Next int64
	State       ProgressState
	// PendingSnapshot is the index of the snapshot being sent, in
	// ProgressSnapshot.
	PendingSnapshot int64
	// ProbeSent: in ProgressProbe, an append is in flight and no other is
	// sent until a response or the next heartbeat response.
	ProbeSent bool
	// RecentActive: the follower was heard from since the last quorum check.
	RecentActive bool
	// Commit is the highest commit index the follower reported knowing.
	Commit int64
	// snapshotAge counts election timeouts spent in ProgressSnapshot.
	snapshotAge int
	// leaseFrom is the leader's tick when it sent the latest heartbeat the
	// follower answered (0: none in this term).
	leaseFrom int64
	inflights inflights
}

func (pr *Progress) String() string {
	return fmt.Sprintf("%s match=%d next=%d inflight=%d", pr.State, pr.Match, pr.Next, pr.inflights.count)
}

func (pr *Progress) becomeProbe() {
	if pr.State == ProgressSnapshot {
		// Resume after the snapshot, whether or not it arrived.
		pr.Next = max(pr.Match+1, pr.PendingSnapshot+1)
	} else {
		pr.Next = pr.Match + 1
	}
	pr.State = ProgressProbe
	pr.PendingSnapshot = 0
	pr.ProbeSent = false
	pr.inflights.reset()
}

func (pr *Progress) becomeReplicate() {
	pr.State = ProgressReplicate
	pr.Next = pr.Match + 1
	pr.PendingSnapshot = 0
	pr.ProbeSent = false
	pr.inflights.reset()
}

func (pr *Progress) becomeSnapshot(index int64) {
	pr.State = ProgressSnapshot
	pr.PendingSnapshot = index
	pr.snapshotAge = 0
	pr.ProbeSent = false
	pr.inflights.reset()
}

// maybeUpdate records that the follower's log matches up to n; it reports
// whether Match grew.
func (pr *Progress) maybeUpdate(n int64) bool {
	updated := n > pr.Match
	if updated {
		pr.Match = n
		pr.ProbeSent = false
	}
	pr.Next = max(pr.Next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the append at index rejected; next is
// where the leader should try next. It reports false for a stale rejection.
func (pr *Progress) maybeDecrTo(rejected, next int64) bool {
	if pr.State == ProgressReplicate {
		// Only a rejection of a still-relevant append counts.
		if rejected <= pr.Match {
			return false
		}
		pr.Next = pr.Match + 1
		return true
	}
	// In probe, only the last probe sent can be rejected meaningfully; a
	// rejection at or below Match contradicts the follower's own
	// acknowledgement, and is retried only at the next heartbeat response.
	if pr.Next-1 != rejected || rejected <= pr.Match {
		return false
	}
	pr.Next = max(min(rejected, next+1), pr.Match+1)
	pr.ProbeSent = false
	return true
}

// paused reports whether the leader must hold further appends.
func (pr *Progress) paused() bool {
	switch pr.State {
	case ProgressProbe:
		return pr.ProbeSent
	case ProgressReplicate:
		return pr.inflights.full()
	}
	return true
}

// sentEntries updates the progress after an append that carried entries up
// to last and bytes of entries.
func (pr *Progress) sentEntries(last, bytes int64) {
	switch pr.State {
	case ProgressReplicate:
		pr.Next = last + 1
		pr.inflights.add(last, bytes)
	case ProgressProbe:
		pr.ProbeSent = true
	}
}

// inflights is a bounded window of appends in flight to one follower,
// by count and by bytes, as a ring buffer.
type inflights struct {
	maxCount int
	maxBytes int64

	start, count int
	bytes        int64
	index        []int64 // last entry index of each append, ring
	size         []int64
}

func newInflights(maxCount int, maxBytes int64) inflights {
	return inflights{maxCount: maxCount, maxBytes: maxBytes}
}

func (in *inflights) full() bool {
	return in.count == in.maxCount || (in.maxBytes > 0 && in.bytes >= in.maxBytes)
}

func (in *inflights) add(index, bytes int64) {
	if in.index == nil {
		in.index = make([]int64, in.maxCount)
		in.size = make([]int64, in.maxCount)
	}
	if in.count == in.maxCount {
		panic("raft: invariant broken: adding to a full in-flight window")
	}
	k := (in.start + in.count) % in.maxCount
	in.index[k], in.size[k] = index, bytes
	in.count++
	in.bytes += bytes
}

// freeLE releases every append whose last index is <= index.
func (in *inflights) freeLE(index int64) {
	for in.count > 0 && in.index[in.start] <= index {
		in.bytes -= in.size[in.start]
		in.start = (in.start + 1) % in.maxCount
		in.count--
	}
	if in.count == 0 {
		in.start = 0
	}
}

// freeFirst releases the oldest append.
func (in *inflights) freeFirst() {
	if in.count > 0 {
		in.freeLE(in.index[in.start])
	}
}

func (in *inflights) reset() {
	in.start, in.count, in.bytes = 0, 0, 0
}
