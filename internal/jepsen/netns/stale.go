package netns

import (
	"context"
	"errors"
	"os"
	"sort"
	"strings"
	"syscall"
)

// CleanStale deletes the namespaces left by harnesses that died (crash,
// SIGKILL): every "njp-<id>-*" namespace whose lock file is not held. It
// returns the namespaces it deleted. Live topologies are never touched.
func CleanStale(ctx context.Context, logf func(string, ...any)) ([]string, error) {
	entries, err := os.ReadDir("/var/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	byID := map[string][]string{}
	for _, e := range entries {
		if id, ok := ParseName(e.Name()); ok {
			byID[id] = append(byID[id], e.Name())
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var removed []string
	var errs []error
	for _, id := range ids {
		if held(id) {
			continue
		}
		names := byID[id]
		sort.Strings(names)
		if logf != nil {
			logf("netns: removing stale namespaces of dead harness %s: %s", id, strings.Join(names, " "))
		}
		if err := removeNamespaces(ctx, names); err != nil {
			errs = append(errs, err)
		}
		_ = os.RemoveAll(ScratchDir(id))
		_ = os.Remove(lockPath(id))
		removed = append(removed, names...)
	}
	return removed, errors.Join(errs...)
}

// ParseName returns the topology id of a namespace name made by this package
// ("njp-<id>-h" or "njp-<id>-n3").
func ParseName(name string) (id string, ok bool) {
	rest, found := strings.CutPrefix(name, NamePrefix)
	if !found {
		return "", false
	}
	id, role, found := strings.Cut(rest, "-")
	if !found || id == "" || role == "" {
		return "", false
	}
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return "", false
		}
	}
	return id, true
}

// held reports whether a live harness holds the lock of topology id.
func held(id string) bool {
	f, err := os.OpenFile(lockPath(id), os.O_RDWR, 0)
	if err != nil {
		return false // no lock file: nobody owns it
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return true
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
