package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	autopilot "github.com/hashicorp/raft-autopilot"
)

// boundedRaft is the autopilot.Raft the library drives. The library waits
// on every future with a bare Error(), which can block forever when the
// leader shuts down mid-change (hashicorp/raft#498), and passes a zero
// enqueue timeout; here every future's Error() is bounded by timeout and
// every change gets timeout as its enqueue timeout.
type boundedRaft struct {
	n         *Node
	timeout   time.Duration
	onPromote func(raft.ServerID)
}

var _ autopilot.Raft = (*boundedRaft)(nil)

func (b *boundedRaft) enqueue(t time.Duration) time.Duration {
	if t <= 0 || t > b.timeout {
		return b.timeout
	}
	return t
}

func (b *boundedRaft) AddNonvoter(id raft.ServerID, addr raft.ServerAddress, prev uint64, t time.Duration) raft.IndexFuture {
	return &boundedIndexFuture{boundedFuture: boundedFuture{f: b.n.raft.AddNonvoter(id, addr, prev, b.enqueue(t)), timeout: b.timeout}}
}

// AddVoter is how the library promotes a non-voter. Its state may be a
// round old: a server that is a voter already is left alone (raft would
// append a configuration entry that changes nothing).
func (b *boundedRaft) AddVoter(id raft.ServerID, addr raft.ServerAddress, prev uint64, t time.Duration) raft.IndexFuture {
	if cfg, err := b.n.configuration(); err == nil {
		for _, s := range cfg.Servers {
			if s.ID == id && s.Address == addr && s.Suffrage == raft.Voter {
				return &boundedIndexFuture{boundedFuture: boundedFuture{f: doneFuture{}, timeout: b.timeout}}
			}
		}
	}
	f := b.n.raft.AddVoter(id, addr, prev, b.enqueue(t))
	return &boundedIndexFuture{boundedFuture: boundedFuture{f: f, timeout: b.timeout, onOK: func() { b.onPromote(id) }}}
}

func (b *boundedRaft) DemoteVoter(id raft.ServerID, prev uint64, t time.Duration) raft.IndexFuture {
	return &boundedIndexFuture{boundedFuture: boundedFuture{f: b.n.raft.DemoteVoter(id, prev, b.enqueue(t)), timeout: b.timeout}}
}

func (b *boundedRaft) RemoveServer(id raft.ServerID, prev uint64, t time.Duration) raft.IndexFuture {
	return &boundedIndexFuture{boundedFuture: boundedFuture{f: b.n.raft.RemoveServer(id, prev, b.enqueue(t)), timeout: b.timeout}}
}

func (b *boundedRaft) GetConfiguration() raft.ConfigurationFuture {
	f := b.n.raft.GetConfiguration()
	return &boundedConfigFuture{boundedFuture: boundedFuture{f: f, timeout: b.timeout}, cf: f}
}

func (b *boundedRaft) LeadershipTransferToServer(id raft.ServerID, addr raft.ServerAddress) raft.Future {
	return &boundedFuture{f: b.n.raft.LeadershipTransferToServer(id, addr), timeout: b.timeout}
}

func (b *boundedRaft) LastIndex() uint64          { return b.n.raft.LastIndex() }
func (b *boundedRaft) Leader() raft.ServerAddress { addr, _ := b.n.raft.LeaderWithID(); return addr }
func (b *boundedRaft) Stats() map[string]string   { return b.n.raft.Stats() }
func (b *boundedRaft) State() raft.RaftState      { return b.n.raft.State() }

// boundedFuture waits on f for at most timeout; onOK runs once on success.
type boundedFuture struct {
	f       raft.Future
	timeout time.Duration
	onOK    func()

	once sync.Once
	err  error
}

func (b *boundedFuture) Error() error {
	b.once.Do(func() {
		b.err = waitFuture(context.Background(), b.f, b.timeout)
		if b.err == nil && b.onOK != nil {
			b.onOK()
		}
	})
	return b.err
}

type boundedIndexFuture struct{ boundedFuture }

func (b *boundedIndexFuture) Index() uint64 {
	if f, ok := b.f.(raft.IndexFuture); ok {
		return f.Index()
	}
	return 0
}

type boundedConfigFuture struct {
	boundedFuture
	cf raft.ConfigurationFuture
}

func (b *boundedConfigFuture) Index() uint64 { return b.cf.Index() }

// Configuration is valid only after Error returned nil, as for raft's own.
func (b *boundedConfigFuture) Configuration() raft.Configuration { return b.cf.Configuration() }

// doneFuture is a future that has already succeeded.
type doneFuture struct{}

func (doneFuture) Error() error { return nil }
