package checker

// Anomaly is one violation found in a history.
type Anomaly struct {
	// Kind: lost (an acknowledged add missing), unexpected (an element
	// never attempted, or definitely not added, is present), resurrected
	// (an acknowledged remove undone), stale-read (a read missing an
	// acknowledged add or showing an acknowledged remove), duplicate (an
	// element listed twice in one read), remove-not-found, index-conflict,
	// no-final-read.
	Kind    string `json:"kind"`
	Key     string `json:"key,omitempty"`     // register key or set service
	Element int64  `json:"element,omitempty"` // set element
	Ops     []int  `json:"ops,omitempty"`     // history indexes involved
	Detail  string `json:"detail"`
}

// Window is a period during which a fault was active (ns since the run
// started), from the nemesis timeline.
type Window struct {
	Name   string `json:"name"`
	Detail string `json:"detail,omitempty"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
}

// Removal is a removal of elements the workload did not ask for: `nexus
// leave` on Node deregisters the instances that node owns (design/api.md,
// Stopping), at some point between Invoke and Complete.
type Removal struct {
	Node     string `json:"node"`
	Invoke   int64  `json:"invoke"`
	Complete int64  `json:"complete"`
}
