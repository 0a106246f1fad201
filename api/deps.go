package api

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Writer commits encoded commands through Raft. The cluster package implements
// it: on the leader it applies, on a follower it forwards to the leader, and in
// both cases it returns only once the command has applied on this node too.
//
// Errors: command.ErrNoLeader (surely not applied: 503), command.ErrOutcomeUnknown
// (dispatched, answer lost: 504), command.ErrNotApplied (committed on the leader
// but not yet applied here: 504). A business error is a Result with Err set.
type Writer interface {
	Apply(ctx context.Context, cmd []byte) (*command.Result, error)
}

// Reader gives the local replica.
type Reader interface {
	Store() *registry.Store
}

// RaftStatus is the Raft view of this node.
type RaftStatus struct {
	State        string        `json:"state"`
	Term         uint64        `json:"term"`
	Leader       string        `json:"leader"`
	CommitIndex  uint64        `json:"commit_index"`
	AppliedIndex uint64        `json:"applied_index"`
	LastContact  time.Duration `json:"-"`
	Servers      []RaftServer  `json:"-"`
}

// RaftServer is one server of the Raft configuration.
type RaftServer struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Member is one gossip member as GET /cluster/members shows it.
type Member struct {
	Name        string `json:"name"`
	Address     string `json:"address"`
	Status      string `json:"status"`
	Raft        string `json:"raft"`
	HTTPAddr    string `json:"http_addr"`
	GatewayAddr string `json:"gateway_addr"`
	Version     string `json:"version,omitempty"`
}

// LeaderInfo is the known leader.
type LeaderInfo struct {
	Node     string `json:"node"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Cluster answers questions about membership and Raft state.
type Cluster interface {
	NodeName() string
	Raft() RaftStatus
	Members() []Member
	// Leader returns the known leader, or ok=false when there is none.
	Leader() (LeaderInfo, bool)
	// Ready reports whether this node knows a leader and has applied up to
	// the commit index it learned from it.
	Ready() bool
	// Leave makes this node leave the cluster for good (POST /cluster/leave).
	Leave(ctx context.Context, relay Relay) error
	// Contact is cheap (called on every response): whether a leader is
	// known and how long ago this node heard from it (0 on the leader).
	Contact() (knownLeader bool, lastContact time.Duration)

	// RemovePeer removes a failed server from Raft and returns the index
	// of the configuration change; a follower relays the request to the
	// leader. Errors that know their answer implement
	// StatusCode()/ErrorCode() (404 not_found, 409 member_alive); the
	// command write outcomes as for writes.
	RemovePeer(ctx context.Context, node string, relay Relay) (uint64, error)
	// Snapshot writes a snapshot of this node's replica, in the FSM's
	// snapshot format, to w and returns an index it covers at least.
	Snapshot(w io.Writer) (uint64, error)
	// RestoreSnapshot validates a snapshot and restores it through Raft on
	// every node (a follower relays it to the leader); it returns an index
	// at which the restored state has applied on this node. Errors as for
	// RemovePeer (400 invalid_snapshot).
	RestoreSnapshot(ctx context.Context, data []byte, relay Relay) (uint64, error)
}

// ConsistentReader makes a read linearizable: it returns once this node's
// replica has applied everything committed before the call (read index on
// the leader, through the leader on a follower). The cluster package
// implements it. An error means no leader could confirm (503 no_leader).
type ConsistentReader interface {
	ConsistentRead(ctx context.Context) error
}

// Heartbeats routes a TTL heartbeat to the health runner of the node that
// owns the instance. Errors that know their answer implement
// StatusCode()/ErrorCode(); write outcomes are the command errors.
type Heartbeats interface {
	Heartbeat(ctx context.Context, service, id, status, output string, forwarded bool) (*registry.Instance, error)
}

// PeerService serves the node-to-node paths under /internal/
// (peerproto.Service): it answers the request and returns the route (for
// metrics) and the index the answer reflects.
type PeerService interface {
	Serve(ctx *fasthttp.RequestCtx) (route string, index uint64)
}

// Deps are what the admin API needs; package agent wires them.
type Deps struct {
	Writer   Writer
	Reader   Reader
	Cluster  Cluster
	Codec    *command.Codec
	Logger   *slog.Logger
	Registry prometheus.Registerer
	Gatherer prometheus.Gatherer
	Version  string
	// MaxBodyBytes limits request bodies (default 1 MiB; 413 above).
	MaxBodyBytes int
	// Now is the proposer clock stamped into commands (default time.Now).
	Now func() time.Time

	// Heartbeats, when set, owns TTL heartbeats (the health runner); without
	// it a heartbeat with a status commits that status directly.
	Heartbeats Heartbeats

	// AuditArchive answers GET /audit from PostgreSQL (merged with the
	// backlog); nil reads the replicated backlog only.
	AuditArchive AuditArchive

	// Consistency serves ?consistent reads; nil answers them from the local
	// replica (as ?stale).
	Consistency ConsistentReader
	// ApplyTimeout bounds the wait of a write on Raft and of a consistent
	// read (default 10s); past it a write answers 504 outcome_unknown.
	ApplyTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout configure the HTTP server
	// (defaults 30s, 30s, 2m). Blocking queries are not bounded by them.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	IdleTimeout  time.Duration

	// Guard: Host header allow list, per-IP rate limit and TLS (guard.go,
	// docs/security.md).
	Guard Guard
	// Keyring, when set, serves gossip key rotation (keyring.go); nil
	// answers 404.
	Keyring Keyring
	// ACL turns on access control (acl.go); the zero value is off.
	ACL ACLOptions
	// EnableDebug serves /debug/pprof/ (debug.go) on a node without ACLs;
	// with ACLs on it is served anyway, behind cluster:write.
	EnableDebug bool
	// Peers serves /internal/... (the node-to-node protocol); nil answers
	// 404 there.
	Peers PeerService
}
