package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/raftly/raft"
	"github.com/raftly/raft/raftpb"
	"github.com/stretchr/testify/require"
)

// groupDump is everything a group returns.
type groupDump struct {
	State   State
	Entries []raftpb.Entry
}

// dumpAll opens dir and reads every group in ids completely.
func dumpAll(dir string, ids []uint64) (map[uint64]groupDump, error) {
	db, err := Open(dir, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	out := map[uint64]groupDump{}
	for _, id := range ids {
		s, st, err := db.Group(id)
		if err != nil {
			return nil, err
		}
		ents, err := s.Entries(s.FirstIndex(), s.LastIndex()+1, 0)
		if err != nil {
			return nil, err
		}
		out[id] = groupDump{st, ents}
	}
	return out, nil
}

// fillStore writes groups 1 to 3 in rounds; flushing after each round but
// the last leaves tables, a manifest with several edits, and a log.
func fillStore(t *testing.T, dir string, rounds int, flush bool) *DB {
	db, err := Open(dir, nil)
	require.NoError(t, err)
	stores := map[uint64]*Store{}
	for id := uint64(1); id <= 3; id++ {
		s, _, err := db.Group(id)
		require.NoError(t, err)
		require.NoError(t, s.Bootstrap([]int64{2, 3}, nil, 0))
		stores[id] = s
	}
	last := int64(0)
	for round := range rounds {
		for range 20 {
			for _, s := range stores {
				require.NoError(t, s.Save(raft.Ready{Entries: mkEnts(last+1, last+20, 1), State: raftpb.HardState{Term: 1, Commit: last}}))
			}
			last += 20
		}
		if round == 1 {
			for _, s := range stores {
				require.NoError(t, s.Compact(raftpb.Snapshot{Index: last / 2, Nodes: []int64{1, 2, 3}, Data: []byte("sm")}))
			}
		}
		if flush && round < rounds-1 {
			require.NoError(t, db.pdb.Flush())
		}
	}
	return db
}

// damage is one way to damage a file.
type damage struct {
	name string
	do   func([]byte) []byte
}

var damages = []damage{
	{"flip a byte at 1/3", func(b []byte) []byte { b[len(b)/3] ^= 0x10; return b }},
	{"flip a byte at 2/3", func(b []byte) []byte { b[2*len(b)/3] ^= 0x01; return b }},
	{"truncate to 1/2", func(b []byte) []byte { return b[:len(b)/2] }},
	{"truncate to 0", func(b []byte) []byte { return nil }},
}

func copyDir(t *testing.T, from string) string {
	to := t.TempDir()
	names, err := os.ReadDir(from)
	require.NoError(t, err)
	for _, e := range names {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o644))
	}
	return to
}

// kindOf is the kind of a file of the store's directory, or "" for files
// that hold nothing (LOCK, markers, OPTIONS).
func kindOf(name string) string {
	switch {
	case strings.HasSuffix(name, ".log"):
		return "log"
	case strings.HasSuffix(name, ".sst"):
		return "table"
	case strings.HasPrefix(name, "MANIFEST-"):
		return "manifest"
	case name == closeRecordName:
		return "close record"
	}
	return ""
}

// A damaged file of a closed store makes Open, Group or a read fail with
// an error that names it (or, for damage that rolls Pebble back, an error
// saying which group lost what), or the store reads back whole: never less.
func TestDamagedFilesOfAClosedStore(t *testing.T) {
	ids := []uint64{1, 2, 3}
	pristine := t.TempDir()
	require.NoError(t, fillStore(t, pristine, 4, true).Close())
	want, err := dumpAll(copyDir(t, pristine), ids)
	require.NoError(t, err)

	entries, err := os.ReadDir(pristine)
	require.NoError(t, err)
	caught := map[string]int{}
	for _, e := range entries {
		kind := kindOf(e.Name())
		if kind == "" || e.Name() == closeRecordName+".tmp" {
			continue
		}
		for _, d := range damages {
			dir := copyDir(t, pristine)
			p := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(p)
			require.NoError(t, err)
			if len(b) == 0 {
				continue
			}
			require.NoError(t, os.WriteFile(p, d.do(b), 0o644))
			got, err := dumpAll(dir, ids)
			what := fmt.Sprintf("%s %s (%s)", d.name, e.Name(), kind)
			if err == nil {
				require.True(t, reflect.DeepEqual(want, got), "%s: the store reads back less or other data, without an error", what)
				t.Logf("%s: no error, nothing lost (the file held nothing still needed)", what)
				continue
			}
			msg := err.Error()
			named := strings.Contains(msg, strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))) ||
				(strings.Contains(msg, "acknowledged data are missing") && errors.Is(err, ErrCorrupt))
			require.True(t, named, "%s: the error names neither the file nor what is missing: %v", what, err)
			caught[kind]++
			t.Logf("%s: %v", what, err)
		}
	}
	// Every kind of file that holds data the store needs was caught.
	for _, kind := range []string{"log", "table", "manifest", "close record"} {
		require.NotZero(t, caught[kind], "no damage to a %s was reported", kind)
	}
}

// After a crash (no clean close), Pebble takes a damaged record in the
// middle of its last log for what it is, and names the file; damage to a
// table is caught when the group is read. What it cannot tell from a torn
// write is damage at the very end of the last log: that is logged here,
// not checked (see the package documentation).
func TestDamagedFilesAfterACrash(t *testing.T) {
	ids := []uint64{1, 2, 3}
	live := t.TempDir()
	db := fillStore(t, live, 8, false)
	// A copy of the directory of a DB that is not closed, with every
	// write synced and none in progress, is what a crash leaves.
	crashed := copyDir(t, live)
	require.NoError(t, db.Close())
	want, err := dumpAll(copyDir(t, crashed), ids)
	require.NoError(t, err)

	logs, err := filepath.Glob(filepath.Join(crashed, "*.log"))
	require.NoError(t, err)
	sort.Strings(logs)
	last := filepath.Base(logs[len(logs)-1])
	for _, tc := range []struct {
		what string
		at   func(size int) int
		want bool // an error is certain
	}{
		{"flip a byte in the first block", func(int) int { return 100 }, true},
		{"flip a byte at 1/2", func(n int) int { return n / 2 }, true},
		{"flip a byte 100 bytes before the end", func(n int) int { return n - 100 }, false},
	} {
		dir := copyDir(t, crashed)
		p := filepath.Join(dir, last)
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		require.Greater(t, len(b), 2*32<<10, "the log spans several blocks")
		b[tc.at(len(b))] ^= 0x08
		require.NoError(t, os.WriteFile(p, b, 0o644))
		got, err := dumpAll(dir, ids)
		switch {
		case err != nil:
			require.Contains(t, err.Error(), last, "%s: the error names the log", tc.what)
			require.ErrorIs(t, err, ErrCorrupt)
			t.Logf("%s of %s: %v", tc.what, last, err)
		case tc.want:
			t.Fatalf("%s of %s: no error (data equal: %v; %d bytes)", tc.what, last, reflect.DeepEqual(want, got), len(b))
		case reflect.DeepEqual(want, got):
			t.Logf("%s of %s: no error, nothing lost", tc.what, last)
		default:
			t.Logf("%s of %s: taken for a write torn by the crash: the last writes are gone (a known limit)", tc.what, last)
		}
	}
}
