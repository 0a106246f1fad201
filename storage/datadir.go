// Package storage owns the data directory of a node: its identity files, the
// lock that keeps two agents off one directory, the Raft log and stable store
// (raft-boltdb, or raft-wal by choice) and the file snapshot store.
package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	wal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
	bolt "go.etcd.io/bbolt"
)

// File names inside the data dir.
const (
	nodeIDFile    = "node-id"
	clusterIDFile = "cluster-id"
	lockFile      = "LOCK"
	raftDir       = "raft"
	raftDBFile    = "raft.db"
	raftWALDir    = "wal"
	snapshotsDir  = "snapshots"
	snapshotsKept = 3
)

// ErrForeignDataDir is returned when a data dir belongs to another node.
var ErrForeignDataDir = errors.New("data dir belongs to another node")

// ErrLogStoreMismatch is returned when a data dir holds a Raft log in
// another store than the one asked for.
var ErrLogStoreMismatch = errors.New("data dir holds another Raft log store")

// Raft log stores.
const (
	// LogStoreBoltDB is raft-boltdb/v2 on bbolt: the default.
	LogStoreBoltDB = "boltdb"
	// LogStoreWAL is raft-wal: segment files appended with one fsync per
	// append (bbolt makes two), and the stable store in its own small
	// bbolt file.
	LogStoreWAL = "wal"
)

// Options of Open.
type Options struct {
	// LogStore is the Raft log store of a new data dir (LogStoreBoltDB
	// when empty). A data dir that already holds a log must be opened
	// with its own store.
	LogStore string
	// LogOutput receives the stores' own warnings.
	LogOutput io.Writer
}

// RaftStore is the Raft log and stable store of a data dir.
type RaftStore interface {
	raft.LogStore
	raft.StableStore
	io.Closer
}

// DataDir is an opened, locked data directory.
type DataDir struct {
	path string
	lock *os.File
	// Store is the Raft log and stable store.
	Store RaftStore
	// LogStore names it (LogStoreBoltDB or LogStoreWAL).
	LogStore string
	// Snapshots is the file snapshot store.
	Snapshots *raft.FileSnapshotStore
}

// Open creates or opens dir for node. It refuses a dir that another agent
// holds, that another node name wrote, or whose Raft log is in another
// store than o.LogStore.
func Open(dir, node string, o Options) (*DataDir, error) {
	want := o.LogStore
	if want == "" {
		want = LogStoreBoltDB
	}
	if want != LogStoreBoltDB && want != LogStoreWAL {
		return nil, fmt.Errorf("data dir %s: unknown Raft log store %q (boltdb or wal)", dir, want)
	}
	logOutput := o.LogOutput
	if logOutput == nil {
		logOutput = io.Discard
	}
	if err := os.MkdirAll(filepath.Join(dir, raftDir), 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
	}
	d := &DataDir{path: dir, lock: lock}
	if err := d.checkNode(node); err != nil {
		d.Close()
		return nil, err
	}
	have, err := existingLogStore(dir)
	if err != nil {
		d.Close()
		return nil, err
	}
	if have != "" && have != want {
		d.Close()
		return nil, fmt.Errorf("%w: %s holds a %s Raft log, not %s: start it with --raft-log-store=%s, or move the node to %s "+
			"by leaving the cluster, emptying the data dir and joining again (it gets the state from the leader)",
			ErrLogStoreMismatch, dir, have, want, have, want)
	}
	store, err := openLogStore(dir, want, logOutput)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("data dir %s: raft store: %w", dir, err)
	}
	d.Store, d.LogStore = store, want
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, raftDir), snapshotsKept, hclog.New(&hclog.LoggerOptions{Name: "snapshots", Output: logOutput, JSONFormat: true, Level: hclog.Warn}))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("data dir %s: snapshots: %w", dir, err)
	}
	d.Snapshots = snaps
	return d, nil
}

// existingLogStore names the Raft log store dir holds, or "" for none.
func existingLogStore(dir string) (string, error) {
	_, errDB := os.Stat(filepath.Join(dir, raftDir, raftDBFile))
	entries, errWAL := os.ReadDir(filepath.Join(dir, raftDir, raftWALDir))
	hasDB := errDB == nil
	hasWAL := errWAL == nil && len(entries) > 0
	switch {
	case hasDB && hasWAL:
		return "", fmt.Errorf("data dir %s holds both a boltdb and a wal Raft log (%s, %s): remove the one the node did not run with",
			dir, filepath.Join(raftDir, raftDBFile), filepath.Join(raftDir, raftWALDir))
	case hasDB:
		return LogStoreBoltDB, nil
	case hasWAL:
		return LogStoreWAL, nil
	}
	return "", nil
}

// openLogStore opens (creating it if needed) the Raft store of kind.
func openLogStore(dir, kind string, logOutput io.Writer) (RaftStore, error) {
	if kind == LogStoreWAL {
		p := filepath.Join(dir, raftDir, raftWALDir)
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, err
		}
		// raft-wal v0.4.0's Close leaves its meta store open, and with it
		// the bbolt file lock: a reopen in the same process (a restart in
		// tests, offline tools) would wait for it for ever. The store is
		// made here and closed after the WAL.
		meta := &metadb.BoltMetaDB{}
		w, err := wal.Open(p, wal.WithMetaStore(meta), wal.WithLogger(hclog.New(&hclog.LoggerOptions{
			Name: "raft-wal", Output: logOutput, JSONFormat: true, Level: hclog.Warn,
		})))
		if err != nil {
			return nil, errors.Join(err, meta.Close())
		}
		return &walStore{WAL: w, meta: meta}, nil
	}
	// The freelist is not written to disk (NoFreelistSync: it is rebuilt
	// when the file opens) and is a hash map rather than bbolt's default
	// sorted array: the log's compaction after each snapshot frees
	// thousands of pages, and with the array every write transaction
	// merged its pending pages into the whole list (Begin →
	// ReleasePendingPages → Mergepgids: 5-7% of each node's CPU under 64
	// writers, docs/benchmarks.md). Neither option changes the file format.
	return raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, raftDir, raftDBFile),
		BoltOptions: &bolt.Options{Timeout: 0, NoFreelistSync: true, FreelistType: bolt.FreelistMapType},
	})
}

// walStore is raft-wal with the meta store it leaves open (openLogStore).
type walStore struct {
	*wal.WAL
	meta *metadb.BoltMetaDB
}

func (s *walStore) Close() error { return errors.Join(s.WAL.Close(), s.meta.Close()) }

// Path returns the directory.
func (d *DataDir) Path() string { return d.path }

func (d *DataDir) checkNode(node string) error {
	p := filepath.Join(d.path, nodeIDFile)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return writeFileSync(p, []byte(node+"\n"))
	case err != nil:
		return fmt.Errorf("data dir %s: %w", d.path, err)
	}
	if got := strings.TrimSpace(string(b)); got != node {
		return fmt.Errorf("%w: %s was written by node %q, not %q; use that node name or another data dir", ErrForeignDataDir, d.path, got, node)
	}
	return nil
}

// ClusterID returns the cluster id recorded in the data dir, or "".
func (d *DataDir) ClusterID() string {
	b, err := os.ReadFile(filepath.Join(d.path, clusterIDFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// SetClusterID records the cluster this data dir belongs to. It refuses to
// change an id once written.
func (d *DataDir) SetClusterID(id string) error {
	if cur := d.ClusterID(); cur != "" {
		if cur != id {
			return fmt.Errorf("data dir %s belongs to cluster %s, not %s", d.path, cur, id)
		}
		return nil
	}
	return writeFileSync(filepath.Join(d.path, clusterIDFile), []byte(id+"\n"))
}

// Close closes the stores and releases the lock.
func (d *DataDir) Close() error {
	var errs []error
	if d.Store != nil {
		errs = append(errs, d.Store.Close())
		d.Store = nil
	}
	if d.lock != nil {
		errs = append(errs, d.lock.Close())
		d.lock = nil
	}
	return errors.Join(errs...)
}

func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
