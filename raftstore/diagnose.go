package raftstore

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/record"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/wal"
)

// unreadableFiles names the files of Pebble's own records, its
// write-ahead logs and its current MANIFEST, that fail to read to the
// end, as " (files that fail to read: NAME: what at offset N; ...)", or
// returns "" when all read. It explains an error that names no file: a
// log replay that failed, or a store that holds less than it did at its
// last clean close (a torn end of a log reads as an unexpected EOF).
func unreadableFiles(fs vfs.FS, dir string) string {
	var bad []string
	if logs, err := wal.Scan(wal.Dir{FS: fs, Dirname: dir}); err != nil {
		bad = append(bad, fmt.Sprintf("listing the logs: %v", err))
	} else {
		for _, ll := range logs {
			r := ll.OpenForRead()
			for {
				rec, off, err := r.NextRecord()
				if err == nil {
					_, err = io.Copy(io.Discard, rec)
				}
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					bad = append(bad, fmt.Sprintf("%s: %v at offset %d", filepath.Base(off.PhysicalFile), err, off.Physical))
					break
				}
			}
			_ = r.Close()
		}
	}
	if desc, err := pebble.Peek(dir, fs); err == nil && desc.Exists {
		if msg := readRecords(fs, desc.ManifestFilename); msg != "" {
			bad = append(bad, fmt.Sprintf("%s: %s", filepath.Base(desc.ManifestFilename), msg))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return " (files that fail to read: " + strings.Join(bad, "; ") + ")"
}

// readRecords reads the record file name to the end and returns what
// stopped it early, or "".
func readRecords(fs vfs.FS, name string) string {
	f, err := fs.Open(name)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	r := record.NewReader(f, 0)
	for {
		rec, err := r.Next()
		if err == nil {
			_, err = io.Copy(io.Discard, rec)
		}
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			off := r.Offset()
			return fmt.Sprintf("%v at offset %d", err, off)
		}
	}
}
