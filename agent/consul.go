package agent

import (
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/consul"
)

// mountConsul serves the Consul-compatible API under /v1/ of the admin
// listener (docs/consul-compat.md).
func mountConsul(srv *api.Server, node *cluster.Node, datacenter, version string, reg prometheus.Registerer, logger *slog.Logger) error {
	v1, err := consul.New(consul.Deps{Native: srv, Cluster: consulCluster{node: node}, Datacenter: datacenter,
		Version: version, Logger: logger.With("component", "consul"), Registry: reg})
	if err != nil {
		return err
	}
	srv.MountV1(v1)
	return nil
}

// consulCluster presents the cluster node to the Consul mapping.
type consulCluster struct{ node *cluster.Node }

func (c consulCluster) NodeName() string { return c.node.NodeName() }

func (c consulCluster) Contact() (bool, time.Duration) { return c.node.Contact() }

func (c consulCluster) LeaderRaftAddr() string {
	l, ok := c.node.Leader()
	if !ok {
		return ""
	}
	return l.RaftAddr
}

func (c consulCluster) RaftPeers() []string {
	var out []string
	for _, s := range c.node.Raft().Servers {
		if s.Suffrage == "voter" {
			out = append(out, s.Address)
		}
	}
	return out
}

func (c consulCluster) Members() []consul.Member {
	ms := c.node.Members()
	out := make([]consul.Member, 0, len(ms))
	for _, m := range ms {
		cm := consul.Member{Name: m.Name, Addr: m.Address, Status: string(m.Status)}
		if h, p, err := net.SplitHostPort(m.Address); err == nil {
			cm.Addr = h
			cm.Port, _ = strconv.Atoi(p)
		}
		out = append(out, cm)
	}
	return out
}
