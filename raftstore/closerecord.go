package raftstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// closeRecordName is the file, beside Pebble's, where Close records what
// every group holds, for the next Open to check.
const closeRecordName = "RAFTSTORE-CLOSED"

// closeRecordMagic starts the file; a CRC-32C of everything before it
// ends it.
const closeRecordMagic = "raftstore-closed-1\n"

// summary is what a group holds, as far as the check at Open goes: values
// that only a lost or rolled-back write could change.
type summary struct {
	Bootstrapped        bool
	SnapIndex, SnapTerm int64
	Term, Vote, Commit  int64
	Last, LastTerm      int64
	Applied             int64
}

func (s summary) String() string {
	return fmt.Sprintf("{snapshot %d/%d, HardState term %d vote %d commit %d, last entry %d/%d, applied %d, bootstrapped %v}",
		s.SnapTerm, s.SnapIndex, s.Term, s.Vote, s.Commit, s.LastTerm, s.Last, s.Applied, s.Bootstrapped)
}

type closeRecord map[uint64]summary

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (r closeRecord) marshal() []byte {
	out := []byte(closeRecordMagic)
	out = binary.AppendUvarint(out, uint64(len(r)))
	for id, s := range r {
		out = binary.AppendUvarint(out, id)
		b := int64(0)
		if s.Bootstrapped {
			b = 1
		}
		for _, v := range []int64{b, s.SnapIndex, s.SnapTerm, s.Term, s.Vote, s.Commit, s.Last, s.LastTerm, s.Applied} {
			out = binary.AppendVarint(out, v)
		}
	}
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(out, castagnoli))
}

func unmarshalCloseRecord(b []byte) (closeRecord, error) {
	if len(b) < len(closeRecordMagic)+4 || string(b[:len(closeRecordMagic)]) != closeRecordMagic {
		return nil, errors.New("not a close record (bad header)")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return nil, errors.New("checksum mismatch")
	}
	d := decoder{buf: body[len(closeRecordMagic):]}
	n := d.uvarint()
	rec := closeRecord{}
	for range n {
		if d.err != nil {
			break
		}
		id := d.uvarint()
		var v [9]int64
		for k := range v {
			v[k] = d.varint()
		}
		rec[id] = summary{
			Bootstrapped: v[0] == 1, SnapIndex: v[1], SnapTerm: v[2],
			Term: v[3], Vote: v[4], Commit: v[5], Last: v[6], LastTerm: v[7], Applied: v[8],
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return rec, nil
}

// readCloseRecord reads the record of the last clean close; found is false
// when there is none (a new store, or one that was not closed cleanly).
func readCloseRecord(fsys vfs.FS, dir string) (rec closeRecord, found bool, err error) {
	name := fsys.PathJoin(dir, closeRecordName)
	f, err := fsys.Open(name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("raftstore: %s: %w", name, err)
	}
	b, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, false, fmt.Errorf("raftstore: %s: %w", name, err)
	}
	if rec, err = unmarshalCloseRecord(b); err != nil {
		return nil, false, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	return rec, true, nil
}

// writeCloseRecord writes rec durably: to a temporary file, synced, renamed
// into place, and the directory synced.
func writeCloseRecord(fsys vfs.FS, dir string, rec closeRecord) error {
	name := fsys.PathJoin(dir, closeRecordName)
	tmp := name + ".tmp"
	fail := func(err error) error { return fmt.Errorf("raftstore: writing %s: %w", name, err) }
	f, err := fsys.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return fail(err)
	}
	_, err = f.Write(rec.marshal())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = syncDir(fsys, dir)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// removeCloseRecord removes the record durably, before anything is written
// that it would not describe.
func removeCloseRecord(fsys vfs.FS, dir string) error {
	name := fsys.PathJoin(dir, closeRecordName)
	if err := fsys.Remove(name); err != nil {
		return fmt.Errorf("raftstore: removing %s: %w", name, err)
	}
	if err := syncDir(fsys, dir); err != nil {
		return fmt.Errorf("raftstore: removing %s: %w", name, err)
	}
	return nil
}

func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
