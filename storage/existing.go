package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrInUse is returned when another process (a running agent) holds the
// data dir's lock.
var ErrInUse = errors.New("data dir is in use by another nexus agent")

// ErrNotDataDir is returned by OpenExisting for a directory that is not a
// Nexus data dir.
var ErrNotDataDir = errors.New("not a nexus data dir")

// OpenExisting opens and locks a data dir that an agent has used before,
// for offline tools (`nexus recover`): it creates nothing in a directory
// that lacks the node id or the Raft store, and it is refused while an
// agent holds the dir. It returns the node name the dir belongs to.
func OpenExisting(dir string, logOutput io.Writer) (*DataDir, string, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("%w: %s does not exist", ErrNotDataDir, dir)
	case err != nil:
		return nil, "", fmt.Errorf("data dir %s: %w", dir, err)
	case !st.IsDir():
		return nil, "", fmt.Errorf("%w: %s is not a directory", ErrNotDataDir, dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, nodeIDFile))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s has no readable %s file (%v)", ErrNotDataDir, dir, nodeIDFile, err)
	}
	node := strings.TrimSpace(string(b))
	if node == "" {
		return nil, "", fmt.Errorf("%w: %s has an empty %s file", ErrNotDataDir, dir, nodeIDFile)
	}
	kind, err := existingLogStore(dir)
	if err != nil {
		return nil, "", err
	}
	if kind == "" {
		return nil, "", fmt.Errorf("%w: %s has no Raft store (%s or %s)", ErrNotDataDir, dir,
			filepath.Join(raftDir, raftDBFile), filepath.Join(raftDir, raftWALDir))
	}
	d, err := Open(dir, node, Options{LogStore: kind, LogOutput: logOutput})
	if err != nil {
		return nil, "", err
	}
	return d, node, nil
}
