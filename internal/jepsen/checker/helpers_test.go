package checker

import (
	"reflect"
	"testing"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// wantKinds fails t unless counts are the anomaly counts want and valid
// says whether there are none (want nil: a valid history).
func wantKinds(t *testing.T, counts map[string]int, anomalies []Anomaly, valid bool, want map[string]int) {
	t.Helper()
	w := want
	if w == nil {
		w = map[string]int{}
	}
	if !reflect.DeepEqual(counts, w) {
		t.Fatalf("anomalies %v (%+v), want %v", counts, anomalies, w)
	}
	if valid != (want == nil) {
		t.Fatalf("Valid = %v", valid)
	}
}

// h builds a history from ops, numbering them.
func h(ops ...history.Op) []history.Op {
	for i := range ops {
		ops[i].Index = i
		ops[i].Process = i
	}
	return ops
}

func u64(v uint64) *uint64 { return &v }

// Register ops on key "k". Times are in ns.
func rRead(inv, cmp int64, value int64, idx uint64) history.Op {
	return history.Op{Workload: "register", F: history.FRead, Key: "k", Type: history.OK, Invoke: inv, Complete: cmp,
		Present: value != 0, Read: value, ModIndex: idx}
}

func rWrite(inv, cmp int64, t history.Type, value int64, idx uint64) history.Op {
	return history.Op{Workload: "register", F: history.FWrite, Key: "k", Type: t, Invoke: inv, Complete: cmp,
		Value: value, ModIndex: idx}
}

func rCAS(inv, cmp int64, t history.Type, code string, expect uint64, value int64, idx uint64) history.Op {
	return history.Op{Workload: "register", F: history.FCAS, Key: "k", Type: t, Code: code, Invoke: inv, Complete: cmp,
		Value: value, Expect: u64(expect), ModIndex: idx}
}

// Set ops on service "s".
func sAdd(inv, cmp int64, t history.Type, e int64, node string) history.Op {
	return history.Op{Workload: "set", F: history.FAdd, Key: "s", Type: t, Invoke: inv, Complete: cmp, Value: e, Node: node}
}

func sRemove(inv, cmp int64, t history.Type, code string, e int64) history.Op {
	return history.Op{Workload: "set", F: history.FRemove, Key: "s", Type: t, Code: code, Invoke: inv, Complete: cmp, Value: e}
}

func sRead(inv, cmp int64, final bool, elems ...int64) history.Op {
	return history.Op{Workload: "set", F: history.FSetRead, Key: "s", Type: history.OK, Invoke: inv, Complete: cmp,
		Elements: elems, Final: final}
}
