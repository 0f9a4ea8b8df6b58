package raftstore

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	bolt "go.etcd.io/bbolt"
)

// The benchmarks measure durable Readys per second: each Ready's entries
// (of 128 bytes) and HardState written and synced before the next. They
// report Readys and entries per second, and, measured in the same
// directory in the same run, the raw limit of the disk: writes of a small
// block to one place in a file, each followed by fdatasync. bbolt does the
// same job beside Pebble: a bucket per group, entries by index, the
// HardState, one synced transaction per Ready. `make bench-store` runs
// them and prints a table with the ratios.

const benchEntryBytes = 128

var benchBatches = []int{1, 16, 256}

// benchResults collects each benchmark's last measurement for the table.
var benchResults = struct {
	sync.Mutex
	m map[string]map[string]float64
}{m: map[string]map[string]float64{}}

func recordBench(b *testing.B, metrics map[string]float64) {
	benchResults.Lock()
	defer benchResults.Unlock()
	benchResults.m[b.Name()] = metrics
	for unit, v := range metrics {
		b.ReportMetric(v, unit)
	}
}

// rawSyncRate measures write+fdatasync of a 512-byte block at one offset of
// a file in dir, for d.
func rawSyncRate(b testing.TB, dir string, d time.Duration) float64 {
	f, err := os.Create(filepath.Join(dir, "rawsync"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 512)
	if _, err := f.WriteAt(block, 0); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	n, start := 0, time.Now()
	for time.Since(start) < d {
		if _, err := f.WriteAt(block, 0); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// rawSeqSyncRate measures what a log of Readys of size bytes costs the
// disk at best: each appended to a file of zeros written in advance (no
// size change to sync), then fdatasync.
func rawSeqSyncRate(b testing.TB, dir string, size int, d time.Duration) float64 {
	f, err := os.Create(filepath.Join(dir, "rawseq"))
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	const fileSize = 256 << 20
	if _, err := f.WriteAt(make([]byte, 1<<20), fileSize-(1<<20)); err != nil {
		b.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < fileSize; off += 1 << 20 {
		if _, err := f.WriteAt(zeros, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	block := make([]byte, size)
	n, off, start := 0, int64(0), time.Now()
	for time.Since(start) < d && off+int64(size) <= fileSize {
		if _, err := f.WriteAt(block, off); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		off += int64(size)
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

// barePebbleRate measures Pebble alone doing what the store's Ready costs
// it at least: one synced Set of a value of size bytes, each under a new
// key, for d. The store cannot beat it: it is the ceiling Pebble's commit
// pipeline puts on a Ready on this disk.
func barePebbleRate(b testing.TB, dir string, size int, d time.Duration) float64 {
	pdb, err := pebble.Open(filepath.Join(dir, "bare"), &pebble.Options{FormatMajorVersion: pebble.FormatNewest, Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	value, key := make([]byte, size), make([]byte, 8)
	set := func(i uint64) {
		binary.BigEndian.PutUint64(key, i)
		if err := pdb.Set(key, value, pebble.Sync); err != nil {
			b.Fatal(err)
		}
	}
	n := uint64(0)
	for ; n < 100; n++ { // warm up as the store's run does
		set(n)
	}
	count, start := 0, time.Now()
	for time.Since(start) < d {
		set(n)
		n++
		count++
	}
	return float64(count) / time.Since(start).Seconds()
}

// readyStream makes the Readys of one group: batch entries each, the
// HardState committing the entries of the Ready before.
type readyStream struct {
	last  int64
	ents  []raftpb.Entry
	data  []byte
	batch int
}

func newReadyStream(batch int) *readyStream {
	return &readyStream{batch: batch, ents: make([]raftpb.Entry, batch), data: make([]byte, benchEntryBytes)}
}

func (r *readyStream) next() raft.Ready {
	commit := r.last
	for i := range r.ents {
		r.last++
		r.ents[i] = raftpb.Entry{Index: r.last, Term: 1, Data: r.data}
	}
	return raft.Ready{Entries: r.ents, State: raftpb.HardState{Term: 1, Vote: 1, Commit: commit}}
}

// benchStore opens a Pebble store for group 1 in dir. Entries beyond the
// cache are compacted away now and then, as a node would.
func benchStore(b *testing.B, dir string, groups int) (*DB, []*Store) {
	db, err := Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	var stores []*Store
	for g := range groups {
		s, _, err := db.Group(uint64(g + 1))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Bootstrap([]int64{2, 3}, nil, 0); err != nil {
			b.Fatal(err)
		}
		stores = append(stores, s)
	}
	return db, stores
}

func saveOrFail(b *testing.B, s *Store, rd raft.Ready) {
	if err := s.Save(rd); err != nil {
		b.Fatal(err)
	}
	if rd.State.Commit-s.FirstIndex() > benchKeep {
		if err := s.Compact(raftpb.Snapshot{Index: rd.State.Commit, Nodes: []int64{1, 2, 3}}); err != nil {
			b.Fatal(err)
		}
	}
}

// boltStore is the same job on bbolt: a bucket per group, entries by
// index, the HardState under its own key, one synced transaction a Ready.
type boltStore struct {
	db     *bolt.DB
	bucket []byte
}

var boltHardState = []byte("hardstate")

func openBolt(b *testing.B, dir string, groups int) (*bolt.DB, []*boltStore) {
	db, err := bolt.Open(filepath.Join(dir, "bolt.db"), 0o644, nil)
	if err != nil {
		b.Fatal(err)
	}
	var stores []*boltStore
	for g := range groups {
		s := &boltStore{db: db, bucket: []byte(fmt.Sprintf("group-%d", g+1))}
		if err := db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucketIfNotExists(s.bucket)
			return err
		}); err != nil {
			b.Fatal(err)
		}
		stores = append(stores, s)
	}
	return db, stores
}

func (s *boltStore) save(rd raft.Ready) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(s.bucket)
		for i := range rd.Entries {
			e := &rd.Entries[i]
			v := make([]byte, 9+len(e.Data))
			binary.BigEndian.PutUint64(v, uint64(e.Term))
			v[8] = byte(e.Type)
			copy(v[9:], e.Data)
			if err := bk.Put(binary.BigEndian.AppendUint64(nil, uint64(e.Index)), v); err != nil {
				return err
			}
		}
		if !raft.IsEmptyHardState(rd.State) {
			v, err := rd.State.Marshal()
			if err != nil {
				return err
			}
			return bk.Put(boltHardState, v)
		}
		return nil
	})
}

// BenchmarkSave: one group saving Readys of 1, 16 and 256 entries, on
// Pebble (this package) and on bbolt, beside the disk's raw sync rate.
func BenchmarkSave(b *testing.B) {
	for _, batch := range benchBatches {
		b.Run(fmt.Sprintf("pebble/batch=%d", batch), func(b *testing.B) {
			dir := b.TempDir()
			raw := rawSyncRate(b, dir, 300*time.Millisecond)
			// A Ready's record in Pebble's log: the block, keys and header.
			size := blockSize(newReadyStream(batch).next().Entries) + 60
			seq := rawSeqSyncRate(b, dir, size, 300*time.Millisecond)
			bare := barePebbleRate(b, dir, size, 300*time.Millisecond)
			db, stores := benchStore(b, dir, 1)
			defer db.Close()
			r := newReadyStream(batch)
			for range 100 { // warm up: the log file exists and has grown
				saveOrFail(b, stores[0], r.next())
			}
			before := db.Stats()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				saveOrFail(b, stores[0], r.next())
			}
			secs := time.Since(start).Seconds()
			after := db.Stats()
			recordBench(b, map[string]float64{
				"readys/s":        float64(b.N) / secs,
				"entries/s":       float64(b.N*batch) / secs,
				"raw-syncs/s":     raw,
				"raw-seq-syncs/s": seq,
				"bare-pebble/s":   bare,
				"vs-raw":          float64(b.N) / secs / raw,
				"syncs/ready":     float64(after.WALSyncs-before.WALSyncs) / float64(b.N),
			})
		})
		b.Run(fmt.Sprintf("bbolt/batch=%d", batch), func(b *testing.B) {
			dir := b.TempDir()
			raw := rawSyncRate(b, dir, 300*time.Millisecond)
			db, stores := openBolt(b, dir, 1)
			defer db.Close()
			r := newReadyStream(batch)
			for range 100 {
				if err := stores[0].save(r.next()); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if err := stores[0].save(r.next()); err != nil {
					b.Fatal(err)
				}
			}
			secs := time.Since(start).Seconds()
			recordBench(b, map[string]float64{
				"readys/s":    float64(b.N) / secs,
				"entries/s":   float64(b.N*batch) / secs,
				"raw-syncs/s": raw,
				"vs-raw":      float64(b.N) / secs / raw,
			})
		})
	}
	printTable(b)
}

// BenchmarkGroupCommit: N groups of one DB, each saving Readys of one
// entry from its own goroutine, as the loops of N nodes in one process
// would. Pebble's commit pipeline lets the synced commits that arrive
// while a sync is in progress share the next one: Readys per second grow
// with N while syncs per second stay near the disk's rate. bbolt takes one
// transaction, and its syncs, at a time.
func BenchmarkGroupCommit(b *testing.B) {
	for _, groups := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("pebble/groups=%d", groups), func(b *testing.B) {
			dir := b.TempDir()
			raw := rawSyncRate(b, dir, 300*time.Millisecond)
			db, stores := benchStore(b, dir, groups)
			defer db.Close()
			before := db.Stats()
			start := time.Now()
			runGroups(b, groups, func(g int, n int) {
				r := newReadyStream(1)
				for range n {
					saveOrFail(b, stores[g], r.next())
				}
			})
			secs := time.Since(start).Seconds()
			after := db.Stats()
			syncs := float64(after.WALSyncs - before.WALSyncs)
			recordBench(b, map[string]float64{
				"readys/s":    float64(b.N) / secs,
				"syncs/s":     syncs / secs,
				"readys/sync": float64(b.N) / syncs,
				"raw-syncs/s": raw,
			})
		})
		b.Run(fmt.Sprintf("bbolt/groups=%d", groups), func(b *testing.B) {
			dir := b.TempDir()
			db, stores := openBolt(b, dir, groups)
			defer db.Close()
			start := time.Now()
			runGroups(b, groups, func(g int, n int) {
				r := newReadyStream(1)
				for range n {
					if err := stores[g].save(r.next()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			secs := time.Since(start).Seconds()
			recordBench(b, map[string]float64{"readys/s": float64(b.N) / secs})
		})
	}
	printTable(b)
}

// runGroups shares b.N Readys among groups goroutines and waits for them.
func runGroups(b *testing.B, groups int, save func(g, n int)) {
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range groups {
		n := b.N / groups
		if g < b.N%groups {
			n++
		}
		wg.Go(func() { save(g, n) })
	}
	wg.Wait()
}

// BenchmarkHotRead: what the node reads right after a Save, the entries
// just persisted (to hand out as committed, or to send to a follower)
// and the last term, with the cache and without it.
func BenchmarkHotRead(b *testing.B) {
	for _, c := range []struct {
		name string
		opts *Options
	}{{"cache", nil}, {"no-cache", &Options{CacheEntries: -1}}} {
		b.Run(c.name, func(b *testing.B) {
			db, err := Open(b.TempDir(), c.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			s, _, _ := db.Group(1)
			if err := s.Bootstrap([]int64{2, 3}, nil, 0); err != nil {
				b.Fatal(err)
			}
			r := newReadyStream(16)
			for range 1000 {
				saveOrFail(b, s, r.next())
			}
			last := s.LastIndex()
			b.ResetTimer()
			for range b.N {
				ents, err := s.Entries(last-15, last+1, 0)
				if err != nil || len(ents) != 16 {
					b.Fatal(err)
				}
				if _, err := s.Term(last); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// printTable prints the results gathered so far under b's name, with
// Pebble beside bbolt.
func printTable(b *testing.B) {
	benchResults.Lock()
	defer benchResults.Unlock()
	var names []string
	for name := range benchResults.m {
		if strings.HasPrefix(name, b.Name()+"/pebble/") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Slice(names, func(i, j int) bool { return benchOrder(names[i]) < benchOrder(names[j]) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%s\n", b.Name())
	fmt.Fprintf(&sb, "%-10s %9s %10s %9s %8s %7s %8s %7s %8s %8s %8s %9s\n",
		"case", "readys/s", "entries/s", "syncs/s", "raw/s", "rd/raw", "seq/s", "rd/seq", "bare/s", "rd/bare", "bbolt/s", "vs bbolt")
	for _, name := range names {
		p := benchResults.m[name]
		bb := benchResults.m[strings.Replace(name, "/pebble/", "/bbolt/", 1)]
		c := strings.TrimPrefix(name, b.Name()+"/pebble/")
		syncs := p["syncs/s"]
		if syncs == 0 {
			syncs = p["readys/s"] * p["syncs/ready"]
		}
		fmt.Fprintf(&sb, "%-10s %9s %10s %9s %8s %7s %8s %7s %8s %8s %8s %9s\n", c,
			cell("%.0f", p["readys/s"]), cell("%.0f", p["readys/s"]*batchOf(c)), cell("%.0f", syncs),
			cell("%.0f", p["raw-syncs/s"]), cell("%.2f", p["readys/s"]/p["raw-syncs/s"]),
			cell("%.0f", p["raw-seq-syncs/s"]), cell("%.2f", p["readys/s"]/p["raw-seq-syncs/s"]),
			cell("%.0f", p["bare-pebble/s"]), cell("%.2f", p["readys/s"]/p["bare-pebble/s"]),
			cell("%.0f", bb["readys/s"]), cell("%.2f", p["readys/s"]/bb["readys/s"]))
	}
	fmt.Print(sb.String())
}

// cell formats v, or "-" when it was not measured.
func cell(format string, v float64) string {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func batchOf(c string) float64 {
	var n int
	if _, err := fmt.Sscanf(c, "batch=%d", &n); err == nil {
		return float64(n)
	}
	return 1
}

func benchOrder(name string) int {
	var n int
	i := strings.LastIndex(name, "=")
	fmt.Sscanf(name[i+1:], "%d", &n)
	return n
}

// benchKeep is how many entries a benchmark's log keeps before it is
// compacted, as an application that snapshots every so many entries does
// (etcd's default is 10,000).
var benchKeep int64 = 10000
