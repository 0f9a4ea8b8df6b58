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

func TestStateSnapshotRoundTrip(t *testing.T) {
	s := newKVState()
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
	s := newKVState()
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
}
