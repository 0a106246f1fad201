package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/nexus/nexus/cluster/peerproto"

	"github.com/nexus/nexus/fsm/command"
)

// Gossip keyring rotation (docs/security.md): install a new key on every
// member, make it the primary everywhere, then remove the old one. The node
// that receives the request applies it locally and on every alive member
// through their admin APIs (peerproto's PathKeyring, signed with the cluster
// secret).
// Each node keeps its keyring in DATA_DIR/gossip-keyring.json, which wins
// over Config.GossipKeys at the next start.

// keyringFile is the keyring's file in the data directory.
const keyringFile = "gossip-keyring.json"

// Keyring operations.
const (
	KeyringInstall = "install"
	KeyringUse     = "use"
	KeyringRemove  = "remove"
)

// ErrKeyringOff means gossip encryption is off: there is no keyring.
var ErrKeyringOff error = &OpError{Code: command.CodeKeyringOff,
	Msg: "gossip encryption is off (start the agents with encrypt to use a keyring)"}

// KeyringOpError is a refused keyring operation (bad key, removing the
// primary key): code invalid.
type KeyringOpError struct{ Msg string }

func (e *KeyringOpError) Error() string { return e.Msg }

// ErrorCode is the error code.
func (e *KeyringOpError) ErrorCode() string { return command.CodeInvalid }

// KeyringStatus lists a node's gossip keys (base64), the primary first.
type KeyringStatus struct {
	Primary string   `json:"primary"`
	Keys    []string `json:"keys"`
}

// gossipKeys are the keys to start with: the saved keyring if any, else
// Config.GossipKeys.
func (n *Node) gossipKeys() ([][]byte, error) {
	if n.cfg.DataDir == nil {
		return n.cfg.GossipKeys, nil
	}
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir.Path(), keyringFile))
	if errors.Is(err, os.ErrNotExist) {
		return n.cfg.GossipKeys, nil
	}
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	var st KeyringStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("gossip keyring %s: %w", keyringFile, err)
	}
	if len(n.cfg.GossipKeys) == 0 {
		// encrypt was removed from the settings: the saved keyring still
		// applies (a node must not silently fall back to plain gossip).
		n.logger.Warn("encrypt is not set but the data dir holds a gossip keyring; using the keyring")
	}
	keys := make([][]byte, 0, len(st.Keys))
	for _, s := range append([]string{st.Primary}, st.Keys...) {
		k, err := decodeKey(s)
		if err != nil {
			return nil, fmt.Errorf("gossip keyring %s: %w", keyringFile, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func decodeKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, &KeyringOpError{Msg: "key: not base64 (standard encoding)"}
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, &KeyringOpError{Msg: fmt.Sprintf("key: %d bytes; want 16, 24 or 32", len(k))}
}

// KeyringList returns this node's keys.
func (n *Node) KeyringList() (KeyringStatus, error) {
	kr := n.gossip.keyring
	if kr == nil {
		return KeyringStatus{}, ErrKeyringOff
	}
	return keyringStatus(kr.GetKeys()), nil
}

func keyringStatus(keys [][]byte) KeyringStatus {
	st := KeyringStatus{Keys: []string{}}
	for i, k := range keys {
		s := base64.StdEncoding.EncodeToString(k)
		if i == 0 {
			st.Primary = s
		}
		st.Keys = append(st.Keys, s)
	}
	sort.Strings(st.Keys)
	return st
}

// keyringLocal applies one operation to this node's keyring and saves it.
func (n *Node) keyringLocal(op, key string) error {
	kr := n.gossip.keyring
	if kr == nil {
		return ErrKeyringOff
	}
	k, err := decodeKey(key)
	if err != nil {
		return err
	}
	n.gossip.keyringMu.Lock()
	defer n.gossip.keyringMu.Unlock()
	switch op {
	case KeyringInstall:
		err = kr.AddKey(k)
	case KeyringUse:
		err = kr.UseKey(k)
	case KeyringRemove:
		err = kr.RemoveKey(k)
	default:
		return &KeyringOpError{Msg: fmt.Sprintf("op: %q must be install, use or remove", op)}
	}
	if err != nil {
		return &KeyringOpError{Msg: err.Error()}
	}
	return n.saveKeyring(kr.GetKeys())
}

func (n *Node) saveKeyring(keys [][]byte) error {
	if n.cfg.DataDir == nil {
		return nil
	}
	st := keyringStatus(keys)
	primary := st.Primary
	rest := st.Keys[:0:0]
	for _, k := range st.Keys {
		if k != primary {
			rest = append(rest, k)
		}
	}
	b, _ := json.Marshal(KeyringStatus{Primary: primary, Keys: rest})
	path := filepath.Join(n.cfg.DataDir.Path(), keyringFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// KeyringApply applies op with key on this node and on every alive member,
// and returns each node's outcome ("ok" or the error). The error is set
// when some node failed; the operation is idempotent, so it can be retried.
func (n *Node) KeyringApply(ctx context.Context, op, key string) (map[string]string, error) {
	if err := n.keyringLocal(op, key); err != nil {
		return nil, err
	}
	out := map[string]string{n.cfg.Node: "ok"}
	_, secret := n.cfg.Hooks.Identity()
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed := 0
	for _, m := range n.gossip.snapshot() {
		if m.Name == n.cfg.Node || m.Status != StatusAlive {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := "ok"
			switch {
			case m.Meta.HTTPAddr == "" || secret == "":
				res = "error: no admin address or cluster secret known yet"
			default:
				if err := n.peers.Keyring(ctx, m.Meta.HTTPAddr, secret, peerproto.KeyringRequest{Op: op, Key: key}, 5*time.Second); err != nil {
					res = "error: " + err.Error()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			out[m.Name] = res
			if res != "ok" {
				failed++
			}
		}()
	}
	wg.Wait()
	if failed > 0 {
		return out, fmt.Errorf("keyring %s failed on %d node(s); it is safe to retry", op, failed)
	}
	return out, nil
}

// KeyringForwarded applies an operation another node sent (peerproto's
// PathKeyring), authenticated by the cluster secret.
func (n *Node) KeyringForwarded(mac string, body []byte) error {
	if _, secret := n.cfg.Hooks.Identity(); !peerproto.Verify(secret, mac, body) {
		return ErrBadMAC
	}
	var r peerproto.KeyringRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return &KeyringOpError{Msg: "body: " + err.Error()}
	}
	return n.keyringLocal(r.Op, r.Key)
}
