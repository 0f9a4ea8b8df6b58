package raftstore

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts the syncs of Pebble's write-ahead log files, so that
// Stats can tell how many Saves shared each sync.
type countingFS struct {
	vfs.FS
	walSyncs atomic.Int64
}

func (fs *countingFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &countedFile{File: f, fs: fs}, nil
}

func (fs *countingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, category, opts...)
	return fs.wrap(name, f, err)
}

func (fs *countingFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	return fs.wrap(newname, f, err)
}

func (fs *countingFS) Unwrap() vfs.FS { return fs.FS }

type countedFile struct {
	vfs.File
	fs *countingFS
}

func (f *countedFile) Sync() error {
	f.fs.walSyncs.Add(1)
	return f.File.Sync()
}

func (f *countedFile) SyncData() error {
	f.fs.walSyncs.Add(1)
	return f.File.SyncData()
}
