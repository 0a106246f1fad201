package runner

import (
	"encoding/json"
	"os"
	"time"

	"github.com/nexus/nexus/internal/jepsen/checker"
	"github.com/nexus/nexus/internal/jepsen/nemesis"
	"github.com/nexus/nexus/internal/jepsen/workload"
)

// Verdicts.
const (
	VerdictValid   = "valid"   // every check passed
	VerdictInvalid = "invalid" // an anomaly was found
	VerdictUnknown = "unknown" // the harness could not decide (checker timeout, harness error)
)

// Recovery describes the end of the run: faults healed, then the final
// reads.
type Recovery struct {
	Recovered  bool     `json:"recovered"`   // every final read answered
	HealedIn   string   `json:"healed_in"`   // from the end of the workload to a leader and all nodes ready
	FinalIn    string   `json:"final_in"`    // time the final reads took
	Repaired   []string `json:"repaired"`    // what the safety net had to fix after the schedule
	NotReady   []string `json:"not_ready"`   // nodes not ready when the final reads began
	FinalError string   `json:"final_error"` // why the final reads failed
}

// Summary is summary.json.
type Summary struct {
	Valid     bool                       `json:"valid"`
	Verdict   string                     `json:"verdict"`
	Reasons   []string                   `json:"reasons,omitempty"` // why not valid
	Started   time.Time                  `json:"started"`
	Elapsed   string                     `json:"elapsed"`
	Config    Config                     `json:"config"`
	Version   string                     `json:"nexus_version"` // `nexus version` of the binary under test
	Nemeses   []string                   `json:"nemeses"`
	Nodes     []string                   `json:"nodes"`
	Counts    checker.Counts             `json:"counts"` // ok/fail/info of every op
	Stats     checker.Stats              `json:"stats"`
	Lost      int                        `json:"lost"`              // set: acknowledged adds missing at the end
	Unexpect  int                        `json:"unexpected"`        // set: elements present that should not be
	Audit     *AuditCounts               `json:"audit,omitempty"`   // audit: the archive against the history
	Archive   string                     `json:"archive,omitempty"` // audit: the agents' --postgres-url
	Lock      *LockCounts                `json:"lock,omitempty"`    // lock: the counter and the fencing
	Results   map[string]workload.Result `json:"workloads"`
	Schedule  nemesis.ScheduleStats      `json:"nemesis"`
	Windows   []checker.Window           `json:"fault_windows"`
	FaultTime string                     `json:"fault_time"` // total time with a fault active
	Recovery  Recovery                   `json:"recovery"`
	Errors    []string                   `json:"errors,omitempty"` // harness errors
	Files     map[string]string          `json:"files"`
}

// AuditCounts are the audit workload's headline numbers (the full result is
// in workloads.audit.details).
type AuditCounts struct {
	Rows         int `json:"rows"`          // rows of audit_events at the end
	Writes       int `json:"writes"`        // writes checked (every workload's)
	OK           int `json:"ok"`            // acknowledged writes
	Info         int `json:"info"`          // writes with an unknown outcome
	ArchivedOK   int `json:"archived_ok"`   // acknowledged writes with exactly their rows
	ArchivedInfo int `json:"archived_info"` // info writes that turned out applied
	Lost         int `json:"lost"`          // acknowledged writes without their rows
	Duplicated   int `json:"duplicated"`    // writes archived twice, or a (raft_index, position) twice
	Unexpected   int `json:"unexpected"`    // rows of failed or never-attempted writes
	Anomalies    int `json:"anomalies"`     // every kind
}

// NewAuditCounts summarizes an audit result.
func NewAuditCounts(r *checker.AuditResult) *AuditCounts {
	c := &AuditCounts{Rows: r.Rows, Writes: r.Writes.Total, OK: r.Writes.OK, Info: r.Writes.Info, ArchivedOK: r.ArchivedOK,
		ArchivedInfo: r.ArchivedInfo, Lost: r.Lost, Duplicated: r.Duplicated, Unexpected: r.Unexpected}
	for _, n := range r.Counts {
		c.Anomalies += n
	}
	return c
}

// LockCounts are the lock workload's headline numbers (the full result is
// in workloads.lock.details).
type LockCounts struct {
	Acked         int   `json:"acked"`         // increments acknowledged
	Indeterminate int   `json:"indeterminate"` // increments with an unknown outcome
	FencedOut     int   `json:"fenced_out"`    // increments refused by check-session
	Final         int64 `json:"final"`         // the counter after healing
	Handovers     int   `json:"handovers"`     // lock indexes seen
	LostSessions  int   `json:"lost_sessions"` // sessions the clients saw end
	Anomalies     int   `json:"anomalies"`     // every kind
}

// NewLockCounts summarizes a lock result.
func NewLockCounts(r *checker.LockResult) *LockCounts {
	c := &LockCounts{Acked: r.Acked, Indeterminate: r.Indefinite, FencedOut: r.FencedOut, Final: r.Final,
		Handovers: r.Handovers, LostSessions: r.LostSessions}
	for _, n := range r.Counts {
		c.Anomalies += n
	}
	return c
}

// Add adds o's counts to c (Final: the sum of the finals).
func (c *LockCounts) Add(o *LockCounts) {
	c.Acked += o.Acked
	c.Indeterminate += o.Indeterminate
	c.FencedOut += o.FencedOut
	c.Final += o.Final
	c.Handovers += o.Handovers
	c.LostSessions += o.LostSessions
	c.Anomalies += o.Anomalies
}

func (s *Summary) write(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadSummary loads a summary.json.
func ReadSummary(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	return &s, json.Unmarshal(b, &s)
}
