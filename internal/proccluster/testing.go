package proccluster

import (
	"context"
	"testing"
	"time"
)

// dumpLimit is how many bytes of each node's log StartT prints when a test
// fails (the tail of the log).
const dumpLimit = 256 << 10

// StartT starts a cluster for a test. Dir defaults to t.TempDir() and Logf to
// t.Logf. It registers a cleanup that prints every node's log if the test
// failed and then calls Close. A start failure fails the test (with logs).
func StartT(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx := context.Background()
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := start(ctx, opts)
	if err != nil {
		if c != nil {
			c.DumpLogs(t.Logf)
			c.Close()
		}
		t.Fatalf("proccluster.StartT: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.DumpLogs(t.Logf)
		}
		c.Close()
	})
	return c
}

// DumpLogs prints the tail (dumpLimit bytes) of every node's log through logf.
func (c *Cluster) DumpLogs(logf func(format string, args ...any)) {
	for i := range c.nodes {
		info := c.Node(i)
		logf("===== log of %s (pid %d, running=%v, %s) =====\n%s", info.Name, info.PID, info.Running,
			info.LogPath, Tail(c.Logs(i), dumpLimit))
	}
}
