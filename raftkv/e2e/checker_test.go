package e2e

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/raftly/raft/rafttest"
	"github.com/raftly/raft/rafttest/lincheck"
	"github.com/stretchr/testify/require"
)

// checkTimeout bounds porcupine's search.
const checkTimeout = 2 * time.Minute

// annotation is a span of time to show in the visualization, beside the
// clients' operations (a nemesis action).
type annotation struct {
	start, end int64
	what       string
}

// checkLinearizable fails t if ops are not linearizable, or if the
// search cannot decide within checkTimeout. It uses the checker of the
// simulator's histories (rafttest/lincheck: a per-key map model, open
// writes that no read saw left out, a stale read named when one explains
// the failure); on failure it writes the visualization, with the
// annotations, to dir/history.html.
func checkLinearizable(t *testing.T, ops []op, notes []annotation, dir string) {
	t.Helper()
	opts := []lincheck.Option{lincheck.Timeout(checkTimeout)}
	if dir != "" {
		opts = append(opts, lincheck.HTML(filepath.Join(dir, "history.html")))
		for _, a := range notes {
			opts = append(opts, lincheck.Notes(lincheck.Note{Start: a.start, End: a.end, What: a.what}))
		}
	}
	err := lincheck.Check(asHistory(ops), opts...)
	switch {
	case errors.Is(err, lincheck.ErrUndecided):
		t.Errorf("porcupine could not decide within %v whether the %d operations are linearizable", checkTimeout, len(ops))
	case err != nil:
		t.Error(err)
	}
}

// asHistory turns ops into the simulator's form of a client history (times
// in nanoseconds since the run began; an open write has no return).
func asHistory(ops []op) []rafttest.Op {
	kinds := map[opKind]rafttest.OpKind{opPut: rafttest.OpPut, opDelete: rafttest.OpDelete, opGet: rafttest.OpGet}
	out := make([]rafttest.Op, len(ops))
	for i, o := range ops {
		out[i] = rafttest.Op{Kind: kinds[o.kind], Key: o.key, Value: o.value, Node: int64(o.node), Call: o.call, Return: o.ret}
		if o.open {
			out[i].Return = 0
		}
	}
	return out
}

// The checker must find what it is there to find.
func TestCheckerFindsViolations(t *testing.T) {
	put := func(key, value string, call, ret int64) op {
		return op{kind: opPut, key: key, value: value, call: call, ret: ret}
	}
	open := func(o op) op { o.open, o.ret = true, 0; return o }
	del := func(key string, call, ret int64) op { return op{kind: opDelete, key: key, call: call, ret: ret} }
	get := func(key, value string, call, ret int64) op {
		return op{kind: opGet, key: key, value: value, call: call, ret: ret}
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		reason string // "": linearizable
	}{
		{"sequential", []op{put("x", "a", 1, 2), get("x", "a", 3, 4), del("x", 5, 6), get("x", "", 7, 8)}, ""},
		{"concurrent read may miss a write", []op{put("x", "a", 1, 10), get("x", "", 2, 3), get("x", "a", 4, 5)}, ""},
		{"open write seen", []op{open(put("x", "a", 1, 0)), get("x", "", 2, 3), get("x", "a", 4, 5)}, ""},
		{"open write never applied", []op{open(put("x", "a", 1, 0)), get("x", "", 2, 3)}, ""},
		{"acknowledged write lost", []op{put("x", "a", 1, 2), put("x", "b", 3, 4), get("x", "a", 5, 6)}, "stale read"},
		{"acknowledged delete lost", []op{put("x", "a", 1, 2), del("x", 3, 4), get("x", "a", 5, 6)}, "stale read"},
		{"acknowledged put lost, key absent", []op{put("x", "a", 1, 2), get("x", "", 3, 4)}, "stale read"},
		{"value from nowhere", []op{put("x", "a", 1, 2), get("x", "zz", 3, 4)}, "no write wrote"},
		{"value from the future", []op{get("x", "a", 1, 2), put("x", "a", 3, 4)}, "only after"},
		{"read goes back in time", []op{put("x", "a", 1, 2), put("x", "b", 3, 20), get("x", "b", 4, 5), get("x", "a", 6, 7)}, "went back in time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := lincheck.Check(asHistory(tc.ops))
			if tc.reason == "" {
				require.NoError(t, err)
				return
			}
			var nl *lincheck.NotLinearizable
			require.ErrorAs(t, err, &nl)
			require.Contains(t, err.Error(), tc.reason)
		})
	}
}
