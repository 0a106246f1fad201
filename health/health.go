// Package health keeps the catalog's health true. Every node runs the checks
// of the instances it owns (TTL, HTTP, TCP) and commits only status changes
// through Raft; an anti-entropy loop corrects the catalog from those checks.
// The leader marks every instance of a node that gossip declares failed as
// critical, deregisters instances of nodes that left, and removes instances
// critical for longer than their deregister_critical_after.
//
// It depends on the domain (registry, fsm/command) and on two small
// interfaces for Raft writes and membership; it never imports the cluster.
package health

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"

	"github.com/nexus/nexus/cluster/member"
)

// Writer commits encoded commands through Raft (cluster.Node implements it).
type Writer interface {
	Apply(ctx context.Context, cmd []byte) (*command.Result, error)
}

// Membership is what the health duties need to know about the cluster.
type Membership interface {
	NodeName() string
	// MemberStatuses maps every known member to its status. Suspect (this
	// node had no ack from it lately) is not a failure: only failed marks a
	// node's instances critical.
	MemberStatuses() map[string]member.Status
	// MemberHTTPAddr returns the admin API address of a member.
	MemberHTTPAddr(name string) (string, bool)
	// Changes is signalled (coalesced) whenever membership changes.
	Changes() <-chan struct{}
}

// Forwarder passes a TTL heartbeat on to the admin API at addr of the
// instance's owner (peerproto.Client). An error answer implements
// StatusCode().
type Forwarder interface {
	Heartbeat(ctx context.Context, addr, service, id, status, output, credential string, timeout time.Duration) (*registry.Instance, error)
}

// Errors of heartbeats. They carry an error code; the API maps it to a
// status.
var (
	// ErrOwnerUnavailable means the node owning the instance cannot be reached.
	ErrOwnerUnavailable error = &Error{Code: command.CodeOwnerUnavailable, Msg: "the node owning the instance is unavailable"}
	// ErrNoTTLCheck means the instance has no TTL check to refresh.
	ErrNoTTLCheck error = &Error{Code: command.CodeInvalid, Msg: "the instance has no ttl check"}
	// ErrNotFound means the instance is unknown.
	ErrNotFound error = &Error{Code: command.CodeNotFound, Msg: "instance not found"}
)

// Error is a heartbeat error with its error code.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// ErrorCode is the error code.
func (e *Error) ErrorCode() string { return e.Code }

// Deps wires the health package.
type Deps struct {
	Store      *registry.Store
	Codec      *command.Codec
	Writer     Writer
	Membership Membership
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// AntiEntropyInterval is how often the owner re-checks the catalog
	// against its checks even without a change (default 10s).
	AntiEntropyInterval time.Duration
	// CatchUp, when set, waits until this node applied everything committed
	// (a read index); heartbeats use it before answering 404, since a
	// follower may not have applied a registration made on another node.
	CatchUp func(ctx context.Context) error
	// Clock is the time of TTLs, of the leader's critical-since times and
	// of commands (default: the system clock).
	Clock Clock
	// Peers passes heartbeats on to the owner node's admin API (the node's
	// peerproto.Client); nil: a plain-HTTP client of its own.
	Peers Forwarder
}

type metrics struct {
	transitions *prometheus.CounterVec
	checkRuns   *prometheus.CounterVec
	commitErrs  prometheus.Counter
	reaped      prometheus.Counter
	marked      prometheus.Counter
	rounds      prometheus.Counter
	owned       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, store *registry.Store) *metrics {
	m := &metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_health_transitions_total", Help: "Health status changes committed, by service and new status.",
		}, []string{"service", "status"}),
		checkRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexus_health_checks_total", Help: "Health checks run on this node, by kind and result.",
		}, []string{"kind", "status"}),
		commitErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_health_commit_errors_total", Help: "Status changes that could not be committed (retried by anti-entropy).",
		}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_health_reaped_total", Help: "Instances deregistered by the leader after deregister_critical_after.",
		}),
		marked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_health_node_failure_marks_total", Help: "Instances marked critical by the leader because their node failed.",
		}),
		rounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nexus_health_anti_entropy_rounds_total", Help: "Rounds in which this node compared the catalog with its checks (on every change and every anti-entropy interval).",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nexus_health_owned_instances", Help: "Instances this node owns and runs checks for (what its runner follows).",
		}),
	}
	reg.MustRegister(m.transitions, m.checkRuns, m.commitErrs, m.reaped, m.marked, m.rounds, m.owned, &statusCollector{
		store: store,
		desc:  prometheus.NewDesc("nexus_instances", "Instances in the catalog by health status.", []string{"status"}, nil),
		maint: prometheus.NewDesc("nexus_maintenance_instances", "Instances in maintenance (also counted critical in nexus_instances).", nil, nil),
		records: prometheus.NewDesc("nexus_maintenance_records", "Maintenance records by scope (node, service, instance).",
			[]string{"scope"}, nil),
	})
	return m
}

// statusCollector exports instances by status from the local replica.
type statusCollector struct {
	store                *registry.Store
	desc, maint, records *prometheus.Desc
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.desc
	ch <- c.maint
	ch <- c.records
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	// Counts kept by the store on every write: a scrape costs O(1), not a
	// walk of the catalog.
	tx := c.store.ReadTxn()
	passing, warning, critical := tx.StatusCounts()
	inMaint := tx.MaintenanceCount()
	scopes := map[string]int{registry.MaintNode: 0, registry.MaintService: 0, registry.MaintInstance: 0}
	for _, m := range tx.Maintenances(nil) { // operator records: a handful
		scopes[m.Scope]++
	}
	tx.Abort()
	for s, n := range map[string]int{registry.StatusPassing: passing, registry.StatusWarning: warning, registry.StatusCritical: critical} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), s)
	}
	ch <- prometheus.MustNewConstMetric(c.maint, prometheus.GaugeValue, float64(inMaint))
	for s, n := range scopes {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(n), s)
	}
}
