package raft

import (
	"fmt"
	"slices"
)

// membership is a set of voters and a set of learners, each sorted and
// disjoint. A membership is never modified once built: a change makes a
// copy, changes it, checks it, and replaces the old one.
type membership struct {
	voters   []int64
	learners []int64
}

func newMembership(voters, learners []int64) membership {
	m := membership{voters: sortedSet(voters), learners: sortedSet(learners)}
	m.check()
	return m
}

func sortedSet(ids []int64) []int64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

func (m membership) check() {
	for _, id := range m.learners {
		if m.isVoter(id) {
			panic(fmt.Sprintf("raft: invariant broken: node %x is both voter and learner", id))
		}
	}
}

func (m membership) isVoter(id int64) bool {
	_, ok := slices.BinarySearch(m.voters, id)
	return ok
}

func (m membership) isLearner(id int64) bool {
	_, ok := slices.BinarySearch(m.learners, id)
	return ok
}

func (m membership) isMember(id int64) bool { return m.isVoter(id) || m.isLearner(id) }

// withVoter returns m with id added as a voter; a voter or a learner is
// left as it is (only promotion makes a learner a voter).
func (m membership) withVoter(id int64) membership {
	if m.isMember(id) {
		return m
	}
	next := membership{voters: sortedSet(append(slices.Clone(m.voters), id)), learners: m.learners}
	next.check()
	return next
}

// withLearner returns m with id added as a learner; a member is left as
// it is.
func (m membership) withLearner(id int64) membership {
	if m.isMember(id) {
		return m
	}
	next := membership{voters: m.voters, learners: sortedSet(append(slices.Clone(m.learners), id))}
	next.check()
	return next
}

// promoted returns m with learner id made a voter; anything else is left
// as it is.
func (m membership) promoted(id int64) membership {
	if !m.isLearner(id) {
		return m
	}
	return m.without(id).withVoter(id)
}

// without returns m with id removed, whether voter or learner.
func (m membership) without(id int64) membership {
	if !m.isMember(id) {
		return m
	}
	next := membership{
		voters:   slices.DeleteFunc(slices.Clone(m.voters), func(v int64) bool { return v == id }),
		learners: slices.DeleteFunc(slices.Clone(m.learners), func(v int64) bool { return v == id }),
	}
	next.check()
	return next
}

// members returns voters and learners, sorted.
func (m membership) members() []int64 {
	all := append(slices.Clone(m.voters), m.learners...)
	slices.Sort(all)
	return all
}

func (m membership) String() string {
	return fmt.Sprintf("voters=%v learners=%v", m.voters, m.learners)
}

// membershipRecord is the membership in force from index on.
type membershipRecord struct {
	index int64
	membership
}

// membershipHistory records every membership since the snapshot, so that
// Compact can check the voters at any index it may compact to.
type membershipHistory []membershipRecord

// at returns the membership in force at index.
func (h membershipHistory) at(index int64) (membership, bool) {
	for k := len(h) - 1; k >= 0; k-- {
		if h[k].index <= index {
			return h[k].membership, true
		}
	}
	return membership{}, false
}

func (h membershipHistory) current() membership { return h[len(h)-1].membership }

// since drops the records superseded at index.
func (h membershipHistory) since(index int64) membershipHistory {
	k := len(h) - 1
	for k > 0 && h[k].index > index {
		k--
	}
	return slices.Clone(h[k:])
}
