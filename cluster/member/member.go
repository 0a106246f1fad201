// Package member names the statuses of cluster members. The cluster
// observes them (gossip, suspicion); the health duties, the admin API's
// views and the autopilot act on them. A leaf package, so that those
// consumers agree on the words without importing the cluster.
package member

// Status is a member's status as one node sees it. Gossip knows alive,
// failed and left; suspect is an alive member this node had no direct ack
// from lately (cluster/suspect.go): not a failure.
type Status string

// The statuses.
const (
	Alive   Status = "alive"
	Suspect Status = "suspect"
	Failed  Status = "failed"
	Left    Status = "left"
)

// Live reports whether gossip holds the member alive (a suspect member
// included): it may still answer.
func (s Status) Live() bool { return s == Alive || s == Suspect }
