// Package lincheck checks the client history of a rafttest cluster for
// linearizability, with porcupine: every write and read that returned
// must fit in one sequential order of a key-value map that agrees with
// real time (an operation that returned before another was called comes
// first in it), and open writes (never seen applied) may fall anywhere
// after their call, or nowhere.
//
// It lives in a module of its own so that the library and rafttest do not
// depend on porcupine.
//
//	c, err := rafttest.Run(cfg, 2000) // err: a safety violation
//	if err := lincheck.Check(c.History()); err != nil {
//		// err is a *NotLinearizable: the key, the operations on it,
//		// and a stale read that explains it when one does
//	}
package lincheck

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/raftly/raft/rafttest"
)

// input is what an operation asks of the model.
type input struct {
	kind  rafttest.OpKind
	key   string
	value string // a put's value
}

// The model is a map from keys to values, checked one key at a time (the
// keys are independent): the state of a partition is the key's value,
// "" when it is missing. A get's output is the value it returned.
var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(input).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, in, out any) (bool, any) {
		op := in.(input)
		switch op.kind {
		case rafttest.OpPut:
			return true, op.value
		case rafttest.OpDelete:
			return true, ""
		case rafttest.OpGet:
			return out.(string) == state.(string), state
		}
		return false, state
	},
	DescribeOperation: func(in, out any) string {
		op := in.(input)
		switch op.kind {
		case rafttest.OpPut:
			return fmt.Sprintf("put %s %s", op.key, op.value)
		case rafttest.OpDelete:
			return "del " + op.key
		}
		return fmt.Sprintf("get %s -> %s", op.key, describeValue(out.(string)))
	},
	DescribeState: func(state any) string { return describeValue(state.(string)) },
	DescribeOperationMetadata: func(info any) string {
		if op, ok := info.(rafttest.Op); ok {
			return op.String()
		}
		return ""
	},
}

func describeValue(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// Option adjusts Check.
type Option func(*options)

type options struct {
	html    string
	timeout time.Duration
	notes   []Note
}

// Note is a span of the history's time, Start to End, to show beside the
// operations in the visualization: a fault the test injected, say.
type Note struct {
	Start, End int64
	What       string
}

// Notes adds spans to the visualization that HTML writes.
func Notes(notes ...Note) Option { return func(o *options) { o.notes = append(o.notes, notes...) } }

// HTML makes Check write porcupine's visualization of the history (its
// operations and the linearizations found, key by key) to the file at
// path, when the history is not linearizable.
func HTML(path string) Option { return func(o *options) { o.html = path } }

// Timeout bounds the search for a linearization (0, the default: no
// bound). Check returns ErrUndecided when the bound is reached.
func Timeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// ErrUndecided: the search for a linearization reached the Timeout.
var ErrUndecided = errors.New("lincheck: linearizability undecided within the timeout")

// Check returns nil if the history is linearizable, else a
// *NotLinearizable that says where it is not (or ErrUndecided, with a
// Timeout).
func Check(history []rafttest.Op, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	history = pruneOpen(history)
	ops := operations(history)
	switch porcupine.CheckOperationsTimeout(model, ops, o.timeout) {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return ErrUndecided
	}
	// Not linearizable: find the key, and describe it.
	res, info := porcupine.CheckOperationsVerbose(model, ops, o.timeout)
	if res != porcupine.Illegal {
		return fmt.Errorf("lincheck: the history is not linearizable, but describing it came to %s", res)
	}
	err := describe(ops, info)
	if o.html != "" {
		for _, n := range o.notes {
			info.AddAnnotations([]porcupine.Annotation{{Tag: "notes", Start: n.Start, End: n.End, Description: n.What}})
		}
		if werr := porcupine.VisualizePath(model, info, o.html); werr != nil {
			err.HTMLError = werr
		} else {
			err.HTML = o.html
		}
	}
	return err
}

// pruneOpen drops the open writes that no read can have seen: an open put
// of a value that no read of its key returned, an open delete of a key
// that no read found missing. This changes nothing to the verdict (a
// linearization of the rest extends to one with them, placed after every
// other operation, where nothing reads them; and a linearization with
// them has no read between one of them and the next write of its key,
// so that dropping it leaves every read explained), and spares the search
// the choice of where each falls: with many of them on one key it
// explodes.
func pruneOpen(history []rafttest.Op) []rafttest.Op {
	type kv struct{ key, value string }
	read := map[kv]bool{}
	for _, op := range history {
		if op.Kind == rafttest.OpGet {
			read[kv{op.Key, op.Value}] = true
		}
	}
	out := make([]rafttest.Op, 0, len(history))
	for _, op := range history {
		if op.Open() && op.Kind != rafttest.OpGet && !read[kv{op.Key, op.Value}] {
			continue
		}
		out = append(out, op)
	}
	return out
}

// operations turns the history into porcupine's operations. Open writes
// return after every event of the history; each operation gets a client
// lane of its own in the visualization, which porcupine draws by client:
// the lowest lane free when it is called.
func operations(history []rafttest.Op) []porcupine.Operation {
	var end int64
	for _, op := range history {
		end = max(end, op.Call, op.Return)
	}
	end++
	order := make([]int, len(history))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(history[a].Call, history[b].Call) })
	var laneFree []int64 // the time after which each lane is free
	ops := make([]porcupine.Operation, len(history))
	for _, i := range order {
		op := history[i]
		ret := op.Return
		if op.Open() {
			ret = end
		}
		lane := slices.IndexFunc(laneFree, func(t int64) bool { return t < op.Call })
		if lane < 0 {
			lane = len(laneFree)
			laneFree = append(laneFree, 0)
		}
		laneFree[lane] = ret
		var out any
		if op.Kind == rafttest.OpGet {
			out = op.Value
		}
		ops[i] = porcupine.Operation{
			ClientId: lane,
			Input:    input{kind: op.Kind, key: op.Key, value: op.Value},
			Call:     op.Call,
			Output:   out,
			Return:   ret,
			Metadata: op,
		}
	}
	return ops
}

// NotLinearizable is the error of a history that is not linearizable.
type NotLinearizable struct {
	// Key is a key whose operations have no linearization.
	Key string
	// Reason names a read that no linearization can explain and why (a
	// stale read, a value never written, a value from the future), when
	// such a simple reason is found; else it is empty.
	Reason string
	// Culprits are the operations Reason is about (the read first).
	Culprits []rafttest.Op
	// Longest is the longest linearization porcupine found of a part of
	// Key's operations, in its order.
	Longest []rafttest.Op
	// Ops are the operations on Key, by call.
	Ops []rafttest.Op
	// HTML is the file the visualization was written to, if asked; the
	// error that prevented it, if any, is HTMLError.
	HTML      string
	HTMLError error
}

// listed is the number of operations Error lists at most.
const listed = 40

func (e *NotLinearizable) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lincheck: the history is not linearizable: the %d operations on key %s have no linearization", len(e.Ops), e.Key)
	if e.Reason != "" {
		fmt.Fprintf(&b, "\n%s", e.Reason)
		for _, op := range e.Culprits {
			fmt.Fprintf(&b, "\n  %s", op)
		}
	} else {
		b.WriteString("\n(no single stale read explains it; see the operations and the longest linearization)")
	}
	if len(e.Longest) > 0 {
		last := e.Longest[max(0, len(e.Longest)-5):]
		fmt.Fprintf(&b, "\nthe longest linearization found has %d operations; it ends with:", len(e.Longest))
		for _, op := range last {
			fmt.Fprintf(&b, "\n  %s", op)
		}
	}
	ops := e.window()
	fmt.Fprintf(&b, "\noperations on %s (time order of calls; %d of %d shown):", e.Key, len(ops), len(e.Ops))
	for _, op := range ops {
		fmt.Fprintf(&b, "\n  [%d..%s] %s", op.Call, returnTime(op), op)
	}
	switch {
	case e.HTML != "":
		fmt.Fprintf(&b, "\nvisualization: %s", e.HTML)
	case e.HTMLError != nil:
		fmt.Fprintf(&b, "\nvisualization not written: %v", e.HTMLError)
	}
	return b.String()
}

func returnTime(op rafttest.Op) string {
	if op.Open() {
		return "open"
	}
	return fmt.Sprint(op.Return)
}

// window returns the operations on the key worth listing: those that
// overlap the culprits' span (or, without culprits, that follow the
// longest linearization's last operation), at most listed of them.
func (e *NotLinearizable) window() []rafttest.Op {
	var from, to int64
	switch {
	case len(e.Culprits) > 0:
		from, to = e.Culprits[0].Call, e.Culprits[0].Return
		for _, op := range e.Culprits {
			from = min(from, op.Call)
			if !op.Open() {
				to = max(to, op.Return)
			}
		}
	case len(e.Longest) > 0:
		from, to = e.Longest[len(e.Longest)-1].Call, -1
	}
	var out []rafttest.Op
	for _, op := range e.Ops {
		if (op.Open() || op.Return >= from) && (to < 0 || op.Call <= to) {
			out = append(out, op)
		}
	}
	if len(out) > listed {
		out = out[:listed]
	}
	return out
}

// describe builds the error for an illegal history from porcupine's
// verdict on each key.
func describe(ops []porcupine.Operation, info porcupine.LinearizationInfo) *NotLinearizable {
	parts := model.Partition(ops)
	partials := info.PartialLinearizationsOperations()
	for p, part := range parts {
		if porcupine.CheckOperations(model, part) {
			continue
		}
		e := &NotLinearizable{Key: part[0].Input.(input).key}
		for _, op := range part {
			e.Ops = append(e.Ops, op.Metadata.(rafttest.Op))
		}
		slices.SortFunc(e.Ops, func(a, b rafttest.Op) int { return cmp.Compare(a.Call, b.Call) })
		if p < len(partials) {
			for _, lin := range partials[p] {
				if len(lin) > len(e.Longest) {
					e.Longest = e.Longest[:0]
					for _, op := range lin {
						e.Longest = append(e.Longest, op.Metadata.(rafttest.Op))
					}
				}
			}
		}
		e.Reason, e.Culprits = explain(e.Ops)
		return e
	}
	// Unreachable: the whole history is illegal only if a key is.
	return &NotLinearizable{Reason: "porcupine found the history illegal but no key alone"}
}

// before reports whether a returned before b was called.
func before(a, b rafttest.Op) bool { return !a.Open() && a.Return < b.Call }

// explain looks for a read that no linearization can explain, among the
// operations on one key: a value no write wrote, a value written only
// after the read returned, a value overwritten before the read was
// called, or a value older than one an earlier read returned.
func explain(ops []rafttest.Op) (string, []rafttest.Op) {
	writes := map[string]rafttest.Op{} // by value: the simulator's values are unique
	var deletes, puts, reads []rafttest.Op
	for _, op := range ops {
		switch op.Kind {
		case rafttest.OpPut:
			writes[op.Value] = op
			puts = append(puts, op)
		case rafttest.OpDelete:
			deletes = append(deletes, op)
		case rafttest.OpGet:
			reads = append(reads, op)
		}
	}
	// overwritten returns a write that surely replaced the value r read
	// before r was called: after w, the put of it, or, for a missing key,
	// after every delete.
	overwritten := func(r rafttest.Op, w *rafttest.Op) (rafttest.Op, bool) {
		if w != nil {
			for _, o := range ops {
				if o.Kind != rafttest.OpGet && o.Value != r.Value && before(*w, o) && before(o, r) {
					return o, true
				}
			}
			return rafttest.Op{}, false
		}
		for _, o := range puts {
			if before(o, r) && !slices.ContainsFunc(deletes, func(d rafttest.Op) bool { return !before(d, o) }) {
				return o, true
			}
		}
		return rafttest.Op{}, false
	}
	for _, r := range reads {
		var w *rafttest.Op
		if r.Value != "" {
			wr, ok := writes[r.Value]
			if !ok {
				return "a read returned a value that no write wrote:", []rafttest.Op{r}
			}
			if before(r, wr) {
				return "a read returned a value written only after the read returned:", []rafttest.Op{r, wr}
			}
			w = &wr
		}
		if o, ok := overwritten(r, w); ok {
			culprits := []rafttest.Op{r}
			if w != nil {
				culprits = append(culprits, *w)
			}
			return "a stale read: it returned a value that a later write had replaced before the read was called (read, the write it saw, the write that replaced it):",
				append(culprits, o)
		}
	}
	// A read older than an earlier read: r2 called after r1 returned, but
	// r2's value was surely replaced by r1's.
	for _, r1 := range reads {
		w1, ok := writes[r1.Value]
		if !ok {
			continue
		}
		for _, r2 := range reads {
			if !before(r1, r2) || r2.Value == r1.Value {
				continue
			}
			if w2, ok := writes[r2.Value]; ok && before(w2, w1) {
				return "a read went back in time: it returned a value older than one an earlier read returned (the later read, the earlier read, and their writes):",
					[]rafttest.Op{r2, r1, w2, w1}
			}
		}
	}
	return "", nil
}
