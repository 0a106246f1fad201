// Package storage owns the data directory of a node: its identity files, the
// lock that keeps two agents off one directory, the raft-boltdb log and stable
// store and the file snapshot store.
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
	bolt "go.etcd.io/bbolt"
)

// File names inside the data dir.
const (
	nodeIDFile    = "node-id"
	clusterIDFile = "cluster-id"
	lockFile      = "LOCK"
	raftDir       = "raft"
	raftDBFile    = "raft.db"
	snapshotsDir  = "snapshots"
	snapshotsKept = 3
)

// ErrForeignDataDir is returned when a data dir belongs to another node.
var ErrForeignDataDir = errors.New("data dir belongs to another node")

// DataDir is an opened, locked data directory.
type DataDir struct {
	path string
	lock *os.File
	// Store is the Raft log and stable store (raft-boltdb/v2 on bbolt).
	Store *raftboltdb.BoltStore
	// Snapshots is the file snapshot store.
	Snapshots *raft.FileSnapshotStore
}

// Open creates or opens dir for node. It refuses a dir that another agent
// holds or that another node name wrote.
func Open(dir, node string, logOutput io.Writer) (*DataDir, error) {
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
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(dir, raftDir, raftDBFile),
		BoltOptions: &bolt.Options{Timeout: 0, NoFreelistSync: true},
	})
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("data dir %s: raft store: %w", dir, err)
	}
	d.Store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, raftDir), snapshotsKept, hclog.New(&hclog.LoggerOptions{Name: "snapshots", Output: logOutput, JSONFormat: true, Level: hclog.Warn}))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("data dir %s: snapshots: %w", dir, err)
	}
	d.Snapshots = snaps
	return d, nil
}

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
