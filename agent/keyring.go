package agent

import (
	"context"
	"errors"
	"net/http"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cluster"
)

// keyringAdapter serves the API's gossip keyring endpoints from the node.
type keyringAdapter struct{ node *cluster.Node }

func (k keyringAdapter) List() (api.KeyringStatus, error) {
	st, err := k.node.KeyringList()
	return api.KeyringStatus{Primary: st.Primary, Keys: st.Keys}, keyringError(err)
}

func (k keyringAdapter) Apply(ctx context.Context, op, key string) (map[string]string, error) {
	nodes, err := k.node.KeyringApply(ctx, op, key)
	return nodes, keyringError(err)
}

func (k keyringAdapter) Forwarded(mac string, body []byte) error {
	return keyringError(k.node.KeyringForwarded(mac, body))
}

// keyringStatusError carries the HTTP answer of a keyring error.
type keyringStatusError struct {
	err    error
	status int
	code   string
}

func (e *keyringStatusError) Error() string     { return e.err.Error() }
func (e *keyringStatusError) Unwrap() error     { return e.err }
func (e *keyringStatusError) StatusCode() int   { return e.status }
func (e *keyringStatusError) ErrorCode() string { return e.code }

func keyringError(err error) error {
	var opErr *cluster.KeyringOpError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrKeyringOff):
		return &keyringStatusError{err: err, status: http.StatusConflict, code: "keyring_off"}
	case errors.Is(err, cluster.ErrBadMAC):
		return &keyringStatusError{err: err, status: http.StatusForbidden, code: "forbidden"}
	case errors.As(err, &opErr):
		return &keyringStatusError{err: err, status: http.StatusBadRequest, code: "invalid"}
	}
	return err
}
