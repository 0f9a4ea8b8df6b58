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

// checkLinearizable fails t if ops are not linearizable, or if the
// search cannot decide within checkTimeout. It uses the checker of the
// simulator's histories (rafttest/lincheck: a per-key map model, open
// writes that no read saw left out, a stale read named when one explains
// the failure); on failure it writes the visualization, with the
// notes, to dir/history.html.
func checkLinearizable(t *testing.T, ops []op, notes []lincheck.Note, dir string) {
	t.Helper()
	opts := []lincheck.Option{lincheck.Timeout(checkTimeout)}
	if dir != "" {
		opts = append(opts, lincheck.HTML(filepath.Join(dir, "history.html")), lincheck.Notes(notes...))
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
	out := make([]rafttest.Op, len(ops))
	for i, o := range ops {
		out[i] = rafttest.Op{Kind: o.kind, Key: o.key, Value: o.value, Node: int64(o.node), Call: o.call, Return: o.ret}
		if o.open {
			out[i].Return = 0
		}
	}
	return out
}

// The clients' histories reach the checker as they should: puts, deletes,
// absent keys and open writes, linearizable or not (the checker's own
// cases are in rafttest/lincheck).
func TestCheckerFindsViolations(t *testing.T) {
	put := func(key, value string, call, ret int64) op {
		return op{kind: rafttest.OpPut, key: key, value: value, call: call, ret: ret}
	}
	open := func(o op) op { o.open, o.ret = true, 0; return o }
	del := func(key string, call, ret int64) op {
		return op{kind: rafttest.OpDelete, key: key, call: call, ret: ret}
	}
	get := func(key, value string, call, ret int64) op {
		return op{kind: rafttest.OpGet, key: key, value: value, call: call, ret: ret}
	}
	for _, tc := range []struct {
		name   string
		ops    []op
		reason string // "": linearizable
	}{
		{"sequential", []op{put("x", "a", 1, 2), get("x", "a", 3, 4), del("x", 5, 6), get("x", "", 7, 8)}, ""},
		{"open write seen", []op{open(put("x", "a", 1, 0)), get("x", "", 2, 3), get("x", "a", 4, 5)}, ""},
		{"open write never applied", []op{open(put("x", "a", 1, 0)), get("x", "", 2, 3)}, ""},
		{"acknowledged delete lost", []op{put("x", "a", 1, 2), del("x", 3, 4), get("x", "a", 5, 6)}, "stale read"},
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
