package raft

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// Unit tests of the leader's per-follower progress (progress.go): the ring
// of in-flight appends and the probe/replicate/snapshot states (thesis
// §10.2 flow control; §5.3 for the follower's next index).

// inflightsContent returns the last indexes held, oldest first.
func inflightsContent(in *inflights) []int64 {
	var out []int64
	for k := 0; k < in.count; k++ {
		out = append(out, in.index[(in.start+k)%in.maxCount])
	}
	return out
}

// The window is full at maxCount appends; freeLE releases every append up
// to an index, in order, and the ring wraps around its array.
func TestInflightsAddFreeByCount(t *testing.T) {
	in := newInflights(4, 0)
	require.False(t, in.full())
	for i := int64(1); i <= 4; i++ {
		require.False(t, in.full(), "full after %d", i-1)
		in.add(i, 10)
	}
	require.True(t, in.full())
	require.Panics(t, func() { in.add(5, 10) }, "adding to a full window is a broken invariant")

	in.freeLE(2)
	require.Equal(t, []int64{3, 4}, inflightsContent(&in))
	require.False(t, in.full())
	in.add(5, 10)
	in.add(6, 10) // wraps around the array
	require.True(t, in.full())
	require.Equal(t, []int64{3, 4, 5, 6}, inflightsContent(&in))

	in.freeLE(2) // stale: nothing below 3 is held
	require.Equal(t, 4, in.count)
	in.freeLE(5)
	require.Equal(t, []int64{6}, inflightsContent(&in))
	in.freeFirst()
	require.Zero(t, in.count)
	require.Zero(t, in.bytes)
	in.freeFirst() // on an empty window: nothing
	require.Zero(t, in.count)

	in.add(7, 1)
	in.add(8, 1)
	in.reset()
	require.Zero(t, in.count)
	require.Zero(t, in.bytes)
	require.False(t, in.full())
}

// With maxBytes the window is also full once the appends in flight carry
// that many bytes; releasing one makes room again.
func TestInflightsFullByBytes(t *testing.T) {
	in := newInflights(10, 100)
	in.add(1, 60)
	require.False(t, in.full())
	in.add(2, 30)
	require.False(t, in.full())
	in.add(3, 10)
	require.True(t, in.full(), "90+10 bytes >= 100")
	require.Equal(t, int64(100), in.bytes)
	in.freeLE(1)
	require.Equal(t, int64(40), in.bytes)
	require.False(t, in.full())
	in.add(4, 500) // one large append fills it alone
	require.True(t, in.full())
	in.freeFirst()
	require.Equal(t, []int64{3, 4}, inflightsContent(&in))
	require.Equal(t, int64(510), in.bytes)
	in.freeLE(4)
	require.Zero(t, in.bytes)
	require.False(t, in.full())
}

// The ring behaves like a plain FIFO queue (a deliberately naive model)
// over many random operations.
func TestInflightsMatchesQueueModel(t *testing.T) {
	seed := uint64(20240601)
	rng := rand.New(rand.NewPCG(seed, 1))
	for round := 0; round < 200; round++ {
		maxCount := 1 + rng.IntN(6)
		maxBytes := int64(0)
		if rng.IntN(2) == 0 {
			maxBytes = int64(1 + rng.IntN(50))
		}
		in := newInflights(maxCount, maxBytes)
		type sent struct{ index, bytes int64 }
		var model []sent
		next := int64(1)
		for op := 0; op < 100; op++ {
			var modelBytes int64
			for _, s := range model {
				modelBytes += s.bytes
			}
			modelFull := len(model) == maxCount || (maxBytes > 0 && modelBytes >= maxBytes)
			require.Equal(t, modelFull, in.full(), "seed %d round %d op %d", seed, round, op)
			switch k := rng.IntN(4); {
			case k < 2 && !modelFull:
				b := int64(rng.IntN(20))
				next += int64(1 + rng.IntN(3))
				in.add(next, b)
				model = append(model, sent{next, b})
			case k == 2:
				upTo := next - int64(rng.IntN(6))
				in.freeLE(upTo)
				for len(model) > 0 && model[0].index <= upTo {
					model = model[1:]
				}
			default:
				in.freeFirst()
				if len(model) > 0 {
					model = model[1:]
				}
			}
			var want []int64
			var wantBytes int64
			for _, s := range model {
				want = append(want, s.index)
				wantBytes += s.bytes
			}
			require.Equal(t, want, inflightsContent(&in), "seed %d round %d op %d", seed, round, op)
			require.Equal(t, wantBytes, in.bytes, "seed %d round %d op %d", seed, round, op)
		}
	}
}

// State transitions: probe and replicate resume after Match (§5.3: the
// leader's nextIndex for a follower); leaving a snapshot resumes after the
// snapshot sent; every transition empties the window and clears ProbeSent.
func TestProgressStateTransitions(t *testing.T) {
	tests := []struct {
		name     string
		from     Progress
		to       func(pr *Progress)
		want     ProgressState
		wantNext int64
	}{
		{"replicate to probe", Progress{State: ProgressReplicate, Match: 5, Next: 9},
			func(pr *Progress) { pr.becomeProbe() }, ProgressProbe, 6},
		{"probe to replicate", Progress{State: ProgressProbe, Match: 5, Next: 6, ProbeSent: true},
			func(pr *Progress) { pr.becomeReplicate() }, ProgressReplicate, 6},
		{"snapshot to probe", Progress{State: ProgressSnapshot, Match: 2, Next: 3, PendingSnapshot: 10},
			func(pr *Progress) { pr.becomeProbe() }, ProgressProbe, 11},
		{"snapshot to probe, match beyond it", Progress{State: ProgressSnapshot, Match: 12, Next: 13, PendingSnapshot: 10},
			func(pr *Progress) { pr.becomeProbe() }, ProgressProbe, 13},
		{"probe to snapshot", Progress{State: ProgressProbe, Match: 2, Next: 3, ProbeSent: true},
			func(pr *Progress) { pr.becomeSnapshot(10) }, ProgressSnapshot, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := tc.from
			pr.inflights = newInflights(4, 0)
			pr.inflights.add(7, 1)
			tc.to(&pr)
			require.Equal(t, tc.want, pr.State)
			require.Equal(t, tc.wantNext, pr.Next)
			require.False(t, pr.ProbeSent)
			require.Zero(t, pr.inflights.count)
			if tc.want == ProgressSnapshot {
				require.Equal(t, int64(10), pr.PendingSnapshot)
				require.True(t, pr.paused(), "nothing is sent while the snapshot is in flight")
			} else {
				require.Zero(t, pr.PendingSnapshot)
			}
		})
	}
}

// maybeUpdate raises Match (never lowers it) and keeps Next after it.
func TestProgressMaybeUpdate(t *testing.T) {
	tests := []struct {
		match, next, n      int64
		want                bool
		wantMatch, wantNext int64
	}{
		{5, 6, 4, false, 5, 6}, // stale
		{5, 6, 5, false, 5, 6}, // same
		{5, 6, 7, true, 7, 8},
		{5, 10, 7, true, 7, 10}, // replicate: Next already beyond
	}
	for _, tc := range tests {
		pr := Progress{Match: tc.match, Next: tc.next, ProbeSent: true}
		require.Equal(t, tc.want, pr.maybeUpdate(tc.n), "%+v", tc)
		require.Equal(t, tc.wantMatch, pr.Match, "%+v", tc)
		require.Equal(t, tc.wantNext, pr.Next, "%+v", tc)
		require.Equal(t, !tc.want, pr.ProbeSent, "an update unpauses a probe: %+v", tc)
	}
}

// maybeDecrTo handles a rejection: in replicate, one of an append beyond
// Match sends Next back after Match; in probe, only the rejection of the
// last probe counts, and Next moves to the hint (+1) but never at or below
// Match. A stale rejection changes nothing.
func TestProgressMaybeDecrTo(t *testing.T) {
	tests := []struct {
		name           string
		state          ProgressState
		match, next    int64
		rejected, hint int64
		want           bool
		wantNext       int64
	}{
		{"replicate", ProgressReplicate, 5, 10, 9, 7, true, 6},
		{"replicate stale", ProgressReplicate, 5, 10, 5, 2, false, 10},
		{"replicate older than match", ProgressReplicate, 5, 10, 3, 2, false, 10},
		{"probe", ProgressProbe, 0, 10, 9, 4, true, 5},
		{"probe hint beyond", ProgressProbe, 0, 10, 9, 20, true, 9},
		{"probe hint below match", ProgressProbe, 5, 10, 9, 2, true, 6},
		{"probe not the last probe", ProgressProbe, 0, 10, 7, 4, false, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr := Progress{State: tc.state, Match: tc.match, Next: tc.next, ProbeSent: true, inflights: newInflights(4, 0)}
			require.Equal(t, tc.want, pr.maybeDecrTo(tc.rejected, tc.hint))
			require.Equal(t, tc.wantNext, pr.Next)
			require.Greater(t, pr.Next, pr.Match, "invariant Match < Next")
			if tc.state == ProgressProbe {
				require.Equal(t, !tc.want, pr.ProbeSent, "a counted rejection unpauses the probe")
			}
		})
	}
}

// sentEntries: in replicate, Next moves past what was sent and the window
// fills; in probe, the probe pauses the follower until an answer.
func TestProgressSentEntriesAndPaused(t *testing.T) {
	pr := Progress{State: ProgressReplicate, Match: 5, Next: 6, inflights: newInflights(2, 0)}
	require.False(t, pr.paused())
	pr.sentEntries(8, 3)
	require.Equal(t, int64(9), pr.Next)
	require.False(t, pr.paused())
	pr.sentEntries(9, 1)
	require.Equal(t, int64(10), pr.Next)
	require.True(t, pr.paused(), "window of 2 full")
	pr.inflights.freeLE(8)
	require.False(t, pr.paused())

	pr = Progress{State: ProgressProbe, Match: 5, Next: 6, inflights: newInflights(2, 0)}
	require.False(t, pr.paused())
	pr.sentEntries(8, 3)
	require.Equal(t, int64(6), pr.Next, "a probe does not move Next")
	require.True(t, pr.paused())
	require.Zero(t, pr.inflights.count)
	require.True(t, pr.maybeUpdate(8))
	require.False(t, pr.paused())
}
