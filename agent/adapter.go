package agent

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// clusterAdapter presents the cluster node to the api in the api's own
// types (api never imports cluster, which imports raft), and orchestrates
// `nexus leave`, which needs both the domain (deregister this node's
// instances) and the cluster (leave Raft and gossip).
type clusterAdapter struct {
	node    *cluster.Node
	machine *fsm.FSM
	codec   *command.Codec
	logger  *slog.Logger

	leaveOnce sync.Once
	left      chan struct{}
}

func (a *clusterAdapter) NodeName() string { return a.node.NodeName() }

func (a *clusterAdapter) Raft() api.RaftStatus {
	r := a.node.Raft()
	out := api.RaftStatus{
		State: r.State, Term: r.Term, Leader: r.Leader, CommitIndex: r.CommitIndex,
		AppliedIndex: r.AppliedIndex, LastContact: r.LastContact,
	}
	for _, s := range r.Servers {
		out.Servers = append(out.Servers, api.RaftServer{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage, Leader: s.Leader})
	}
	return out
}

func (a *clusterAdapter) Members() []api.Member {
	ms := a.node.Members()
	out := make([]api.Member, len(ms))
	for i, m := range ms {
		out[i] = api.Member{Name: m.Name, Address: m.Address, Status: string(m.Status), Raft: m.Raft,
			HTTPAddr: m.HTTPAddr, GatewayAddr: m.GatewayAddr, Version: m.Version}
	}
	return out
}

func (a *clusterAdapter) Leader() (api.LeaderInfo, bool) {
	l, ok := a.node.Leader()
	return api.LeaderInfo{Node: l.Node, RaftAddr: l.RaftAddr, HTTPAddr: l.HTTPAddr}, ok
}

func (a *clusterAdapter) Ready() bool { return a.node.Ready() }

func (a *clusterAdapter) Contact() (bool, time.Duration) { return a.node.Contact() }

// leaveDeregisterers bounds the deregistrations a leave has in flight.
const leaveDeregisterers = 32

// deregisterOwned deregisters one instance this node owns, before a leave.
func (a *clusterAdapter) deregisterOwned(ctx context.Context, in registry.Instance) error {
	b, err := a.codec.Encode(command.TypeDeregisterInstance, &command.DeregisterInstance{
		Meta:    command.Meta{Actor: command.ActorSystem, Node: a.node.NodeName(), Time: time.Now().UnixNano()},
		Service: in.Service, ID: in.ID,
	})
	if err != nil {
		return err
	}
	res, err := a.node.Apply(ctx, b)
	if err != nil {
		return fmt.Errorf("deregistering %s/%s before leaving: %w", in.Service, in.ID, err)
	}
	if res.Err != nil && res.Err.Code != command.CodeNotFound {
		return fmt.Errorf("deregistering %s/%s before leaving: %s", in.Service, in.ID, res.Err.Message)
	}
	return nil
}

// Leave deregisters the instances this node owns, removes the node from Raft
// and gossip, and then stops the agent.
func (a *clusterAdapter) Leave(ctx context.Context, relay api.Relay) error {
	tx := a.machine.Store().ReadTxn()
	owned := tx.InstancesByNode(nil, a.node.NodeName())
	tx.Abort()
	// Up to leaveDeregisterers at once: Raft commits them in batches (one
	// at a time, 2,000 owned instances took 30 s under load).
	sem := make(chan struct{}, leaveDeregisterers)
	errs := make(chan error, len(owned))
	var wg sync.WaitGroup
	for _, in := range owned {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs <- a.deregisterOwned(ctx, in)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	a.logger.Info("deregistered owned instances before leaving", "count", len(owned))
	if err := a.node.Leave(ctx, cluster.Relay{Forwarded: relay.Forwarded, Headers: relay.Headers}); err != nil {
		return err
	}
	a.leaveOnce.Do(func() {
		// Let the API answer the leave request before the process stops.
		time.AfterFunc(300*time.Millisecond, func() { close(a.left) })
	})
	return nil
}

// RemovePeer passes cluster errors through: cluster.OpError carries its
// API answer, the write outcomes are the command errors.
func (a *clusterAdapter) RemovePeer(ctx context.Context, node string, relay api.Relay) (uint64, error) {
	return a.node.RemovePeer(ctx, node, cluster.Relay{Forwarded: relay.Forwarded, Headers: relay.Headers})
}
