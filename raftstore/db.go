package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	crdberrors "github.com/cockroachdb/errors"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/raftly/raft/raftpb"
)

// Errors the caller can test for with errors.Is. The errors returned wrap
// one of these with what went wrong, the store's directory and, for damage
// Pebble found, Pebble's own report naming the file.
var (
	// ErrInvalid: the call was refused, nothing was written; the input
	// would have left an invalid Raft log.
	ErrInvalid = errors.New("raftstore: invalid input")
	// ErrNotBootstrapped: Save before Bootstrap recorded how the group
	// started; without it the group could not be restarted.
	ErrNotBootstrapped = errors.New("raftstore: group not bootstrapped")
	// ErrCorrupt: the files are damaged or acknowledged data are missing.
	ErrCorrupt = errors.New("raftstore: corrupt store")
	// ErrClosed: the DB was closed.
	ErrClosed = errors.New("raftstore: closed")
)

// Defaults of Options.
const (
	DefaultCacheEntries = 1024
	DefaultCacheBytes   = 4 << 20
)

// Options configure a DB. The zero value, and nil, are the defaults.
type Options struct {
	// CacheEntries bounds how many of its most recent entries each group
	// keeps in memory; 0 means DefaultCacheEntries, a negative value none.
	CacheEntries int
	// CacheBytes bounds their encoded size, per group; 0 means
	// DefaultCacheBytes.
	CacheBytes int64
	// Pebble, when not nil, adjusts the options Pebble is opened with
	// (block cache, memtable size, logger, ...). The store wraps the file
	// system it leaves in place to count the log's syncs.
	Pebble func(*pebble.Options)
}

// DB is one Pebble instance holding the logs of any number of Raft groups.
// Its methods are safe for concurrent use.
type DB struct {
	dir  string
	pdb  *pebble.DB
	fs   *countingFS
	opts Options

	commits atomic.Int64

	mu     sync.Mutex
	closed bool
	stores map[uint64]*Store
	// loaded holds the groups read at Open to check them against the
	// record of the last clean close, until Group hands them out.
	loaded map[uint64]*groupState
}

// Open opens the DB in dir, creating it if needed. When the DB was closed
// cleanly, every group is checked against what Close recorded, and Open
// fails with an error wrapping ErrCorrupt if one holds less.
func Open(dir string, opts *Options) (*DB, error) {
	db := &DB{dir: dir, stores: map[uint64]*Store{}, loaded: map[uint64]*groupState{}}
	if opts != nil {
		db.opts = *opts
	}
	if db.opts.CacheEntries == 0 {
		db.opts.CacheEntries = DefaultCacheEntries
	}
	if db.opts.CacheBytes == 0 {
		db.opts.CacheBytes = DefaultCacheBytes
	}
	po := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             quietLogger{},
	}
	if db.opts.Pebble != nil {
		db.opts.Pebble(po)
	}
	if po.EventListener == nil {
		po.EventListener = &pebble.EventListener{}
	}
	if po.EventListener.DataCorruption == nil {
		// Pebble's default ends the process; the read that met the damage
		// returns an error naming the file, and the caller decides.
		po.EventListener.DataCorruption = func(pebble.DataCorruptionInfo) {}
	}
	if po.FS == nil {
		po.FS = vfs.Default
	}
	db.fs = &countingFS{FS: po.FS}
	po.FS = db.fs
	if err := po.FS.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("raftstore: open %s: %w", dir, err)
	}
	// Opening Pebble replays its log and then drops it: read the files
	// first, to name the damaged ones if the check after a clean close
	// finds data missing. (Only then: after a crash the end of the last
	// log is expected to be torn.)
	var diag string
	if _, err := po.FS.Stat(po.FS.PathJoin(dir, closeRecordName)); err == nil {
		diag = unreadableFiles(po.FS, dir)
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("%w%s", db.wrap(err, "opening Pebble"), unreadableFiles(po.FS, dir))
	}
	db.pdb = pdb
	if err := db.init(diag); err != nil {
		_ = pdb.Close()
		return nil, err
	}
	return db, nil
}

// init checks the layout version and the record of the last clean close;
// diag names the files that failed to read before Pebble opened.
func (db *DB) init(diag string) error {
	v, found, err := db.get(formatKey)
	switch {
	case err != nil:
		return db.wrap(err, "reading the format version")
	case !found:
		if err := db.pdb.Set(formatKey, []byte(formatVersion), pebble.Sync); err != nil {
			return db.wrap(err, "writing the format version")
		}
		// A new Pebble writes its first log before it has settled on its
		// format, in the older format without the synced offsets that tell
		// damage from a torn end (see the package documentation). A flush
		// moves on to a new log, in the new format.
		if err := db.pdb.Flush(); err != nil {
			return db.wrap(err, "flushing the new store")
		}
	case string(v) != formatVersion:
		return fmt.Errorf("raftstore: %s: layout version %q, this package reads %q", db.dir, v, formatVersion)
	}
	rec, found, err := readCloseRecord(db.fs.FS, db.dir)
	if err != nil || !found {
		return err
	}
	for id, want := range rec {
		g, err := db.loadGroup(id)
		if err != nil {
			return fmt.Errorf("%w%s", err, diag)
		}
		if got := g.summary(); got != want {
			return fmt.Errorf("%w: %s: group %d holds %v, but at the last clean close it held %v: acknowledged data are missing; a file of Pebble's (log, MANIFEST or table) was truncated, replaced or rolled back%s",
				ErrCorrupt, db.dir, id, got, want, diag)
		}
		db.loaded[id] = g
	}
	// Writes may follow: the record no longer describes the store.
	return removeCloseRecord(db.fs.FS, db.dir)
}

// wrap names the directory and what was being done, and marks damage that
// Pebble found with ErrCorrupt.
func (db *DB) wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	// Pebble marks damage with cockroachdb/errors marks, which only that
	// package's Is sees.
	if crdberrors.Is(err, pebble.ErrCorruption) {
		return fmt.Errorf("%w: %s: %s: %w", ErrCorrupt, db.dir, what, err)
	}
	return fmt.Errorf("raftstore: %s: %s: %w", db.dir, what, err)
}

// Group opens the store of group id (any number; groups need not be
// created first) and returns what its node restarts from. A group can be
// opened once per DB. Reading the group checks that its log is valid
// Raft: an error wrapping ErrCorrupt tells what is missing or damaged.
func (db *DB) Group(id uint64) (*Store, State, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return nil, State{}, ErrClosed
	}
	if db.stores[id] != nil {
		return nil, State{}, fmt.Errorf("raftstore: %s: group %d is already open", db.dir, id)
	}
	g := db.loaded[id]
	delete(db.loaded, id)
	if g == nil {
		var err error
		if g, err = db.loadGroup(id); err != nil {
			return nil, State{}, err
		}
	}
	s := newStore(db, id, g)
	db.stores[id] = s
	return s, g.state(), nil
}

// State is what a group's node restarts from.
type State struct {
	// Bootstrapped is false for a new group: call Store.Bootstrap, then
	// StartNode. When true, restart the node with RestartNode.
	Bootstrapped bool
	// Snapshot is the latest snapshot, nil when there is none.
	Snapshot *raftpb.Snapshot
	// HardState is the latest one saved (empty if none).
	HardState raftpb.HardState
	// Peers and Learners are the membership at the start of the log: the
	// snapshot's Nodes and Learners, or, with no snapshot, what
	// Bootstrap recorded.
	Peers, Learners []int64
	// Joining is the Joining index Bootstrap recorded, while no snapshot
	// is stored; 0 otherwise (Joining(0) is no option at all).
	Joining int64
	// Applied is the last applied index written (see Store.SetApplied).
	Applied int64
	// FirstIndex and LastIndex bound the entries stored (LastIndex <
	// FirstIndex when none is).
	FirstIndex, LastIndex int64
}

// Stats are counters of a DB since Open.
type Stats struct {
	// Commits counts the synced batches the stores committed (one per
	// Save, Compact, Bootstrap that waits for a sync; a Save that only
	// raises the commit index does not).
	Commits int64
	// WALSyncs counts the syncs of Pebble's write-ahead log. Concurrent
	// Saves of several groups share syncs: WALSyncs < Commits.
	WALSyncs int64
}

// Stats returns the DB's counters.
func (db *DB) Stats() Stats {
	return Stats{Commits: db.commits.Load(), WALSyncs: db.fs.walSyncs.Load()}
}

// Close writes the applied indexes not yet written, records what every
// group holds for the next Open to check, and closes Pebble. The DB's
// stores must not be in use during Close, and fail with ErrClosed after.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrClosed
	}
	db.closed = true
	rec := closeRecord{}
	var firstErr error
	for id, s := range db.stores {
		sum, err := s.close()
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		rec[id] = sum
	}
	ids, err := db.listGroups()
	firstErr = cmpErr(firstErr, err)
	for _, id := range ids {
		if _, ok := rec[id]; ok || db.stores[id] != nil {
			continue
		}
		g := db.loaded[id]
		if g == nil {
			if g, err = db.loadGroup(id); err != nil {
				firstErr = cmpErr(firstErr, err)
				continue
			}
		}
		rec[id] = g.summary()
	}
	firstErr = cmpErr(firstErr, db.wrapIf(db.pdb.Close(), "closing Pebble"))
	if firstErr != nil {
		return firstErr
	}
	return writeCloseRecord(db.fs.FS, db.dir, rec)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (db *DB) wrapIf(err error, what string) error {
	if err == nil {
		return nil
	}
	return db.wrap(err, "%s", what)
}

// listGroups returns the ids of the groups that hold anything.
func (db *DB) listGroups() ([]uint64, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{'g'}, UpperBound: []byte{'h'}})
	if err != nil {
		return nil, db.wrap(err, "listing groups")
	}
	var ids []uint64
	for ok := it.First(); ok; {
		k := it.Key()
		if len(k) < prefixLen {
			_ = it.Close()
			return nil, fmt.Errorf("%w: %s: key %q belongs to no group", ErrCorrupt, db.dir, k)
		}
		id := groupOf(k)
		ids = append(ids, id)
		if id == math.MaxUint64 {
			break
		}
		ok = it.SeekGE(appendPrefix(nil, id+1))
	}
	err = it.Close()
	if err != nil {
		return nil, db.wrap(err, "listing groups")
	}
	return ids, nil
}

// groupState is what loadGroup read of a group.
type groupState struct {
	boot           *bootstrap // nil: not bootstrapped
	hs             raftpb.HardState
	snap           raftpb.Snapshot
	applied        int64
	last, lastTerm int64
	tail           []raftpb.Entry // the most recent entries, for the cache
}

// loadGroup reads group id and checks that its log is valid Raft: entries
// contiguous from the snapshot on, terms that never go down, a commit
// index within the log.
func (db *DB) loadGroup(id uint64) (*groupState, error) {
	g := &groupState{}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: group %d: %s", ErrCorrupt, db.dir, id, fmt.Sprintf(format, args...))
	}
	if v, ok, err := db.get(metaKey(id, kindBootstrap)); err != nil {
		return nil, db.wrap(err, "group %d: reading the bootstrap record", id)
	} else if ok {
		b, err := unmarshalBootstrap(v)
		if err != nil {
			return nil, corrupt("bootstrap record: %v", err)
		}
		g.boot = &b
	}
	if v, ok, err := db.get(metaKey(id, kindHardState)); err != nil {
		return nil, db.wrap(err, "group %d: reading the HardState", id)
	} else if ok {
		if err := g.hs.Unmarshal(v); err != nil {
			return nil, corrupt("HardState: %v", err)
		}
	}
	if v, ok, err := db.get(metaKey(id, kindSnapshot)); err != nil {
		return nil, db.wrap(err, "group %d: reading the snapshot", id)
	} else if ok {
		if err := g.snap.Unmarshal(v); err != nil {
			return nil, corrupt("snapshot: %v", err)
		}
	}
	if v, ok, err := db.get(metaKey(id, kindApplied)); err != nil {
		return nil, db.wrap(err, "group %d: reading the applied index", id)
	} else if ok {
		d := decoder{buf: v}
		g.applied = d.varint()
		if err := d.done(); err != nil {
			return nil, corrupt("applied index: %v", err)
		}
	}

	// Scan the log, block by block, for the terms of its entries.
	g.last, g.lastTerm = g.snap.Index, g.snap.Term
	it, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: metaKey(id, kindEntry),
		UpperBound: metaKey(id, kindEntry+1),
	})
	if err != nil {
		return nil, db.wrap(err, "group %d: reading the log", id)
	}
	var (
		base  int64   // first index of the first block
		terms []int64 // terms of the entries from base on
	)
	for ok := it.First(); ok; ok = it.Next() {
		first, ok := decodeEntryKey(it.Key())
		if !ok {
			_ = it.Close()
			return nil, corrupt("malformed entry key %q", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return nil, db.wrap(err, "group %d: reading the entries from %d", id, first)
		}
		if terms == nil {
			base = first
		}
		if end := base + int64(len(terms)); first > end {
			_ = it.Close()
			return nil, corrupt("entries %d to %d are missing", end, first-1)
		}
		terms = terms[:first-base] // this block hides the rest of the one before
		r := blockReader{buf: v}
		for {
			t, _, _, ok, err := r.next()
			if err != nil {
				_ = it.Close()
				return nil, corrupt("entry %d: %v", base+int64(len(terms)), err)
			}
			if !ok {
				break
			}
			terms = append(terms, t)
		}
	}
	if err := it.Close(); err != nil {
		return nil, db.wrap(err, "group %d: reading the log", id)
	}
	if len(terms) > 0 {
		if base > g.snap.Index+1 {
			return nil, corrupt("the log starts at entry %d, not right after the snapshot (%d)", base, g.snap.Index)
		}
		for i := g.snap.Index + 1; i < base+int64(len(terms)); i++ {
			t := terms[i-base]
			if t < g.lastTerm {
				return nil, corrupt("entry %d has term %d, below the term %d before it", i, t, g.lastTerm)
			}
			g.last, g.lastTerm = i, t
		}
	}
	if g.hs.Commit > g.last {
		return nil, corrupt("the HardState commits entry %d but the log ends at %d: committed entries are missing", g.hs.Commit, g.last)
	}
	if g.last > g.snap.Index && db.opts.CacheEntries > 0 {
		lo := max(g.snap.Index+1, g.last-int64(db.opts.CacheEntries)+1)
		if g.tail, err = db.readEntries(id, lo, g.last+1, 0); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// get returns a copy of the value at key, and whether there is one.
func (db *DB) get(key []byte) ([]byte, bool, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := slices.Clone(v)
	return out, true, closer.Close()
}

// readEntries reads the entries [lo, hi) of group id from Pebble: the
// longest prefix of at most maxBytes (0: no limit), and at least one.
// Every entry in the range must be there.
func (db *DB) readEntries(id uint64, lo, hi, maxBytes int64) ([]raftpb.Entry, error) {
	fail := func(err error) ([]raftpb.Entry, error) {
		return nil, db.wrap(err, "group %d: reading entries [%d, %d)", id, lo, hi)
	}
	corrupt := func(format string, args ...any) ([]raftpb.Entry, error) {
		return nil, fmt.Errorf("%w: %s: group %d: reading entries [%d, %d): %s", ErrCorrupt, db.dir, id, lo, hi, fmt.Sprintf(format, args...))
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: metaKey(id, kindEntry), UpperBound: entryKey(id, hi)})
	if err != nil {
		return fail(err)
	}
	defer it.Close()
	want := hi - lo
	if maxBytes > 0 {
		want = min(want, 64) // maxBytes may stop it long before hi
	}
	ents := make([]raftpb.Entry, 0, want)
	var (
		size int64
		cut  bool   // stopped by maxBytes
		slab []byte // the entries' Data, copied out of Pebble's buffers
	)
	// Start at the block that holds lo; go on while a block may hide or
	// add entries to what was read.
	for ok := it.SeekLT(entryKey(id, lo+1)); ok; ok = it.Next() {
		first, _ := decodeEntryKey(it.Key())
		next := lo + int64(len(ents))
		switch {
		case first > next:
			if cut {
				return ents, nil
			}
			return corrupt("entry %d is missing", next)
		case first < next:
			// This block hides what the one before held from first on.
			ents = ents[:max(first-lo, 0)]
			size, cut = 0, false
			for i := range ents {
				size += int64(ents[i].Size())
			}
		case cut || next == hi:
			return ents, nil
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fail(err)
		}
		r := blockReader{buf: v}
		for i := first; i < hi; i++ {
			t, typ, data, ok, err := r.next()
			if err != nil {
				return corrupt("entry %d: %v", i, err)
			}
			if !ok {
				break
			}
			if i < lo {
				continue
			}
			e := raftpb.Entry{Index: i, Term: t, Type: typ}
			if len(data) > 0 {
				if cap(slab)-len(slab) < len(data) {
					// Room for this entry and the rest of its block, up to 64 KiB.
					slab = make([]byte, 0, max(len(data), min(len(data)+len(r.buf), 64<<10)))
				}
				start := len(slab)
				slab = append(slab, data...)
				e.Data = slab[start:len(slab):len(slab)]
			}
			size += int64(e.Size())
			if maxBytes > 0 && size > maxBytes && len(ents) > 0 {
				cut = true
				break
			}
			ents = append(ents, e)
		}
	}
	if err := it.Error(); err != nil {
		return fail(err)
	}
	if !cut && lo+int64(len(ents)) < hi {
		return corrupt("entry %d is missing", lo+int64(len(ents)))
	}
	return ents, nil
}

// blockStart returns the first index of the block that holds entry i.
func (db *DB) blockStart(id uint64, i int64) (int64, error) {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: metaKey(id, kindEntry), UpperBound: entryKey(id, i+1)})
	if err != nil {
		return 0, db.wrap(err, "group %d: finding entry %d", id, i)
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return 0, db.wrap(err, "group %d: finding entry %d", id, i)
		}
		return 0, fmt.Errorf("%w: %s: group %d: entry %d is missing", ErrCorrupt, db.dir, id, i)
	}
	first, _ := decodeEntryKey(it.Key())
	return first, nil
}

func groupOf(key []byte) uint64 { return binary.BigEndian.Uint64(key[1:prefixLen]) }

func (g *groupState) summary() summary {
	return summary{
		Bootstrapped: g.boot != nil,
		SnapIndex:    g.snap.Index, SnapTerm: g.snap.Term,
		Term: g.hs.Term, Vote: g.hs.Vote, Commit: g.hs.Commit,
		Last: g.last, LastTerm: g.lastTerm, Applied: g.applied,
	}
}

func (g *groupState) state() State {
	st := State{
		Bootstrapped: g.boot != nil,
		HardState:    g.hs,
		Applied:      g.applied,
		FirstIndex:   g.snap.Index + 1,
		LastIndex:    g.last,
	}
	if g.snap.Index != 0 {
		snap := g.snap
		st.Snapshot = &snap
		st.Peers, st.Learners = slices.Clone(snap.Nodes), slices.Clone(snap.Learners)
	} else if g.boot != nil {
		st.Peers, st.Learners = slices.Clone(g.boot.Peers), slices.Clone(g.boot.Learners)
		st.Joining = g.boot.Joining
	}
	return st
}

// quietLogger drops Pebble's informational messages and keeps its errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	// The first line only: Pebble's errors carry stack traces.
	msg, _, _ := strings.Cut(fmt.Sprintf(format, args...), "\n")
	pebble.DefaultLogger.Errorf("%s", msg)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}
