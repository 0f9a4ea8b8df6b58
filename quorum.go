package raft

import "slices"

// Quorum arithmetic over a set of voters, as pure functions.

// quorumSize is the number of voters that make a majority of n.
func quorumSize(n int) int { return n/2 + 1 }

// committedIndex returns the largest index that a majority of voters have
// matched, given each voter's match index. With no voters it returns 0.
func committedIndex(voters []int64, match func(id int64) int64) int64 {
	n := len(voters)
	if n == 0 {
		return 0
	}
	var stack [7]int64
	matched := stack[:0]
	if n > len(stack) {
		matched = make([]int64, 0, n)
	}
	for _, id := range voters {
		matched = append(matched, match(id))
	}
	slices.Sort(matched)
	// Ascending order: the quorumSize-th largest is at n - quorumSize.
	return matched[n-quorumSize(n)]
}

// voteResult is the outcome of an election so far.
type voteResult uint8

const (
	votePending voteResult = iota
	voteWon
	voteLost
)

// tallyVotes counts the votes of voters (true: granted); a vote from a
// non-voter does not count.
func tallyVotes(voters []int64, votes map[int64]bool) voteResult {
	granted, rejected := 0, 0
	for _, id := range voters {
		v, ok := votes[id]
		switch {
		case !ok:
		case v:
			granted++
		default:
			rejected++
		}
	}
	q := quorumSize(len(voters))
	switch {
	case granted >= q:
		return voteWon
	case rejected > len(voters)-q:
		return voteLost
	}
	return votePending
}

// quorumActive reports whether a majority of voters satisfy active.
func quorumActive(voters []int64, active func(id int64) bool) bool {
	n := 0
	for _, id := range voters {
		if active(id) {
			n++
		}
	}
	return n >= quorumSize(len(voters))
}
