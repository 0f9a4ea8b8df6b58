package raftstore

import (
	"encoding/binary"
	"fmt"

	"github.com/raftly/raft/raftpb"
)

// Key layout. Every key of a group starts with the group's prefix, 'g' and
// the group id in 8 bytes big-endian, then a kind byte.
//
// The entries of a Save are stored together, as one block under a key
// that ends with the index of its first entry in 8 bytes big-endian, so
// that a group's blocks sort by index and a Save costs Pebble one key,
// whatever the number of entries. A block's entries run from its first
// index until the next block's first index, or its own end: a Save that
// replaces a suffix deletes the blocks that start at or after the first
// replaced index and writes its block there, which hides the rest of the
// block before it. Compaction deletes the blocks whose entries all lie at
// or below the snapshot; the first block left may start below it.
const (
	kindBootstrap = 'b' // the membership the group was first started with
	kindApplied   = 'a' // the applied index the application reported
	kindEntry     = 'e' // + first index: a block of entries
	kindHardState = 'h' // the HardState
	kindSnapshot  = 's' // the snapshot the log starts after

	prefixLen   = 9
	metaKeyLen  = prefixLen + 1
	entryKeyLen = metaKeyLen + 8
)

// formatKey holds the version of the layout; it sorts before every group.
var formatKey = []byte("\x00raftstore-format")

// formatVersion is the layout written by this package.
const formatVersion = "1"

func appendPrefix(dst []byte, group uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 'g'), group)
}

func metaKey(group uint64, kind byte) []byte {
	return append(appendPrefix(make([]byte, 0, metaKeyLen), group), kind)
}

// putEntryKey writes the key of the block starting at index into dst,
// which must hold entryKeyLen bytes.
func putEntryKey(dst []byte, group uint64, index int64) {
	dst[0] = 'g'
	binary.BigEndian.PutUint64(dst[1:], group)
	dst[prefixLen] = kindEntry
	binary.BigEndian.PutUint64(dst[metaKeyLen:], uint64(index))
}

func entryKey(group uint64, index int64) []byte {
	k := make([]byte, entryKeyLen)
	putEntryKey(k, group, index)
	return k
}

// decodeEntryKey returns the first index of a block key.
func decodeEntryKey(key []byte) (int64, bool) {
	if len(key) != entryKeyLen || key[prefixLen] != kindEntry {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(key[metaKeyLen:])), true
}

// A block holds its entries in order, each as its term (uvarint), its
// type (one byte), the length of its data (uvarint) and the data.
func blockSize(ents []raftpb.Entry) int {
	n := 0
	for i := range ents {
		n += uvarintLen(uint64(ents[i].Term)) + 1 + uvarintLen(uint64(len(ents[i].Data))) + len(ents[i].Data)
	}
	return n
}

func putBlock(dst []byte, ents []raftpb.Entry) {
	for i := range ents {
		n := binary.PutUvarint(dst, uint64(ents[i].Term))
		dst[n] = byte(ents[i].Type)
		n++
		n += binary.PutUvarint(dst[n:], uint64(len(ents[i].Data)))
		n += copy(dst[n:], ents[i].Data)
		dst = dst[n:]
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// blockReader reads the entries of a block in turn. The data it returns
// point into the block.
type blockReader struct {
	buf []byte
}

// next returns the next entry's term, type and data; ok is false at the
// end of the block, and err tells a malformed one.
func (r *blockReader) next() (term int64, typ raftpb.EntryType, data []byte, ok bool, err error) {
	if len(r.buf) == 0 {
		return 0, 0, nil, false, nil
	}
	t, n := binary.Uvarint(r.buf)
	if n <= 0 || n >= len(r.buf) {
		return 0, 0, nil, false, fmt.Errorf("malformed entry header")
	}
	typ = raftpb.EntryType(r.buf[n])
	l, m := binary.Uvarint(r.buf[n+1:])
	if m <= 0 || uint64(len(r.buf)-n-1-m) < l {
		return 0, 0, nil, false, fmt.Errorf("malformed entry length")
	}
	start := n + 1 + m
	data = r.buf[start : start+int(l) : start+int(l)]
	r.buf = r.buf[start+int(l):]
	return int64(t), typ, data, true, nil
}

// bootstrap is the membership a group was first started with: the peers
// and learners given to StartNode and the Joining index (0 when none).
type bootstrap struct {
	Peers    []int64
	Learners []int64
	Joining  int64
}

func (b bootstrap) marshal() []byte {
	var out []byte
	out = binary.AppendUvarint(out, uint64(len(b.Peers)))
	for _, id := range b.Peers {
		out = binary.AppendVarint(out, id)
	}
	out = binary.AppendUvarint(out, uint64(len(b.Learners)))
	for _, id := range b.Learners {
		out = binary.AppendVarint(out, id)
	}
	return binary.AppendVarint(out, b.Joining)
}

func unmarshalBootstrap(v []byte) (bootstrap, error) {
	d := decoder{buf: v}
	var b bootstrap
	b.Peers = d.ids()
	b.Learners = d.ids()
	b.Joining = d.varint()
	if err := d.done(); err != nil {
		return bootstrap{}, err
	}
	return b, nil
}

// decoder reads varints from buf, remembering the first error.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.buf)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint")
		return 0
	}
	d.buf = d.buf[n:]
	return v
}

func (d *decoder) ids() []int64 {
	n := d.uvarint()
	if n > uint64(len(d.buf)) {
		d.err = fmt.Errorf("bad count %d", n)
		return nil
	}
	var ids []int64
	for range n {
		ids = append(ids, d.varint())
	}
	return ids
}

func (d *decoder) done() error {
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%d bytes left over", len(d.buf))
	}
	return d.err
}
