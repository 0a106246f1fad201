// Package peerproto is the node-to-node protocol of Nexus, in one place:
// every path a node calls on another node's admin listener, every header
// of those calls, the MAC that authenticates what only members may send,
// the one client that makes every call (Client), the decoding of error
// answers, and the handlers that the admin listener mounts under
// /internal/ (Service). rqlite's cluster.Service and Client are the model.
//
//	path                      method  who calls          authenticated by
//	/internal/forward         POST    follower → leader  MAC of the body (+ HeaderForwardFrom)
//	/internal/forward-stream  POST    follower → leader  upgraded to frames, each with the MAC of its write
//	/internal/read-index      POST    follower → leader  MAC of the nonce
//	/internal/raft-stats      GET     leader → server    (read only)
//	/internal/keyring         POST    node → node        MAC of the body
//	/cluster/peers/{node}     DELETE  relay to leader    caller's credentials, HeaderRelayed
//	/cluster/snapshot         PUT     relay to leader    caller's credentials, HeaderRelayed
//	/services/{s}/instances/{id}/heartbeat
//	                          PUT     node → owner       caller's credentials, HeaderHeartbeatForwarded
//
// The last three are admin API endpoints that a node also calls on
// another on its client's behalf; their handlers are the API's. The package
// imports neither raft nor the cluster: the cluster (which calls) and the
// api (which mounts Service) both use it. Nothing else writes an
// /internal/ path or one of these headers.
package peerproto

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
)

// Paths.
const (
	// Prefix is where the admin listener mounts Service.
	Prefix = "/internal/"
	// PathForward takes a write a follower forwards to the leader.
	PathForward = "/internal/forward"
	// PathForwardStream upgrades a connection to a forwarding stream: many
	// forwarded writes in flight, as frames (stream.go).
	PathForwardStream = "/internal/forward-stream"
	// PathReadIndex gives a follower the leader's read index.
	PathReadIndex = "/internal/read-index"
	// PathRaftStats reports a server's Raft progress to the leader's
	// autopilot.
	PathRaftStats = "/internal/raft-stats"
	// PathKeyring applies a gossip keyring operation on one node.
	PathKeyring = "/internal/keyring"
	// PathSnapshot is the admin API's operator snapshot endpoint; a
	// follower relays a restore (PUT) to the leader's.
	PathSnapshot = "/cluster/snapshot"
	// PathPeers (+ the escaped node name) is the admin API's remove-peer
	// endpoint; a follower relays a DELETE to the leader's.
	PathPeers = "/cluster/peers/"
)

// PeerPath is the remove-peer path of node.
func PeerPath(node string) string { return PathPeers + url.PathEscape(node) }

// HeartbeatPath is the admin API's heartbeat path of an instance, which a
// node calls on the instance's owner.
func HeartbeatPath(service, id string) string {
	return "/services/" + url.PathEscape(service) + "/instances/" + url.PathEscape(id) + "/heartbeat"
}

// Headers.
const (
	// HeaderMAC carries the HMAC-SHA256, under the cluster secret, of the
	// body of a forwarded write, a read-index nonce or a keyring operation.
	HeaderMAC = "X-Nexus-Forward-MAC"
	// HeaderRelayed marks an operator request (remove-peer, snapshot
	// restore) that a follower relayed to the leader, with the follower's
	// name: the receiver never relays it again, so a leader change cannot
	// bounce it between nodes.
	HeaderRelayed = "X-Nexus-Relayed"
	// HeaderHeartbeatForwarded marks a heartbeat passed on to the owner
	// node, which never passes it on again.
	HeaderHeartbeatForwarded = "X-Nexus-Heartbeat-Forwarded"
	// HeaderForwardFrom names the node (its Raft server ID) that forwarded
	// a write, so that the leader can tell it of the write's commit at once
	// (cluster/commitnotice.go). Absent from older builds: the leader then
	// falls back to a no-op entry.
	HeaderForwardFrom = "X-Nexus-Forward-From"
	// HeaderIndex is the admin API's X-Nexus-Index: the Raft index an
	// answer reflects (a relayed operation's index).
	HeaderIndex = "X-Nexus-Index"
	// HeaderToken is the admin API's token header; a node passes its
	// client's credential on with a relayed heartbeat.
	HeaderToken = "X-Nexus-Token"
)

// ErrBadMAC means a request that only members may send is not signed with
// the cluster secret (or this node does not hold it yet).
var ErrBadMAC = errors.New("not signed with the cluster secret")

// Sign returns the MAC of body under secret (hex HMAC-SHA256).
func Sign(secret string, body []byte) string {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// Verify reports whether mac is body's MAC under secret, in constant time.
// Without a secret nothing verifies.
func Verify(secret, mac string, body []byte) bool {
	return secret != "" && hmac.Equal([]byte(mac), []byte(Sign(secret, body)))
}

// RaftStats is a server's Raft progress, as PathRaftStats answers it.
type RaftStats struct {
	Node         string `json:"node"`
	State        string `json:"state"`
	Term         uint64 `json:"term"`
	LastLogIndex uint64 `json:"last_log_index"`
	LastLogTerm  uint64 `json:"last_log_term"`
	AppliedIndex uint64 `json:"applied_index"`
	// LastContactMs is the time since this server last heard from the
	// leader: 0 on the leader, -1 if never.
	LastContactMs int64 `json:"last_contact_ms"`
}

// KeyringRequest is the body of PathKeyring.
type KeyringRequest struct {
	Op  string `json:"op"`
	Key string `json:"key"`
}

// IsInternal reports whether path is under Prefix (Service's).
func IsInternal(path string) bool { return strings.HasPrefix(path, Prefix) }
