package raftstore

import "github.com/raftly/raft/raftpb"

// entryCache holds the most recent entries of a group: a contiguous run
// that ends at the group's last index, at most maxEntries of them and at
// most maxBytes of encoded size (the newest entry is dropped too when it
// alone is larger). The entries share their Data with what Save was
// given, which nobody modifies.
type entryCache struct {
	ents       []raftpb.Entry // ents[k].Index == first()+k
	bytes      int64
	maxEntries int
	maxBytes   int64
}

// first returns the index of the first cached entry, meaningful only when
// the cache is not empty.
func (c *entryCache) first() int64 { return c.ents[0].Index }

// get returns the cached entry at index i, if any.
func (c *entryCache) get(i int64) (*raftpb.Entry, bool) {
	if len(c.ents) == 0 || i < c.first() || i >= c.first()+int64(len(c.ents)) {
		return nil, false
	}
	return &c.ents[i-c.first()], true
}

// append adds ents, which follow the cached run or replace its tail (the
// caller has truncated it with truncateFrom), then drops the oldest
// entries beyond the bounds.
func (c *entryCache) append(ents []raftpb.Entry) {
	if c.maxEntries <= 0 || len(ents) == 0 {
		return
	}
	if len(c.ents) > 0 && ents[0].Index != c.first()+int64(len(c.ents)) {
		c.reset()
	}
	if len(ents) > c.maxEntries {
		ents = ents[len(ents)-c.maxEntries:]
	}
	for i := range ents {
		c.bytes += int64(ents[i].Size())
	}
	c.ents = append(c.ents, ents...)
	drop := 0
	for drop < len(c.ents) && (len(c.ents)-drop > c.maxEntries || c.bytes > c.maxBytes) {
		c.bytes -= int64(c.ents[drop].Size())
		drop++
	}
	c.dropFront(drop)
}

// truncateFrom drops the cached entries at index i and after.
func (c *entryCache) truncateFrom(i int64) {
	if len(c.ents) == 0 || i >= c.first()+int64(len(c.ents)) {
		return
	}
	if i <= c.first() {
		c.reset()
		return
	}
	keep := int(i - c.first())
	for k := keep; k < len(c.ents); k++ {
		c.bytes -= int64(c.ents[k].Size())
	}
	clear(c.ents[keep:])
	c.ents = c.ents[:keep]
}

// dropTo drops the cached entries at index i and before.
func (c *entryCache) dropTo(i int64) {
	if len(c.ents) == 0 || i < c.first() {
		return
	}
	n := min(int(i-c.first()+1), len(c.ents))
	for k := range n {
		c.bytes -= int64(c.ents[k].Size())
	}
	c.dropFront(n)
}

// dropFront forgets the first n entries, releasing their Data.
func (c *entryCache) dropFront(n int) {
	if n == 0 {
		return
	}
	if n == len(c.ents) {
		c.reset()
		return
	}
	clear(c.ents[:n])
	c.ents = c.ents[n:]
}

func (c *entryCache) reset() {
	clear(c.ents)
	c.ents = c.ents[:0]
	c.bytes = 0
}
