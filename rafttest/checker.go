package rafttest

import (
	"fmt"
	"strings"

	"github.com/raftly/raft/raftpb"
)

// The names of the checkers, as they appear in a Violation.
const (
	CheckElectionSafety     = "election safety"      // at most one leader per term
	CheckLogMatching        = "log matching"         // same index and term, same log up to there
	CheckLeaderCompleteness = "leader completeness"  // a leader holds every entry committed before its term
	CheckStateMachine       = "state machine safety" // no two nodes apply different entries (or reach different states) at one index
	CheckCommitted          = "committed entry lost" // a committed entry is never truncated or changed
	CheckMonotonic          = "monotonic"            // term, commit and applied never go back on a node
	CheckVote               = "one vote per term"    // a node never votes twice in a term, across restarts
	CheckPersistence        = "persistence"          // what a node hands out and says is consistent with its disk
	CheckLiveness           = "liveness"             // after a fault-free tail, every live member applies a new proposal
	CheckPanic              = "no panic"             // the library does not panic on a correct application's calls
	CheckStep               = "step"                 // the library accepts every message a correct peer sent
	CheckRead               = "read"                 // a ReadState answers a read in flight, at a committed index
	CheckUser               = "user check"           // a check from Config.Checks failed
)

// Violation is a broken property, as found by a checker. It is returned as
// the error of the run; its Error method prints the checker, the seed and
// the tail of the trace.
type Violation struct {
	// Checker names the property, one of the Check* constants.
	Checker string
	// Seed is the seed of the run: Config.Seed replays it.
	Seed uint64
	// Step is the simulator step at which the violation was found.
	Step int
	// Detail says what was seen.
	Detail string
	// Trace is the tail of the trace up to the violation, oldest first.
	Trace []string
}

// TraceTail is the number of trace lines a Violation carries.
const TraceTail = 120

func (v *Violation) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rafttest: %s violated at step %d (seed %d): %s", v.Checker, v.Step, v.Seed, v.Detail)
	if len(v.Trace) > 0 {
		fmt.Fprintf(&b, "\ntrace (last %d events):\n%s", len(v.Trace), strings.Join(v.Trace, "\n"))
	}
	return b.String()
}

// finding is a checker's verdict, before the cluster adds seed and trace.
type finding struct {
	checker string
	detail  string
}

func found(checker, format string, args ...any) *finding {
	return &finding{checker: checker, detail: fmt.Sprintf(format, args...)}
}

type logPos struct{ index, term int64 }

// hardStateWrite checks that a node persisting hs over maxHS, the highest
// term and commit it ever persisted, with lastIndex the last entry on its
// disk, moves neither back and commits nothing it has not persisted.
func hardStateWrite(id int64, maxHS, hs raftpb.HardState, lastIndex int64) *finding {
	switch {
	case hs.Term < maxHS.Term:
		return found(CheckMonotonic, "node %x: the term it persists goes back from %d to %d", id, maxHS.Term, hs.Term)
	case hs.Commit < maxHS.Commit:
		return found(CheckMonotonic, "node %x: the commit index it persists goes back from %d to %d", id, maxHS.Commit, hs.Commit)
	case hs.Commit > lastIndex:
		return found(CheckPersistence, "node %x: HardState commit %d is beyond its last persisted entry %d", id, hs.Commit, lastIndex)
	}
	return nil
}

// checker holds what the safety checkers know of the whole run, across
// nodes, crashes and restarts. Every method is incremental: its cost does
// not grow with the length of the run. Hashes are chain hashes (chainHash)
// of log prefixes; 0 means unknown.
type checker struct {
	// chains maps every (index, term) persisted on any disk to the chain
	// hash of the log up to it there (log matching).
	chains map[logPos]uint64
	// commitIndex is the highest index known committed; committed[i] is
	// the chain hash of the committed log up to i.
	commitIndex int64
	committed   []uint64
	// commitAt[t] is the highest commit index a node persisted while in
	// term t. An entry committed at index i with a node in term t was
	// committed in term t or earlier.
	commitAt []int64
	// applied[i] is the chain hash of the history applied up to i, and
	// digests[i] the state machine digest after it.
	applied []uint64
	digests []uint64
	// snapData maps a compaction index to the hash of its snapshot data.
	snapData map[int64]uint64
	// leaders maps a term to its leader.
	leaders map[int64]int64
	// votes maps (voter, term) to the candidate it voted for.
	votes map[[2]int64]int64
}

func newChecker() *checker {
	return &checker{
		chains: map[logPos]uint64{}, snapData: map[int64]uint64{},
		leaders: map[int64]int64{}, votes: map[[2]int64]int64{},
	}
}

func at(s []uint64, i int64) uint64 {
	if i >= 0 && i < int64(len(s)) {
		return s[i]
	}
	return 0
}

func set(s []uint64, i int64, v uint64) []uint64 {
	for int64(len(s)) <= i {
		s = append(s, 0)
	}
	s[i] = v
	return s
}

// persisted records that a disk holds the entry (index, term) with the
// given chain hash: any other disk holding (index, term) must hold the same
// log up to it.
func (k *checker) persisted(node, index, term int64, chain uint64) *finding {
	p := logPos{index, term}
	if prev, ok := k.chains[p]; ok {
		if prev != chain {
			return found(CheckLogMatching, "node %x persisted entry %d/%d after a log that differs from another node's with the same entry", node, term, index)
		}
		return nil
	}
	k.chains[p] = chain
	return nil
}

// chainOf returns the chain hash of the log up to (index, term), if any
// disk ever held it.
func (k *checker) chainOf(index, term int64) (uint64, bool) {
	h, ok := k.chains[logPos{index, term}]
	return h, ok
}

// isCommitted reports whether the log ending in chain at index is the
// committed one there.
func (k *checker) isCommitted(index int64, chain uint64) bool {
	return index <= k.commitIndex && chain != 0 && at(k.committed, index) == chain
}

// commit records that a node in term persisted commit index index, its log
// up to there having the given chain hash; chainAt gives the node's chain
// hash at lower indexes (0 when it no longer has them).
func (k *checker) commit(node, term, index int64, chain uint64, chainAt func(int64) uint64) *finding {
	if index <= 0 {
		return nil
	}
	for int64(len(k.commitAt)) <= term {
		k.commitAt = append(k.commitAt, 0)
	}
	k.commitAt[term] = max(k.commitAt[term], index)
	if known := at(k.committed, index); known != 0 && known != chain {
		return found(CheckCommitted, "node %x committed index %d in term %d with a log that differs from the one committed there before", node, index, term)
	}
	for i := k.commitIndex + 1; i < index; i++ {
		if h := chainAt(i); h != 0 {
			k.committed = set(k.committed, i, h)
		}
	}
	k.committed = set(k.committed, index, chain)
	k.commitIndex = max(k.commitIndex, index)
	return nil
}

// committedBefore returns the highest index known committed in a term
// before term: a leader of term must hold the log up to it (§5.4).
func (k *checker) committedBefore(term int64) int64 {
	var idx int64
	for t := int64(0); t < term && t < int64(len(k.commitAt)); t++ {
		idx = max(idx, k.commitAt[t])
	}
	return idx
}

// leader records that id leads term (seen as how).
func (k *checker) leader(term, id int64, how string) *finding {
	if term <= 0 || id == 0 {
		return nil
	}
	if prev, ok := k.leaders[term]; ok {
		if prev != id {
			return found(CheckElectionSafety, "%x and %x both lead term %d (%s)", prev, id, term, how)
		}
		return nil
	}
	k.leaders[term] = id
	return nil
}

// vote records that voter granted its vote in term to candidate.
func (k *checker) vote(voter, term, candidate int64) *finding {
	key := [2]int64{voter, term}
	if prev, ok := k.votes[key]; ok {
		if prev != candidate {
			return found(CheckVote, "node %x voted for %x and for %x in term %d", voter, prev, candidate, term)
		}
		return nil
	}
	k.votes[key] = candidate
	return nil
}

// apply records that node applied the entry at index, its applied history
// having the given chain hash, and its state then the given digest (0 when
// the state machine has none).
func (k *checker) apply(node, index int64, chain, digest uint64) *finding {
	if prev := at(k.applied, index); prev != 0 && prev != chain {
		return found(CheckStateMachine, "node %x applied at index %d after a history that differs from another node's", node, index)
	}
	if c := at(k.committed, index); c != 0 && c != chain {
		return found(CheckStateMachine, "node %x applied at index %d an entry (or history) that is not the committed one", node, index)
	}
	k.applied = set(k.applied, index, chain)
	return k.digest(node, index, digest, "after applying")
}

// restored records that node restored a snapshot at index, its applied
// history then having the given chain hash and state digest.
func (k *checker) restored(node, index int64, chain, digest uint64) *finding {
	if prev := at(k.applied, index); prev != 0 && chain != 0 && prev != chain {
		return found(CheckStateMachine, "node %x restored a snapshot at index %d of a history that differs from the one applied there", node, index)
	}
	if chain != 0 {
		k.applied = set(k.applied, index, chain)
	}
	return k.digest(node, index, digest, "after restoring a snapshot at")
}

func (k *checker) digest(node, index int64, digest uint64, how string) *finding {
	if digest == 0 {
		return nil
	}
	if prev := at(k.digests, index); prev != 0 && prev != digest {
		return found(CheckStateMachine, "node %x: state digest %x %s index %d differs from another node's (%x)", node, digest, how, index, prev)
	}
	k.digests = set(k.digests, index, digest)
	return nil
}

// snapshotData records the hash of the state machine's snapshot when node
// compacted at index: two nodes that applied the same history must produce
// the same data.
func (k *checker) snapshotData(node, index int64, h uint64) *finding {
	if prev, ok := k.snapData[index]; ok && prev != h {
		return found(CheckStateMachine, "node %x: state machine snapshot at index %d differs from another node's at the same index", node, index)
	}
	k.snapData[index] = h
	return nil
}
