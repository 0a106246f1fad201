package agent

import (
	"sync/atomic"
	"time"

	"github.com/nexus/nexus/cluster"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Hooks are the domain facts the cluster package needs without importing
// the domain: the encoding of its two system commands (a no-op barrier and
// the cluster identity, proposed by node) and where the applied cluster
// identity lives (store, cached once applied).
func Hooks(codec *command.Codec, store *registry.Store, node string) cluster.Hooks {
	ident := &identity{store: store}
	return cluster.Hooks{
		Noop: func() []byte {
			b, _ := codec.Encode(command.TypeNoop, &command.Noop{Meta: command.Meta{Node: node, Time: time.Now().UnixNano()}})
			return b
		},
		ClusterInit: func(id, secret string) []byte {
			b, _ := codec.Encode(command.TypeClusterInit, &command.ClusterInit{
				Meta: command.Meta{Actor: command.ActorSystem, Node: node, Time: time.Now().UnixNano()}, ClusterID: id, Secret: secret,
			})
			return b
		},
		Identity: ident.get,
		StateObjects: func() uint64 {
			tx := store.ReadTxn()
			defer tx.Abort()
			return tx.Objects()
		},
	}
}

// identity caches the cluster id and forwarding secret once applied: they
// never change afterwards (a restore keeps this cluster's identity,
// snapshot.go).
type identity struct {
	store *registry.Store
	v     atomic.Pointer[registry.ClusterMeta]
}

func (i *identity) get() (string, string) {
	if m := i.v.Load(); m != nil {
		return m.ClusterID, m.Secret
	}
	tx := i.store.ReadTxn()
	defer tx.Abort()
	m := tx.ClusterMeta()
	if m == nil {
		return "", ""
	}
	i.v.Store(m)
	return m.ClusterID, m.Secret
}
