package checker

import (
	"fmt"
	"sort"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// maxExamples bounds the anomalies listed per kind (all are counted).
const maxExamples = 20

// SetResult is the verdict on a set history.
type SetResult struct {
	Valid        bool           `json:"valid"`
	Attempted    int            `json:"attempted"`    // adds invoked
	Acknowledged int            `json:"acknowledged"` // adds ok
	Removed      int            `json:"removed"`      // removes ok
	Reads        int            `json:"reads"`        // consistent reads that answered
	FinalReads   int            `json:"final_reads"`
	FinalSize    int            `json:"final_size"` // elements in the final reads
	Lost         []int64        `json:"lost"`       // acknowledged, not removed, missing at the end
	Unexpected   []int64        `json:"unexpected"` // present at the end, never (successfully) attempted
	Resurrected  []int64        `json:"resurrected"`
	Counts       map[string]int `json:"anomaly_counts,omitempty"`
	Anomalies    []Anomaly      `json:"anomalies,omitempty"` // up to maxExamples per kind
}

type element struct {
	id     int64
	key    string
	add    *history.Op
	remove *history.Op
	system []Removal // leaves of the owner that may have deregistered it
}

// removalInvokes lists when each removal that may have happened (a remove
// not definitely failed, a leave of the owner) was invoked.
func (e *element) removalInvokes() []int64 {
	var out []int64
	if r := e.remove; r != nil && r.Type != history.Fail {
		out = append(out, r.Invoke)
	}
	for _, s := range e.system {
		out = append(out, s.Invoke)
	}
	return out
}

// CheckSet checks the set ops of a history. removals are the leaves of the
// membership nemesis, which deregister the instances their node owns (an
// instance is owned by the node its registration was sent to).
func CheckSet(ops []history.Op, removals []Removal) *SetResult {
	ops = history.Filter(ops, "set")
	res := &SetResult{Counts: map[string]int{}, Lost: []int64{}, Unexpected: []int64{}, Resurrected: []int64{}}
	elems := map[int64]*element{}
	var reads []*history.Op
	for i := range ops {
		op := &ops[i]
		switch op.F {
		case history.FAdd:
			if e, dup := elems[op.Value]; dup && e.add != nil {
				res.add(Anomaly{Kind: "harness", Element: op.Value, Ops: []int{e.add.Index, op.Index}, Detail: "element added twice"})
				continue
			}
			e := &element{id: op.Value, key: op.Key, add: op}
			for _, r := range removals {
				if r.Node == op.Node && op.Invoke < r.Complete {
					e.system = append(e.system, r)
				}
			}
			elems[op.Value] = e
			res.Attempted++
			if op.Type == history.OK {
				res.Acknowledged++
			}
		case history.FSetRead:
			if op.Type == history.OK {
				reads = append(reads, op)
			}
		}
	}
	for i := range ops {
		op := &ops[i]
		if op.F != history.FRemove {
			continue
		}
		e := elems[op.Value]
		if e == nil || e.add == nil {
			res.add(Anomaly{Kind: "harness", Element: op.Value, Ops: []int{op.Index}, Detail: "remove of an element never added"})
			continue
		}
		e.remove = op
		if op.Type == history.OK {
			res.Removed++
		}
		if op.Type == history.Fail && op.Code == "not_found" && e.add.Type == history.OK && !e.maySystemRemoveBefore(op.Complete) {
			res.add(Anomaly{Kind: "remove-not-found", Key: e.key, Element: e.id, Ops: []int{e.add.Index, op.Index},
				Detail: fmt.Sprintf("add acknowledged at %s, then remove answered 404", ms(e.add.Complete))})
		}
	}
	byKey := map[string][]*element{}
	for _, e := range elems {
		byKey[e.key] = append(byKey[e.key], e)
	}
	finalKeys := map[string]bool{}
	for _, r := range reads {
		res.Reads++
		if r.Final {
			res.FinalReads++
			res.FinalSize += len(r.Elements)
			finalKeys[r.Key] = true
		}
		res.checkRead(r, byKey[r.Key], elems)
	}
	for key, es := range byKey {
		if !finalKeys[key] {
			res.add(Anomaly{Kind: "no-final-read", Key: key, Detail: fmt.Sprintf("no final read of %s (%d elements attempted)", key, len(es))})
		}
	}
	sortIDs(res.Lost)
	sortIDs(res.Unexpected)
	sortIDs(res.Resurrected)
	res.Valid = len(res.Counts) == 0
	return res
}

func (e *element) maySystemRemoveBefore(t int64) bool {
	for _, s := range e.system {
		if s.Invoke < t {
			return true
		}
	}
	return false
}

// checkRead checks one acknowledged read of key against every element of
// that key, and the read's own elements.
func (res *SetResult) checkRead(r *history.Op, es []*element, all map[int64]*element) {
	seen := make(map[int64]int, len(r.Elements))
	for _, id := range r.Elements {
		seen[id]++
		if seen[id] == 2 {
			res.add(Anomaly{Kind: "duplicate", Key: r.Key, Element: id, Ops: []int{r.Index},
				Detail: fmt.Sprintf("element listed more than once in one read at %s", ms(r.Complete))})
		}
		if e := all[id]; e == nil || e.key != r.Key {
			if r.Final {
				res.Unexpected = append(res.Unexpected, id)
			}
			res.add(Anomaly{Kind: "unexpected", Key: r.Key, Element: id, Ops: []int{r.Index},
				Detail: "present but never added to this service"})
		}
	}
	for _, e := range es {
		present := seen[e.id] > 0
		switch {
		case !present && e.mustBePresent(r):
			kind := "stale-read"
			if r.Final {
				kind = "lost"
				res.Lost = append(res.Lost, e.id)
			}
			res.add(Anomaly{Kind: kind, Key: e.key, Element: e.id, Ops: []int{e.add.Index, r.Index},
				Detail: fmt.Sprintf("add acknowledged at %s, missing from the read invoked at %s", ms(e.add.Complete), ms(r.Invoke))})
		case present && (e.add.Invoke > r.Complete || e.add.Type == history.Fail):
			if r.Final {
				res.Unexpected = append(res.Unexpected, e.id)
			}
			res.add(Anomaly{Kind: "unexpected", Key: e.key, Element: e.id, Ops: []int{e.add.Index, r.Index},
				Detail: fmt.Sprintf("present in a read completed at %s; add %s invoked at %s", ms(r.Complete), e.add.Type, ms(e.add.Invoke))})
		case present && e.remove != nil && e.remove.Type == history.OK && e.remove.Complete < r.Invoke:
			kind := "stale-read"
			if r.Final {
				kind = "resurrected"
				res.Resurrected = append(res.Resurrected, e.id)
			}
			res.add(Anomaly{Kind: kind, Key: e.key, Element: e.id, Ops: []int{e.remove.Index, r.Index},
				Detail: fmt.Sprintf("remove acknowledged at %s, still present in the read invoked at %s", ms(e.remove.Complete), ms(r.Invoke))})
		}
	}
}

// mustBePresent: the add was acknowledged before r was invoked and no removal
// (acknowledged or not) was invoked before r completed.
func (e *element) mustBePresent(r *history.Op) bool {
	if e.add.Type != history.OK || e.add.Complete >= r.Invoke {
		return false
	}
	for _, t := range e.removalInvokes() {
		if t < r.Complete {
			return false
		}
	}
	return true
}

func (res *SetResult) add(a Anomaly) {
	res.Counts[a.Kind]++
	if res.Counts[a.Kind] <= maxExamples {
		res.Anomalies = append(res.Anomalies, a)
	}
}

func sortIDs(ids []int64) { sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] }) }

// ms formats a run-relative time in ns as seconds with microsecond precision.
func ms(ns int64) string { return fmt.Sprintf("%.6fs", float64(ns)/1e9) }
