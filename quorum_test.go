package raft

import (
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The quorum arithmetic (quorum.go) checked against deliberately naive
// reference implementations, written from the definitions rather than for
// speed, over many random cases. A failure prints the seed; replay it with
// -quorum.seed.

var quorumSeed = flag.Uint64("quorum.seed", 0, "replay one seed of the quorum tests (0: a new random seed)")

func quorumRand(t *testing.T) (*rand.Rand, uint64) {
	seed := *quorumSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -quorum.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed>>1^0x5eed)), seed
}

// isMajority: more than half of n. (By definition, not by formula.)
func isMajority(count, n int) bool { return count*2 > n }

// naiveCommittedIndex tries every index some voter has and keeps the
// largest that a majority of voters have reached.
func naiveCommittedIndex(voters []int64, match map[int64]int64) int64 {
	var best int64
	for _, candidate := range voters {
		idx := match[candidate]
		count := 0
		for _, id := range voters {
			if match[id] >= idx {
				count++
			}
		}
		if isMajority(count, len(voters)) && idx > best {
			best = idx
		}
	}
	return best
}

// naiveTally plays out every way the missing votes could go: won if the
// candidate wins in all of them, lost if in none, pending otherwise. Votes
// from non-voters are ignored.
func naiveTally(voters []int64, votes map[int64]bool) voteResult {
	var missing []int64
	for _, id := range voters {
		if _, ok := votes[id]; !ok {
			missing = append(missing, id)
		}
	}
	wins, outcomes := 0, 1<<len(missing)
	for mask := 0; mask < outcomes; mask++ {
		granted := 0
		for _, id := range voters {
			v, ok := votes[id]
			if !ok {
				v = mask&(1<<slices.Index(missing, id)) != 0
			}
			if v {
				granted++
			}
		}
		if isMajority(granted, len(voters)) {
			wins++
		}
	}
	switch wins {
	case outcomes:
		return voteWon
	case 0:
		return voteLost
	}
	return votePending
}

func naiveQuorumActive(voters []int64, active map[int64]bool) bool {
	count := 0
	for _, id := range voters {
		if active[id] {
			count++
		}
	}
	return isMajority(count, len(voters))
}

// randomVoters returns n distinct ids out of 1..20, in random order.
func randomVoters(rng *rand.Rand, n int) []int64 {
	perm := rng.Perm(20)
	voters := make([]int64, n)
	for i := range voters {
		voters[i] = int64(perm[i] + 1)
	}
	return voters
}

// Fixed cases, for reading.
func TestCommittedIndexExamples(t *testing.T) {
	tests := []struct {
		match []int64 // of voters 1, 2, ...
		want  int64
	}{
		{nil, 0},
		{[]int64{5}, 5},
		{[]int64{5, 3}, 3},
		{[]int64{5, 3, 1}, 3},
		{[]int64{1, 3, 5}, 3},
		{[]int64{5, 5, 1, 1}, 1},
		{[]int64{5, 5, 5, 1}, 5},
		{[]int64{9, 8, 7, 0, 0}, 7},
		{[]int64{9, 8, 0, 0, 0}, 0},
		{[]int64{1, 2, 3, 4, 5, 6, 7, 8, 9}, 5}, // more voters than the stack buffer
	}
	for _, tc := range tests {
		var voters []int64
		for i := range tc.match {
			voters = append(voters, int64(i+1))
		}
		got := committedIndex(voters, func(id int64) int64 { return tc.match[id-1] })
		require.Equal(t, tc.want, got, "%v", tc.match)
	}
}

// committedIndex is the largest index a majority of voters have matched.
func TestCommittedIndexMatchesNaive(t *testing.T) {
	rng, seed := quorumRand(t)
	for i := 0; i < 20000; i++ {
		voters := randomVoters(rng, rng.IntN(12))
		match := map[int64]int64{}
		spread := 1 + rng.IntN(10)
		for _, id := range voters {
			match[id] = int64(rng.IntN(spread))
		}
		// Non-voters with high indexes must not count.
		for k := 0; k < rng.IntN(3); k++ {
			match[int64(100+k)] = 1000
		}
		got := committedIndex(voters, func(id int64) int64 { return match[id] })
		require.Equal(t, naiveCommittedIndex(voters, match), got, "seed %d case %d: voters %v match %v", seed, i, voters, match)
	}
}

// tallyVotes: won once a majority granted, lost once a majority can no
// longer grant, pending otherwise; only voters' votes count.
func TestTallyVotesMatchesNaive(t *testing.T) {
	rng, seed := quorumRand(t)
	for i := 0; i < 20000; i++ {
		voters := randomVoters(rng, rng.IntN(10))
		votes := map[int64]bool{}
		for _, id := range voters {
			switch rng.IntN(3) {
			case 0:
				votes[id] = true
			case 1:
				votes[id] = false
			}
		}
		for k := 0; k < rng.IntN(3); k++ {
			votes[int64(100+k)] = rng.IntN(2) == 0
		}
		got := tallyVotes(voters, votes)
		require.Equal(t, naiveTally(voters, votes), got, "seed %d case %d: voters %v votes %v", seed, i, voters, votes)
	}
}

func TestQuorumActiveMatchesNaive(t *testing.T) {
	rng, seed := quorumRand(t)
	for i := 0; i < 20000; i++ {
		voters := randomVoters(rng, rng.IntN(12))
		active := map[int64]bool{}
		for _, id := range voters {
			active[id] = rng.IntN(2) == 0
		}
		active[100] = true // a non-voter
		got := quorumActive(voters, func(id int64) bool { return active[id] })
		require.Equal(t, naiveQuorumActive(voters, active), got, "seed %d case %d: voters %v active %v", seed, i, voters, active)
	}
}

// Fixed tally cases, for reading.
func TestTallyVotesExamples(t *testing.T) {
	v3 := []int64{1, 2, 3}
	tests := []struct {
		voters []int64
		votes  map[int64]bool
		want   voteResult
	}{
		{[]int64{1}, map[int64]bool{1: true}, voteWon},
		{[]int64{1}, map[int64]bool{}, votePending},
		{v3, map[int64]bool{1: true}, votePending},
		{v3, map[int64]bool{1: true, 2: true}, voteWon},
		{v3, map[int64]bool{1: true, 2: false}, votePending},
		{v3, map[int64]bool{1: true, 2: false, 3: false}, voteLost},
		{v3, map[int64]bool{1: true, 4: true, 5: true}, votePending}, // non-voters
		{[]int64{1, 2, 3, 4}, map[int64]bool{1: true, 2: true}, votePending},
		{[]int64{1, 2, 3, 4}, map[int64]bool{1: true, 2: false, 3: false}, voteLost},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tallyVotes(tc.voters, tc.votes), "voters %v votes %v", tc.voters, tc.votes)
	}
}
