package rafttest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

func TestKV(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	a, b := &KV{}, &KV{}
	for i := range 500 {
		e := raftpb.Entry{Index: int64(i + 1), Data: KVCommand(r)}
		a.Apply(e)
		b.Apply(e)
		require.Equal(t, a.Digest(), b.Digest())
	}
	require.NotZero(t, a.Len())
	c := &KV{}
	require.NoError(t, c.Restore(a.Snapshot()))
	require.Equal(t, a.Digest(), c.Digest(), "the digest depends on the state only")
	require.Equal(t, a.Snapshot(), c.Snapshot())
	c.Apply(raftpb.Entry{Data: []byte("put k0 other")})
	require.NotEqual(t, a.Digest(), c.Digest())
	require.Error(t, c.Restore([]byte("no newline")))
	v, ok := c.Get("k0")
	require.False(t, ok && v == "other", "a failed restore leaves no old state behind")
}

func TestTags(t *testing.T) {
	rid, cmd := untag(tagCommand(42, []byte("put a b")))
	require.Equal(t, int64(42), rid)
	require.Equal(t, "put a b", string(cmd))
	for _, raw := range []string{"", "put a b", "#", "#12", "#1x2 put"} {
		rid, cmd := untag([]byte(raw))
		require.Zero(t, rid, raw)
		require.Equal(t, raw, string(cmd))
	}
}

func TestTraceRing(t *testing.T) {
	tr := newTraceLog(4)
	for i := range 10 {
		tr.add(event{step: i, text: fmt.Sprint(i)})
	}
	lines := tr.lines(0)
	require.Len(t, lines, 5)
	require.Contains(t, lines[0], "6 earlier events not kept")
	require.Contains(t, lines[1], "6")
	require.Contains(t, lines[4], "9")
	require.Len(t, tr.lines(2), 2)
	require.Contains(t, tr.lines(2)[0], "8")

	short := newTraceLog(100)
	for i := range 3 {
		short.add(event{step: i, text: fmt.Sprint(i)})
	}
	require.Len(t, short.lines(0), 3)
	require.Contains(t, short.lines(1)[0], "2")
}

// Two runs of one seed agree event for event; different seeds differ.
func TestSameSeedSameRun(t *testing.T) {
	a, _ := Run(Config{Seed: 9, Voters: 5, Faults: FaultProfiles[2]}, 1500)
	b, _ := Run(Config{Seed: 9, Voters: 5, Faults: FaultProfiles[2]}, 1500)
	d, _ := Run(Config{Seed: 10, Voters: 5, Faults: FaultProfiles[2]}, 1500)
	require.Equal(t, a.TraceHash(), b.TraceHash())
	require.Equal(t, a.Stats(), b.Stats())
	require.NotEqual(t, a.TraceHash(), d.TraceHash())
}
