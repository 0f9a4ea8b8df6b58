package raftkv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []command{
		{op: opPut, id: requestID{session: 1 << 63, seq: 7}, key: "k/with/slashes", value: []byte("v")},
		{op: opPut, id: requestID{session: 3, seq: 1}, key: "empty value"},
		{op: opDelete, id: requestID{session: 3, seq: 2}, key: "k"},
		{op: opAddLearner, id: requestID{session: 9, seq: 9}, node: 4, value: []byte("127.0.0.1:7004")},
		{op: opRemove, id: requestID{session: 9, seq: 10}, node: 2},
	} {
		got, err := unmarshalCommand(c.marshal())
		require.NoError(t, err)
		if len(c.value) == 0 {
			c.value = nil
		}
		if len(got.value) == 0 {
			got.value = nil
		}
		require.Equal(t, c, got)
	}
}

func TestCommandMalformed(t *testing.T) {
	good := command{op: opPut, id: requestID{session: 1, seq: 2}, key: "key", value: []byte("value")}.marshal()
	for n := range len(good) - len("value") - 1 {
		_, err := unmarshalCommand(good[:n])
		require.Error(t, err, "truncated to %d bytes", n)
	}
	_, err := unmarshalCommand(append([]byte{0}, good[1:]...))
	require.ErrorContains(t, err, "unknown command op")
}

// TestWritesInOneCommand: the writes of an opWrites command apply in
// order; a malformed one stops them, after the writes before it.
func TestWritesInOneCommand(t *testing.T) {
	writes := []command{
		{op: opPut, key: "a", value: []byte("1")},
		{op: opPut, key: "b", value: []byte{}},
		{op: opDelete, key: "a"},
		{op: opPut, key: "a", value: []byte("2")},
	}
	var b []byte
	for _, w := range writes {
		b = appendWrite(b, w)
	}
	c, err := unmarshalCommand(command{op: opWrites, id: requestID{session: 1, seq: 1}, value: b}.marshal())
	require.NoError(t, err)
	s := newKVState([]int64{1})
	require.NoError(t, eachWrite(c.value, s.write))
	require.Equal(t, map[string][]byte{"a": []byte("2"), "b": {}}, s.data)

	s = newKVState([]int64{1})
	require.ErrorContains(t, eachWrite(b[:len(b)-1], s.write), "malformed writes")
	require.Equal(t, map[string][]byte{"b": {}}, s.data, "the writes before the malformed one")
	require.ErrorContains(t, eachWrite([]byte{opRemove, 1, 'k'}, s.write), "unknown op")
}

func TestStateSnapshotRoundTrip(t *testing.T) {
	s := newKVState([]int64{1, 2, 3})
	s.data["a"] = []byte("1")
	s.data["b"] = []byte{}
	s.members[4] = member{addr: "127.0.0.1:7004", added: 12}
	for i := range uint64(10) {
		require.True(t, s.firstTime(requestID{session: 5, seq: i}))
	}
	b := s.marshal()
	got, err := unmarshalKVState(b)
	require.NoError(t, err)
	require.Equal(t, b, got.marshal())
	require.Equal(t, s.members, got.members)
	require.False(t, got.firstTime(requestID{session: 5, seq: 3}), "applied ids survive a snapshot")

	_, err = unmarshalKVState(b[:len(b)-1])
	require.ErrorContains(t, err, "malformed snapshot")
	_, err = unmarshalKVState(append(b, 0))
	require.ErrorContains(t, err, "trailing bytes")
}

// TestStateRemembersRecentRequests: a duplicate is refused while its id
// is among the last rememberedRequests, and the memory stays bounded.
func TestStateRemembersRecentRequests(t *testing.T) {
	s := newKVState([]int64{1, 2, 3})
	total := uint64(rememberedRequests + 100)
	for i := range total {
		require.True(t, s.firstTime(requestID{session: 1, seq: i}))
	}
	require.Len(t, s.seen, rememberedRequests)
	require.False(t, s.firstTime(requestID{session: 1, seq: total - 1}))
	require.False(t, s.firstTime(requestID{session: 1, seq: 100}), "the oldest id still remembered")
	require.True(t, s.firstTime(requestID{session: 1, seq: 99}), "forgotten: beyond the window")

	// The ring's order survives a snapshot: the next id evicts the oldest.
	got, err := unmarshalKVState(s.marshal())
	require.NoError(t, err)
	require.Equal(t, s.marshal(), got.marshal())
	require.True(t, got.firstTime(requestID{session: 2, seq: 1}))
	require.False(t, got.firstTime(requestID{session: 1, seq: 102}), "the next oldest, still remembered")
	require.True(t, got.firstTime(requestID{session: 1, seq: 101}), "the oldest, evicted by the new id")
}

// TestStateDecidesMembership: changes are decided from the state alone,
// and the state remembers the membership each added node joins with.
func TestStateDecidesMembership(t *testing.T) {
	s := newKVState([]int64{3, 1, 2})
	add := command{op: opAddLearner, node: 4, value: []byte("h:4")}
	require.NoError(t, s.changeMembers(add, 10))
	require.ErrorContains(t, s.changeMembers(add, 11), "node 4 is already a member")
	require.ErrorContains(t, s.changeMembers(command{op: opAddLearner, node: 2}, 11), "node 2 is already a member")
	require.ErrorContains(t, s.changeMembers(command{op: opPromote, node: 2}, 12), "node 2 is not a learner")
	require.Equal(t, member{addr: "h:4", added: 10, voters: []int64{1, 2, 3}, learners: []int64{4}}, s.members[4])

	require.NoError(t, s.changeMembers(command{op: opPromote, node: 4}, 13))
	require.Equal(t, []int64{1, 2, 3, 4}, s.voters)
	require.Empty(t, s.learners)
	require.NoError(t, s.changeMembers(command{op: opRemove, node: 2}, 14))
	require.NoError(t, s.changeMembers(command{op: opRemove, node: 4}, 15))
	require.ErrorContains(t, s.changeMembers(command{op: opRemove, node: 4}, 16), "node 4 is not a member")
	require.Equal(t, []int64{1, 3}, s.voters)
	require.NotContains(t, s.members, int64(4))

	require.NoError(t, s.changeMembers(command{op: opAddLearner, node: 5, value: []byte("h:5")}, 17))
	got, err := unmarshalKVState(s.marshal())
	require.NoError(t, err)
	require.Equal(t, s.voters, got.voters)
	require.Equal(t, s.learners, got.learners)
	require.Equal(t, s.members, got.members)
}
