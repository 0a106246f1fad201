package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nexus/nexus/internal/jepsen/client"
	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/netns"
	"github.com/nexus/nexus/internal/proccluster"
)

// cluster implements nemesis.Cluster over proccluster and the namespaces.
type cluster struct {
	pc    *proccluster.Cluster
	topo  *netns.Topology
	admin *client.Client // short timeouts, for status
	slow  *client.Client // for /cluster/leave
}

var _ nemesis.Cluster = (*cluster)(nil)

func newCluster(pc *proccluster.Cluster, topo *netns.Topology) *cluster {
	return &cluster{pc: pc, topo: topo, admin: client.New(client.Options{Timeout: 2 * time.Second, MaxConnsPerNode: 2}),
		slow: client.New(client.Options{Timeout: 45 * time.Second, MaxConnsPerNode: 1})}
}

func (c *cluster) close() {
	c.admin.Close()
	c.slow.Close()
}

func (c *cluster) N() int                { return c.pc.N() }
func (c *cluster) NodeName(i int) string { return c.pc.Node(i).Name }
func (c *cluster) NodeIP(i int) string   { return c.pc.Node(i).IP }

// Leader returns the leader that most live nodes name, if it is live.
func (c *cluster) Leader(ctx context.Context) (int, error) {
	votes := map[string]int{}
	live := c.pc.Live()
	for _, i := range live {
		if name, err := c.admin.Leader(ctx, c.pc.HTTPAddr(i)); err == nil {
			votes[name]++
		}
	}
	best, n := "", 0
	for name, v := range votes {
		if v > n || (v == n && name < best) {
			best, n = name, v
		}
	}
	if best == "" {
		return -1, errors.New("no node names a leader")
	}
	i := c.pc.Index(best)
	for _, j := range live {
		if j == i {
			return i, nil
		}
	}
	return -1, fmt.Errorf("the leader %s is not live", best)
}

func (c *cluster) Kill(i int) error { return c.pc.Kill(i) }

func (c *cluster) Restart(ctx context.Context, i int) error {
	if c.pc.Running(i) {
		return nil
	}
	if err := c.pc.Restart(i); err != nil {
		return err
	}
	return c.pc.WaitHealthy(ctx, i)
}

func (c *cluster) Pause(i int) error  { return c.pc.Pause(i) }
func (c *cluster) Resume(i int) error { return c.pc.Resume(i) }

// Leave asks node i to leave (bounded by 30s) and waits for it to exit; it
// kills it when it does not exit within 20s, so the node is down when Leave
// returns.
func (c *cluster) Leave(ctx context.Context, i int) error {
	r := c.slow.Post(ctx, c.pc.HTTPAddr(i), "/cluster/leave")
	var err error
	if r.Status != 200 {
		err = fmt.Errorf("POST /cluster/leave: %s %d %s %s", r.Type, r.Status, r.Code, r.Err)
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, werr := c.pc.WaitExit(wctx, i); werr != nil {
		_ = c.pc.Kill(i)
		err = errors.Join(err, fmt.Errorf("%s did not exit after leaving: killed", c.NodeName(i)))
	}
	return err
}

// RemovePeer removes the stopped node i from Raft with DELETE
// /cluster/peers/{node}, sent to the leader (or any live node), retrying for
// up to 30s while there is no leader or gossip still sees the node alive
// (409 member_alive: failure detection takes a few seconds).
func (c *cluster) RemovePeer(ctx context.Context, i int) error {
	name := c.NodeName(i)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		j, err := c.Leader(ctx)
		if err != nil {
			if live := c.pc.Live(); len(live) > 0 {
				j = live[0]
			}
		}
		if j < 0 || j == i {
			return fmt.Errorf("remove %s: no other live node", name)
		}
		r := c.slow.Delete(ctx, c.pc.HTTPAddr(j), "/cluster/peers/"+name)
		switch {
		case r.Status/100 == 2:
			return nil
		case r.Status == 404 && strings.Contains(r.Err, "no such endpoint"), r.Status == 405:
			return nemesis.ErrUnsupported
		case r.Status != 503 && !(r.Status == 409 && r.Code == "member_alive"):
			return fmt.Errorf("DELETE /cluster/peers/%s on %s: %s %d %s %s", name, c.NodeName(j), r.Type, r.Status, r.Code, r.Err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("DELETE /cluster/peers/%s: still %d %s after 30s: %s", name, r.Status, r.Code, r.Err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// WipeData deletes node i's data dir, refusing while the node runs or while
// the leader still counts it as a server (wiping a voter's log could lose
// acknowledged writes: that would be the harness's fault, not Raft's).
func (c *cluster) WipeData(i int) error {
	if c.pc.Running(i) {
		return fmt.Errorf("wipe %s: still running", c.NodeName(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := c.Leader(ctx)
	if err != nil {
		return fmt.Errorf("wipe %s: %w", c.NodeName(i), err)
	}
	ri, err := c.admin.Raft(ctx, c.pc.HTTPAddr(l))
	if err != nil {
		return fmt.Errorf("wipe %s: %w", c.NodeName(i), err)
	}
	for _, s := range ri.Servers {
		if s.ID == c.NodeName(i) {
			return fmt.Errorf("wipe %s: the leader %s still lists it as a %s", s.ID, c.NodeName(l), s.Suffrage)
		}
	}
	dir := c.pc.Node(i).DataDir
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}

// WaitVoter waits until the leader lists node i as a voter.
func (c *cluster) WaitVoter(ctx context.Context, i int) error {
	name := c.NodeName(i)
	last := ""
	for {
		if l, err := c.Leader(ctx); err != nil {
			last = err.Error()
		} else if ri, err := c.admin.Raft(ctx, c.pc.HTTPAddr(l)); err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("leader %s lists %v", c.NodeName(l), ri.Servers)
			for _, s := range ri.Servers {
				if s.ID == name && s.Suffrage == "voter" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not a voter again: %w (last: %s)", name, ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *cluster) Exec(ctx context.Context, i int, stdin []byte, argv ...string) ([]byte, error) {
	return c.topo.ExecNode(ctx, i, stdin, argv...)
}

// healAll is the safety net after the schedule: every node resumed and
// running, no firewall rule, no qdisc. It returns what it had to repair.
func (c *cluster) healAll(ctx context.Context) ([]string, error) {
	var fixed []string
	var errs []error
	for i := 0; i < c.N(); i++ {
		info := c.pc.Node(i)
		if info.Paused {
			fixed = append(fixed, "resumed "+info.Name)
			errs = append(errs, c.pc.Resume(i))
		}
		if !info.Running {
			fixed = append(fixed, "restarted "+info.Name)
			errs = append(errs, c.Restart(ctx, i))
		}
		for _, chain := range []string{nemesis.ChainPartition, nemesis.ChainSlow} {
			if _, err := c.Exec(ctx, i, nil, "iptables", "-F", chain); err != nil {
				errs = append(errs, err)
			}
		}
		_, _ = c.Exec(ctx, i, nil, "tc", "qdisc", "del", "dev", netns.NodeIface, "root")
	}
	return fixed, errors.Join(errs...)
}
