// Package checker decides whether a nexus-jepsen history is valid: the
// register workload with porcupine (linearizability), the set workload with
// a set-full style check, the audit workload against the archive's rows,
// the lock workload's counter and fencing, plus counts and availability.
package checker

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Linearizability verdicts.
const (
	LinOK      = "ok"      // linearizable
	LinIllegal = "illegal" // not linearizable: an anomaly
	LinUnknown = "unknown" // the checker timed out
)

// regInput is a register operation's input (one key per porcupine partition).
type regInput struct {
	F     string // read, write, cas
	Key   string
	Value int64 // write/cas: the value written (unique per write, > 0)
	// CAS: the value the key held at the expected modify_index (0 = absent),
	// resolved from the history's observations; ExpectKnown is false when no
	// acknowledged operation revealed which write had that index.
	Expect      int64
	ExpectIndex uint64
	ExpectKnown bool
}

// regOutput is a register operation's output.
type regOutput struct {
	Known bool  // false: info (unknown outcome, never returned)
	OK    bool  // cas: applied (false: 409 cas_conflict)
	Value int64 // read: the value, 0 = absent
}

// registerModel is a per-key register whose CAS compares modify_index. Values
// are unique per write, so "modify_index == N" is "the value is the one
// written at N", which the history reveals (see resolveExpect).
func registerModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range h {
				k := op.Input.(regInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return int64(0) },
		Step: func(state, input, output any) (bool, any) {
			s, in, out := state.(int64), input.(regInput), output.(regOutput)
			switch in.F {
			case history.FRead:
				return out.Value == s, s
			case history.FWrite:
				return true, in.Value
			case history.FCAS:
				matches := !in.ExpectKnown || s == in.Expect
				switch {
				case !out.Known:
					// Linearized here it either applied (if it matched) or
					// was refused; "never applied" is the linearization
					// after every other operation.
					if matches {
						return true, in.Value
					}
					return true, s
				case out.OK:
					return matches, in.Value
				default:
					return !in.ExpectKnown || s != in.Expect, s
				}
			}
			return false, s
		},
		Equal: func(a, b any) bool { return a.(int64) == b.(int64) },
		Hash:  func(s any) uint64 { return uint64(s.(int64)) },
		DescribeOperation: func(input, output any) string {
			in, out := input.(regInput), output.(regOutput)
			res := "?"
			switch in.F {
			case history.FRead:
				return in.Key + ": read() → " + describeValue(out.Value)
			case history.FWrite:
				if out.Known {
					res = "ok"
				}
				return fmt.Sprintf("%s: write(%d) → %s", in.Key, in.Value, res)
			default:
				if out.Known {
					res = map[bool]string{true: "ok", false: "conflict"}[out.OK]
				}
				exp := "?"
				if in.ExpectKnown {
					exp = describeValue(in.Expect)
				}
				return fmt.Sprintf("%s: cas(idx %d = %s → %d) → %s", in.Key, in.ExpectIndex, exp, in.Value, res)
			}
		},
		DescribeState: func(s any) string { return describeValue(s.(int64)) },
		DescribeOperationMetadata: func(info any) string {
			if s, ok := info.(string); ok {
				return s
			}
			return ""
		},
	}
}

func describeValue(v int64) string {
	if v == 0 {
		return "absent"
	}
	return strconv.FormatInt(v, 10)
}

// RegisterResult is the verdict on a register history.
type RegisterResult struct {
	Linearizable string    `json:"linearizable"` // ok, illegal, unknown
	Keys         int       `json:"keys"`
	Ops          int       `json:"ops"`  // operations given to porcupine
	Info         int       `json:"info"` // of which with unknown outcome
	IllegalKeys  []string  `json:"illegal_keys,omitempty"`
	Anomalies    []Anomaly `json:"anomalies,omitempty"`
	CheckTime    string    `json:"check_time"`

	model porcupine.Model
	info  porcupine.LinearizationInfo
}

// Valid reports whether the register history is linearizable with no other
// anomaly.
func (r *RegisterResult) Valid() bool { return r.Linearizable == LinOK && len(r.Anomalies) == 0 }

// CheckRegister checks the register ops of a history (other workloads' ops
// are ignored). timeout bounds porcupine (0: none).
func CheckRegister(ops []history.Op, timeout time.Duration) *RegisterResult {
	ops = history.Filter(ops, "register")
	res := &RegisterResult{model: registerModel()}
	obs, anomalies := observe(ops)
	res.Anomalies = anomalies
	pops := toPorcupine(ops, obs)
	res.Ops = len(pops)
	keys := map[string]bool{}
	for _, p := range pops {
		keys[p.Input.(regInput).Key] = true
		if !p.Output.(regOutput).Known {
			res.Info++
		}
	}
	res.Keys = len(keys)
	start := time.Now()
	verdict, info := porcupine.CheckOperationsVerbose(res.model, pops, timeout)
	res.CheckTime = time.Since(start).Round(time.Millisecond).String()
	res.info = info
	switch verdict {
	case porcupine.Ok:
		res.Linearizable = LinOK
	case porcupine.Illegal:
		res.Linearizable = LinIllegal
		res.IllegalKeys = illegalKeys(res.model, pops, timeout)
	default:
		res.Linearizable = LinUnknown
	}
	return res
}

// illegalKeys re-checks each key alone to name the ones that fail.
func illegalKeys(m porcupine.Model, pops []porcupine.Operation, timeout time.Duration) []string {
	var out []string
	for _, part := range m.Partition(pops) {
		if porcupine.CheckOperationsTimeout(m, part, timeout) == porcupine.Illegal {
			out = append(out, part[0].Input.(regInput).Key)
		}
	}
	return out
}

// observations maps, per key, each modify_index seen in an acknowledged
// answer to the value written at it.
type observations map[string]map[uint64]int64

// observe collects index→value pairs from acknowledged reads and writes and
// reports contradictions (one index with two values, one value at two
// indexes): with unique values either is an anomaly in itself.
func observe(ops []history.Op) (observations, []Anomaly) {
	obs := observations{}
	valueAt := map[string]map[int64]uint64{}
	var anomalies []Anomaly
	note := func(op *history.Op, idx uint64, v int64) {
		if idx == 0 {
			return
		}
		if obs[op.Key] == nil {
			obs[op.Key], valueAt[op.Key] = map[uint64]int64{}, map[int64]uint64{}
		}
		if old, ok := obs[op.Key][idx]; ok && old != v {
			anomalies = append(anomalies, Anomaly{Kind: "index-conflict", Key: op.Key, Ops: []int{op.Index},
				Detail: fmt.Sprintf("modify_index %d seen with values %d and %d", idx, old, v)})
		}
		if old, ok := valueAt[op.Key][v]; ok && old != idx {
			anomalies = append(anomalies, Anomaly{Kind: "index-conflict", Key: op.Key, Ops: []int{op.Index},
				Detail: fmt.Sprintf("value %d seen at modify_index %d and %d", v, old, idx)})
		}
		obs[op.Key][idx], valueAt[op.Key][v] = v, idx
	}
	for i := range ops {
		op := &ops[i]
		if op.Type != history.OK {
			continue
		}
		switch op.F {
		case history.FRead:
			if op.Present {
				note(op, op.ModIndex, op.Read)
			}
		case history.FWrite, history.FCAS:
			if op.Error != "" {
				anomalies = append(anomalies, Anomaly{Kind: "bad-ack", Key: op.Key, Ops: []int{op.Index}, Detail: op.Error})
				continue
			}
			note(op, op.ModIndex, op.Value)
		}
	}
	return obs, anomalies
}

// toPorcupine converts register ops: acknowledged reads, writes and CAS (a
// 409 is a CAS that answered "conflict"), and info writes/CAS that never
// return. Failed ops and failed reads had no effect and are left out.
func toPorcupine(ops []history.Op, obs observations) []porcupine.Operation {
	var end int64
	for i := range ops {
		end = max(end, ops[i].Complete)
	}
	never := end + 1 // after every return: "never returned"
	var out []porcupine.Operation
	for i := range ops {
		op := &ops[i]
		in := regInput{F: op.F, Key: op.Key, Value: op.Value}
		var o regOutput
		ret := op.Complete
		switch {
		case op.Type == history.OK:
			o = regOutput{Known: true, OK: true}
			if op.F == history.FRead {
				o.Value = 0
				if op.Present {
					o.Value = op.Read
				}
			}
		case op.Type == history.Fail && op.F == history.FCAS && op.Code == "cas_conflict":
			o = regOutput{Known: true, OK: false}
		case op.Type == history.Info && op.F != history.FRead:
			o, ret = regOutput{Known: false}, never
		default:
			continue
		}
		if op.F == history.FCAS {
			in.Expect, in.ExpectKnown = resolveExpect(obs, op)
			if op.Expect != nil {
				in.ExpectIndex = *op.Expect
			}
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Process, Input: in, Output: o, Call: op.Invoke, Return: ret,
			Metadata: fmt.Sprintf("#%d on %s, %s %s", op.Index, op.Node, op.Type, op.Code),
		})
	}
	return out
}

// resolveExpect turns a CAS's expected modify_index into the value written
// at it (0 = absent for cas 0).
func resolveExpect(obs observations, op *history.Op) (int64, bool) {
	if op.Expect == nil || *op.Expect == 0 {
		return 0, true
	}
	v, ok := obs[op.Key][*op.Expect]
	return v, ok
}

// WriteHTML writes porcupine's visualization of the checked history, with
// the nemesis windows as annotations.
func (r *RegisterResult) WriteHTML(path string, windows []Window) error {
	info := r.info
	var ann []porcupine.Annotation
	for _, w := range windows {
		ann = append(ann, porcupine.Annotation{Tag: "nemesis", Start: w.Start, End: w.End,
			Description: w.Name, Details: w.Detail, BackgroundColor: "#ffd6d6"})
	}
	info.AddAnnotations(ann)
	return porcupine.VisualizePath(r.model, info, path)
}
