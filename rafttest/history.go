package rafttest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/raftly/raft"
)

// The client history: the KV writes and reads that clients make on the
// nodes, each with the moments it was called and returned, for a
// linearizability checker (rafttest/lincheck) to judge.
//
// A write is a KV command ("put k v", "del k") proposed on a running node;
// it is called when proposed and returns when that same node, in the same
// incarnation, applies the entry that carries it (or restores a snapshot
// that covers it). A write the node refused is left out (it never happens:
// the library does not carry a refused proposal); a write never seen
// applied by its node stays open: it may or may not have happened.
//
// A read of key k on node N calls RawNode.ReadIndex with a request context
// of its own. When a Ready of N hands out the ReadState for it, the read
// waits until N has applied up to the ReadState's index, and returns N's
// value of k at that moment. A read that ReadIndex refused, or whose
// ReadState never came (given up by the library after a leader change or
// a lost message, or lost with a crash of N), is left out: it returned
// nothing, so it constrains nothing.

// OpKind is the kind of a client operation.
type OpKind uint8

const (
	// OpPut writes Value to Key.
	OpPut OpKind = iota + 1
	// OpDelete removes Key.
	OpDelete
	// OpGet reads Key: Value is what it returned ("" for a missing key).
	OpGet
)

func (k OpKind) String() string {
	switch k {
	case OpPut:
		return "put"
	case OpDelete:
		return "del"
	case OpGet:
		return "get"
	}
	return "op(" + strconv.Itoa(int(k)) + ")"
}

// Op is one client operation of a Cluster's history.
type Op struct {
	Kind OpKind
	Key  string
	// Value is the value written by a put, the value returned by a get
	// ("" when the key was missing), and "" for a delete. The simulator's
	// own writes never write "".
	Value string
	// Node is the node the client called.
	Node int64
	// Call and Return order the operations in real time. They count the
	// events of the history (every call and every return is one, in the
	// order they happened), so an operation whose Return is below another's
	// Call finished before the other began; no two events share a time.
	// Return is 0 while the operation is open: a write never seen applied
	// by the node it was proposed on may or may not have taken effect.
	Call, Return int64
	// CallStep and ReturnStep are the simulator steps of the call and of
	// the return (0 while open), to find them in the trace.
	CallStep, ReturnStep int
	// Index is, for a write, the log index of its entry (0 while open);
	// for a read, the index the ReadState gave (for a local read, the
	// index the node had applied).
	Index int64
	// ID is the request id of a write (its entry's "#<id>" tag) or the
	// number of a read (its request context is "read <id>").
	ID int64
}

// Open reports whether the operation has not returned.
func (o Op) Open() bool { return o.Return == 0 }

func (o Op) String() string {
	var what string
	switch o.Kind {
	case OpPut:
		what = fmt.Sprintf("put %s %s", o.Key, o.Value)
	case OpDelete:
		what = "del " + o.Key
	case OpGet:
		v := o.Value
		if v == "" {
			v = "(none)"
		}
		what = fmt.Sprintf("get %s -> %s", o.Key, v)
	default:
		what = fmt.Sprintf("%s %s %s", o.Kind, o.Key, o.Value)
	}
	if o.Open() {
		return fmt.Sprintf("%s on node %x, called at step %d, open", what, o.Node, o.CallStep)
	}
	return fmt.Sprintf("%s on node %x, steps %d..%d, index %d", what, o.Node, o.CallStep, o.ReturnStep, o.Index)
}

// History returns the client operations so far, in the order they were
// called: every write (open or returned) and every read that returned.
func (c *Cluster) History() []Op {
	out := make([]Op, 0, len(c.ops))
	for _, o := range c.ops {
		if o.Kind == OpGet && o.Open() {
			continue
		}
		out = append(out, o)
	}
	return out
}

// pendingRead is a read a node asked for, not yet returned.
type pendingRead struct {
	op       int // index in Cluster.ops
	rctx     []byte
	answered bool  // its ReadState came
	index    int64 // the ReadState's index
}

// pendingWrite is a write not yet returned: its index in Cluster.ops,
// and the incarnation of the node it was proposed on.
type pendingWrite struct{ op, inc int }

// event returns the time of the next history event.
func (c *Cluster) event() int64 {
	c.clock++
	return c.clock
}

// parseKV parses a KV command (see KV).
func parseKV(cmd []byte) (kind OpKind, key, value string, ok bool) {
	op, rest, _ := bytes.Cut(cmd, []byte{' '})
	switch string(op) {
	case "put":
		k, v, found := bytes.Cut(rest, []byte{' '})
		if !found || len(k) == 0 || len(v) == 0 {
			return 0, "", "", false
		}
		return OpPut, string(k), string(v), true
	case "del":
		if len(rest) == 0 {
			return 0, "", "", false
		}
		return OpDelete, string(rest), "", true
	}
	return 0, "", "", false
}

// historyKeys is the number of keys the simulator's clients use, k0 to
// k7, as KVCommand does.
const historyKeys = 8

// clientCommand returns a random KV command whose value no other write
// of the run has: a read then tells which write it saw.
func (c *Cluster) clientCommand() []byte {
	k := c.rng.IntN(historyKeys)
	if c.rng.IntN(10) == 0 {
		return fmt.Appendf(nil, "del k%d", k)
	}
	c.values++
	return fmt.Appendf(nil, "put k%d w%d", k, c.values)
}

// command returns the data of a random proposal: Config.Command's, or by
// default a KV command with a value of its own.
func (c *Cluster) command() []byte {
	if c.userCommand {
		return c.cfg.Command(c.rng)
	}
	return c.clientCommand()
}

// proposeTagged proposes cmd tagged with request id rid at n and, for a
// KV command that n accepts, records the write in the history.
func (c *Cluster) proposeTagged(n *Node, rid int64, cmd []byte) error {
	data := tagCommand(rid, cmd)
	c.doing, c.doingNode = "Propose", n.id
	call, step := c.event(), c.step
	err := n.rn.Propose(data)
	if err != nil {
		return err
	}
	if kind, key, value, ok := parseKV(cmd); ok {
		c.writes[rid] = pendingWrite{op: len(c.ops), inc: n.inc}
		c.ops = append(c.ops, Op{Kind: kind, Key: key, Value: value, Node: n.id, Call: call, CallStep: step, ID: rid})
		c.stats.Writes++
	}
	return nil
}

// appliedWrite takes in that n applied the entry at index tagged with
// request id rid: the write returns if n is the node, in the same
// incarnation, that it was proposed on.
func (c *Cluster) appliedWrite(n *Node, rid, index int64) {
	w, ok := c.writes[rid]
	if !ok {
		return
	}
	o := &c.ops[w.op]
	if o.Node != n.id || w.inc != n.inc {
		return
	}
	delete(c.writes, rid)
	o.Return, o.ReturnStep, o.Index = c.event(), c.step, index
	c.stats.WritesDone++
}

// restoredWrites takes in that n restored a snapshot at index: the writes
// proposed on n, in this incarnation, whose entries the snapshot covers
// return (in the order of their request ids).
func (c *Cluster) restoredWrites(n *Node, index int64) {
	var rids []int64
	for rid, w := range c.writes {
		if c.ops[w.op].Node == n.id && w.inc == n.inc {
			if at, ok := c.firstIndex[rid]; ok && at <= index {
				rids = append(rids, rid)
			}
		}
	}
	slices.Sort(rids)
	for _, rid := range rids {
		c.appliedWrite(n, rid, c.firstIndex[rid])
	}
}

var errNotKV = errors.New("rafttest: reads need the KV state machine")

// Read makes a client read key on a running node: RawNode.ReadIndex, and
// once its ReadState comes and the node has applied up to its index, the
// node's value of key, recorded in the History. It returns ReadIndex's
// error (the read is then left out of the history). With
// Config.UnsafeLocalReads the read returns at once.
func (c *Cluster) Read(id int64, key string) error {
	err := errViolated
	c.op(func() { err = c.read(id, key) })
	return err
}

func (c *Cluster) read(id int64, key string) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	kv, ok := n.sm.(*KV)
	if !ok {
		return errNotKV
	}
	c.nextRead++
	o := Op{Kind: OpGet, Key: key, Node: id, Call: c.event(), CallStep: c.step, ID: c.nextRead}
	if c.cfg.UnsafeLocalReads {
		o.Value, _ = kv.Get(key)
		o.Return, o.ReturnStep, o.Index = c.event(), c.step, n.applied
		c.ops = append(c.ops, o)
		c.stats.Reads++
		c.stats.ReadsServed++
		c.logf(id, "read %s locally (unsafe): %q at applied %d", key, o.Value, n.applied)
		return nil
	}
	rctx := fmt.Appendf(nil, "read %d", o.ID)
	c.doing, c.doingNode = "ReadIndex", id
	if err := n.rn.ReadIndex(rctx); err != nil {
		c.stats.ReadsRefused++
		c.logf(id, "read %s (%s): %v", key, rctx, err)
		return err
	}
	n.reads = append(n.reads, pendingRead{op: len(c.ops), rctx: rctx})
	c.ops = append(c.ops, o)
	c.stats.Reads++
	c.logf(id, "read %s (%s)", key, rctx)
	return nil
}

// readStates takes in the ReadStates of a Ready of n.
func (c *Cluster) readStates(n *Node, rss []raft.ReadState) bool {
	for _, rs := range rss {
		k := -1
		for i := range n.reads {
			if !n.reads[i].answered && bytes.Equal(n.reads[i].rctx, rs.RequestCtx) {
				k = i
				break
			}
		}
		if k < 0 {
			return c.fail(found(CheckRead, "node %x is handed a ReadState for %q, a read it has not asked for or was answered already", n.id, rs.RequestCtx))
		}
		if rs.Index > c.chk.commitIndex {
			return c.fail(found(CheckRead, "node %x is handed a ReadState for %q at index %d, beyond the highest index known committed (%d)", n.id, rs.RequestCtx, rs.Index, c.chk.commitIndex))
		}
		n.reads[k].answered, n.reads[k].index = true, rs.Index
		c.logf(n.id, "ReadState %s: index %d", rs.RequestCtx, rs.Index)
	}
	return false
}

// serveReads returns the answered reads of n whose index n has applied.
func (c *Cluster) serveReads(n *Node) {
	if len(n.reads) == 0 {
		return
	}
	kv, _ := n.sm.(*KV)
	keep := n.reads[:0]
	for _, r := range n.reads {
		if !r.answered || r.index > n.applied || kv == nil {
			keep = append(keep, r)
			continue
		}
		o := &c.ops[r.op]
		o.Value, _ = kv.Get(o.Key)
		o.Return, o.ReturnStep, o.Index = c.event(), c.step, r.index
		c.stats.ReadsServed++
		c.logf(n.id, "read %s (%s) returns %q at applied %d", o.Key, r.rctx, o.Value, n.applied)
	}
	clear(n.reads[len(keep):])
	n.reads = keep
}

// TransferLeadership asks running node id, the leader, to hand leadership
// to node to (RawNode.TransferLeadership), and returns its error.
func (c *Cluster) TransferLeadership(id, to int64) error {
	err := errViolated
	c.op(func() { err = c.transfer(id, to) })
	return err
}

func (c *Cluster) transfer(id, to int64) error {
	n, err := c.running(id)
	if err != nil {
		return err
	}
	c.doing, c.doingNode = "TransferLeadership", id
	err = n.rn.TransferLeadership(to)
	c.logf(id, "transfer leadership to %x: %v", to, err)
	if err != nil {
		c.stats.TransfersRefused++
		return err
	}
	if to != id {
		c.stats.Transfers++
		c.transferee, c.transferTerm = to, n.rn.Status().Term
	}
	return nil
}

// becameLeader notes that n leads its term: it completes the transfer
// asked of the previous leader when n was its transferee.
func (c *Cluster) becameLeader(n *Node) {
	if c.transferee == 0 || n.term <= c.transferTerm {
		return
	}
	if n.id == c.transferee {
		c.stats.TransfersDone++
	}
	c.transferee = 0
}
