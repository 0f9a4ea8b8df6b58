package e2e

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/stretchr/testify/require"
)

// kvModel is a key-value map, checked one key at a time (keys are
// independent): a partition's state is its key's value, "" when absent;
// a get's output is the value it returned.
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, o := range history {
			k := o.Input.(op).key
			byKey[k] = append(byKey[k], o)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, len(keys))
		for i, k := range keys {
			out[i] = byKey[k]
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		o := in.(op)
		switch o.kind {
		case opPut:
			return true, o.value
		case opDelete:
			return true, ""
		}
		return out.(string) == state.(string), state
	},
	DescribeOperation: func(in, out any) string {
		o := in.(op)
		switch o.kind {
		case opPut:
			return fmt.Sprintf("put %s=%s", o.key, o.value)
		case opDelete:
			return "del " + o.key
		}
		return fmt.Sprintf("get %s -> %s", o.key, describeValue(out.(string)))
	},
	DescribeState:             func(state any) string { return describeValue(state.(string)) },
	DescribeOperationMetadata: func(info any) string { return info.(op).String() },
}

// checkTimeout bounds porcupine's search.
const checkTimeout = 2 * time.Minute

// annotation is a span of time to show in the visualization, beside the
// clients' operations (a nemesis action).
type annotation struct {
	start, end int64
	what       string
}

// checkLinearizable fails t if ops are not linearizable, or if porcupine
// cannot decide within checkTimeout. On failure it writes porcupine's
// visualization, with the annotations, to dir/history.html, and says
// which key fails and why when a simple reason is found.
func checkLinearizable(t *testing.T, ops []op, notes []annotation, dir string) {
	t.Helper()
	ops = pruneOpen(ops)
	pops := operations(ops)
	res, info := porcupine.CheckOperationsVerbose(kvModel, pops, checkTimeout)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		t.Errorf("porcupine could not decide within %v whether the %d operations are linearizable", checkTimeout, len(ops))
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "the history of %d operations is not linearizable", len(ops))
	for _, part := range kvModel.Partition(pops) {
		if porcupine.CheckOperations(kvModel, part) {
			continue
		}
		var keyOps []op
		for _, p := range part {
			keyOps = append(keyOps, p.Input.(op))
		}
		fmt.Fprintf(&b, "\nkey %s (%d operations): %s", keyOps[0].key, len(keyOps), explain(keyOps))
	}
	if dir != "" {
		var pa []porcupine.Annotation
		for _, a := range notes {
			pa = append(pa, porcupine.Annotation{Tag: "nemesis", Start: a.start, End: a.end, Description: a.what})
		}
		info.AddAnnotations(pa)
		path := filepath.Join(dir, "history.html")
		if err := porcupine.VisualizePath(kvModel, info, path); err != nil {
			fmt.Fprintf(&b, "\nthe visualization could not be written: %v", err)
		} else {
			fmt.Fprintf(&b, "\nvisualization: %s", path)
		}
	}
	t.Error(b.String())
}

// pruneOpen leaves out the open writes that no read can have seen: an
// open put of a value no read returned, an open delete of a key no read
// found absent. The verdict does not change (such a write can always be
// put last, after every other operation, where nothing reads it; and in
// a linearization with it, no read sees it, so without it every read is
// still explained), and the search does not have to place them: many
// open writes on one key make it explode.
func pruneOpen(ops []op) []op {
	type read struct{ key, value string }
	seen := map[read]bool{}
	for _, o := range ops {
		if o.kind == opGet {
			seen[read{o.key, o.value}] = true
		}
	}
	out := make([]op, 0, len(ops))
	for _, o := range ops {
		if o.open && !seen[read{o.key, o.value}] { // a delete's value is ""
			continue
		}
		out = append(out, o)
	}
	return out
}

// operations turns ops into porcupine's: an open write returns after
// every other event. Each gets the lowest lane (porcupine's client) free
// at its call, so that the visualization shows no overlap in a lane.
func operations(ops []op) []porcupine.Operation {
	var end int64
	for _, o := range ops {
		end = max(end, o.call, o.ret)
	}
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(ops[a].call, ops[b].call) })
	var free []int64 // by lane: when it is free again
	out := make([]porcupine.Operation, len(ops))
	for _, i := range order {
		o := ops[i]
		ret := o.ret
		if o.open {
			ret = end + 1
		}
		lane := slices.IndexFunc(free, func(t int64) bool { return t < o.call })
		if lane < 0 {
			lane = len(free)
			free = append(free, 0)
		}
		free[lane] = ret
		var output any
		if o.kind == opGet {
			output = o.value
		}
		out[i] = porcupine.Operation{ClientId: lane, Input: o, Call: o.call, Output: output, Return: ret, Metadata: o}
	}
	return out
}

// explain looks for a simple reason why the operations on one key have
// no linearization: a read of a value no write wrote, of a value written
// only after the read, or of a value (or absence) that a write surely
// replaced before the read began, such as an acknowledged write lost.
func explain(ops []op) string {
	before := func(a, b op) bool { return !a.open && a.ret < b.call }
	writes := map[string]op{} // by value: the workload's values are unique
	for _, o := range ops {
		if o.kind == opPut {
			writes[o.value] = o
		}
	}
	for _, r := range ops {
		if r.kind != opGet {
			continue
		}
		w, written := writes[r.value]
		switch {
		case r.value != "" && !written:
			return fmt.Sprintf("a read returned a value no write wrote:\n  %s", r)
		case r.value != "" && before(r, w):
			return fmt.Sprintf("a read returned a value written only after it:\n  %s\n  %s", r, w)
		}
		for _, o := range ops {
			if o.kind == opGet || o.value == r.value || !before(o, r) {
				continue
			}
			// o, a write of another value, was done before r began:
			// r's value must have been written after o, or r is stale.
			if r.value != "" && before(o, w) {
				continue
			}
			if r.value == "" && slices.ContainsFunc(ops, func(d op) bool {
				return d.kind == opDelete && !before(d, o) && !before(r, d)
			}) {
				continue
			}
			return fmt.Sprintf("a stale read: a write done before the read began replaced what it returned (lost or reordered):\n  read:  %s\n  write: %s", r, o)
		}
	}
	return "no single read explains it; see the visualization"
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
		{"read goes back in time", []op{put("x", "a", 1, 2), put("x", "b", 3, 20), get("x", "b", 4, 5), get("x", "a", 6, 7)}, "no single read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := pruneOpen(tc.ops)
			ok := porcupine.CheckOperations(kvModel, operations(ops))
			require.Equal(t, tc.reason == "", ok)
			if tc.reason != "" {
				require.Contains(t, explain(ops), tc.reason)
			}
		})
	}
}
