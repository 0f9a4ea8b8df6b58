package rafttest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"

	"github.com/raftly/raft/raftpb"
)

// StateMachine is the application's replicated state, the part a user
// plugs in to test it under the simulator. Each node has its own instance;
// a crash loses it, and a restart builds a fresh one (Config.StateMachine)
// and restores it from the snapshot on the node's disk, if any, before
// the committed entries are applied again.
type StateMachine interface {
	// Apply applies a committed normal entry, in log order. e.Data is the
	// command as proposed (Config.Command or Cluster.Propose), without the
	// request tag the simulator adds; entries without data (a new leader's
	// empty entry) and config entries are not passed. Apply must be
	// deterministic: every node applies the same entries.
	Apply(e raftpb.Entry)
	// Snapshot returns the whole state, for compaction. Two nodes that
	// applied the same entries must return the same bytes.
	Snapshot() []byte
	// Restore replaces the state with one returned by Snapshot.
	Restore(data []byte) error
}

// Digester may be implemented by a StateMachine whose state has a cheap
// digest: the simulator then compares the digests of all nodes after every
// entry they apply and after every snapshot they restore. Without it,
// states are compared through Snapshot, at compactions.
type Digester interface {
	// Digest returns a hash of the state: equal states, equal digests.
	Digest() uint64
}

// KV is the default state machine: a map of string keys to string values,
// with the commands "put <key> <value>" and "del <key>" (anything else is
// applied as a no-op). It implements Digester, with a digest updated
// incrementally as keys change. The zero value is an empty KV.
type KV struct {
	m      map[string]string
	digest uint64
}

// NewKV returns an empty KV; it is a Config.StateMachine.
func NewKV(id int64) StateMachine { return &KV{} }

// Get returns the value of key.
func (kv *KV) Get(key string) (string, bool) {
	v, ok := kv.m[key]
	return v, ok
}

// Len returns the number of keys.
func (kv *KV) Len() int { return len(kv.m) }

func pairHash(k, v string) uint64 {
	h := hashBytes(fnvOffset, k)
	h = mix(h, uint64(len(k)))
	h = hashBytes(h, v)
	return mix(h, uint64(len(v)))
}

func (kv *KV) set(k, v string) {
	if kv.m == nil {
		kv.m = map[string]string{}
	}
	if old, ok := kv.m[k]; ok {
		kv.digest ^= pairHash(k, old)
	}
	kv.m[k] = v
	kv.digest ^= pairHash(k, v)
}

func (kv *KV) del(k string) {
	if old, ok := kv.m[k]; ok {
		kv.digest ^= pairHash(k, old)
		delete(kv.m, k)
	}
}

// Apply implements StateMachine.
func (kv *KV) Apply(e raftpb.Entry) {
	op, rest, _ := bytes.Cut(e.Data, []byte{' '})
	switch string(op) {
	case "put":
		k, v, _ := bytes.Cut(rest, []byte{' '})
		kv.set(string(k), string(v))
	case "del":
		kv.del(string(rest))
	}
}

// Snapshot implements StateMachine: the keys in order, one "key value"
// line each (keys and values hold no spaces or newlines).
func (kv *KV) Snapshot() []byte {
	keys := make([]string, 0, len(kv.m))
	for k := range kv.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	for _, k := range keys {
		b = append(append(append(append(b, k...), ' '), kv.m[k]...), '\n')
	}
	return b
}

// Restore implements StateMachine.
func (kv *KV) Restore(data []byte) error {
	*kv = KV{}
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte{'\n'})
		if !ok {
			return errors.New("rafttest: KV snapshot: last line not terminated")
		}
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			return fmt.Errorf("rafttest: KV snapshot: bad line %q", line)
		}
		kv.set(string(k), string(v))
		data = rest
	}
	return nil
}

// Digest implements Digester.
func (kv *KV) Digest() uint64 { return kv.digest }

// KVCommand returns a random KV command over a few keys; it is the default
// Config.Command.
func KVCommand(r *rand.Rand) []byte {
	k := r.IntN(8)
	if r.IntN(10) == 0 {
		return fmt.Appendf(nil, "del k%d", k)
	}
	return fmt.Appendf(nil, "put k%d v%d", k, r.IntN(1000))
}

// Request tags: the simulator proposes "#<id> <command>", so that every
// proposal can be told apart in the log (as an application tags its
// commands with a request id), and hands the state machine the command
// alone.

func tagCommand(rid int64, cmd []byte) []byte {
	b := make([]byte, 0, len(cmd)+12)
	b = append(b, '#')
	b = strconv.AppendInt(b, rid, 10)
	b = append(b, ' ')
	return append(b, cmd...)
}

// untag splits a tagged command; rid is 0 for data without a tag.
func untag(data []byte) (rid int64, cmd []byte) {
	if len(data) == 0 || data[0] != '#' {
		return 0, data
	}
	for i := 1; i < len(data); i++ {
		c := data[i]
		if c == ' ' {
			return rid, data[i+1:]
		}
		if c < '0' || c > '9' {
			return 0, data
		}
		rid = rid*10 + int64(c-'0')
	}
	return 0, data
}
