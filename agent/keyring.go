package agent

import (
	"context"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
)

// keyringAdapter serves the API's gossip keyring endpoints from the node.
// The node's errors carry their answer (StatusCode, ErrorCode).
type keyringAdapter struct{ node *cluster.Node }

func (k keyringAdapter) List() (api.KeyringStatus, error) {
	st, err := k.node.KeyringList()
	return api.KeyringStatus{Primary: st.Primary, Keys: st.Keys}, err
}

func (k keyringAdapter) Apply(ctx context.Context, op, key string) (map[string]string, error) {
	return k.node.KeyringApply(ctx, op, key)
}
