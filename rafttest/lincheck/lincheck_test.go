package lincheck

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/raftly/raft/rafttest"
	"github.com/stretchr/testify/require"
)

// Hand-made histories: times are given as [call, return], 0 for an open
// return.

func put(key, value string, call, ret int64) rafttest.Op {
	return rafttest.Op{Kind: rafttest.OpPut, Key: key, Value: value, Call: call, Return: ret, Node: 1}
}

func del(key string, call, ret int64) rafttest.Op {
	return rafttest.Op{Kind: rafttest.OpDelete, Key: key, Call: call, Return: ret, Node: 1}
}

func get(key, value string, call, ret int64) rafttest.Op {
	return rafttest.Op{Kind: rafttest.OpGet, Key: key, Value: value, Call: call, Return: ret, Node: 2}
}

func requireNotLinearizable(t *testing.T, err error, key, reason string) *NotLinearizable {
	t.Helper()
	var nl *NotLinearizable
	require.True(t, errors.As(err, &nl), "want a *NotLinearizable, got %v", err)
	require.Equal(t, key, nl.Key)
	require.Contains(t, nl.Reason, reason)
	require.Contains(t, nl.Error(), "key "+key)
	return nl
}

func TestLinearizableHistories(t *testing.T) {
	for name, h := range map[string][]rafttest.Op{
		"empty":      nil,
		"sequential": {put("x", "a", 1, 2), get("x", "a", 3, 4), del("x", 5, 6), get("x", "", 7, 8)},
		// A read concurrent with a write may see it or not.
		"concurrent": {put("x", "a", 1, 10), get("x", "", 2, 3), get("x", "a", 4, 5), get("x", "a", 11, 12)},
		// An open write may happen, at any time after its call...
		"open seen": {put("x", "a", 1, 0), get("x", "", 2, 3), get("x", "a", 5, 6)},
		// ...or never.
		"open unseen": {put("x", "a", 1, 0), get("x", "", 2, 3), get("x", "", 50, 60)},
		"open delete": {put("x", "a", 1, 2), del("x", 3, 0), get("x", "a", 4, 5), get("x", "", 6, 7)},
		"keys are independent": {put("x", "a", 1, 2), put("y", "b", 3, 4), get("x", "a", 5, 6),
			get("y", "b", 7, 8), get("z", "", 9, 10)},
	} {
		require.NoError(t, Check(h), name)
	}
}

func TestStaleRead(t *testing.T) {
	h := []rafttest.Op{put("x", "a", 1, 2), put("x", "b", 3, 4), get("x", "a", 5, 6), get("y", "", 7, 8)}
	nl := requireNotLinearizable(t, Check(h), "x", "stale read")
	require.Equal(t, []rafttest.Op{h[2], h[0], h[1]}, nl.Culprits)
	require.Len(t, nl.Ops, 3)
	t.Log(nl)

	// A missing key, read after a put that no delete can follow.
	h = []rafttest.Op{del("x", 1, 2), put("x", "a", 3, 4), get("x", "", 5, 6)}
	requireNotLinearizable(t, Check(h), "x", "stale read")
}

func TestReadOfUnwrittenValue(t *testing.T) {
	h := []rafttest.Op{put("x", "a", 1, 2), get("x", "zz", 3, 4)}
	requireNotLinearizable(t, Check(h), "x", "no write wrote")
}

func TestReadFromTheFuture(t *testing.T) {
	h := []rafttest.Op{get("x", "a", 1, 2), put("x", "a", 3, 4)}
	requireNotLinearizable(t, Check(h), "x", "written only after the read returned")
}

func TestReadsGoBackInTime(t *testing.T) {
	h := []rafttest.Op{put("x", "a", 1, 2), put("x", "b", 3, 10), get("x", "b", 4, 5), get("x", "a", 6, 7)}
	nl := requireNotLinearizable(t, Check(h), "x", "went back in time")
	require.Equal(t, []rafttest.Op{h[3], h[2], h[0], h[1]}, nl.Culprits)
}

// An open write, once seen, has happened.
func TestOpenWriteSeenThenUnseen(t *testing.T) {
	h := []rafttest.Op{put("x", "a", 1, 0), get("x", "a", 5, 6), get("x", "", 7, 8)}
	err := Check(h)
	requireNotLinearizable(t, err, "x", "")
	require.Contains(t, err.Error(), "no single stale read explains it")
}

func TestHTMLVisualization(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.html")
	h := []rafttest.Op{put("x", "a", 1, 2), put("x", "b", 3, 4), get("x", "a", 5, 6)}
	err := Check(h, HTML(path), Notes(Note{Start: 2, End: 4, What: "node 2 killed"}))
	nl := requireNotLinearizable(t, err, "x", "stale read")
	require.Equal(t, path, nl.HTML)
	require.Contains(t, err.Error(), "visualization: "+path)
	data, rerr := os.ReadFile(path)
	require.NoError(t, rerr)
	require.Contains(t, string(data), "put x b")
	require.Contains(t, string(data), "node 2 killed", "the notes are shown")

	// Nothing is written for a linearizable history.
	other := filepath.Join(t.TempDir(), "none.html")
	require.NoError(t, Check(h[:2], HTML(other)))
	require.NoFileExists(t, other)
}

// Dropping the open writes that no read saw changes no verdict: random
// small histories on one key (with values that repeat) are judged the
// same with and without them.
func TestPruneOpenKeepsVerdict(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pruned, illegal := 0, 0
	for i := range 3000 {
		var h []rafttest.Op
		for range 3 + rng.IntN(6) {
			call := int64(1 + rng.IntN(40))
			ret := call + 1 + int64(rng.IntN(10))
			v := fmt.Sprint("v", rng.IntN(3))
			switch k := rng.IntN(10); {
			case k < 3:
				h = append(h, put("x", v, call, ret))
			case k < 5:
				h = append(h, put("x", v, call, 0))
			case k < 6:
				h = append(h, del("x", call, 0))
			default:
				if rng.IntN(4) == 0 {
					v = ""
				}
				h = append(h, get("x", v, call, ret))
			}
		}
		whole := porcupine.CheckOperations(model, operations(h))
		pruned += len(h) - len(pruneOpen(h))
		err := Check(h)
		require.Equal(t, whole, err == nil, "history %d: %v: porcupine says %v, Check %v", i, h, whole, err)
		if !whole {
			illegal++
		}
	}
	t.Logf("3000 histories, %d illegal, %d open writes pruned", illegal, pruned)
	require.Positive(t, pruned)
	require.Positive(t, illegal)
}
