package checker

import (
	"reflect"
	"testing"

	"github.com/nexus/nexus/internal/jepsen/history"
)

func TestCheckSet(t *testing.T) {
	t.Parallel()
	const ok, fail, info = history.OK, history.Fail, history.Info
	leaveN2 := []Removal{{Node: "n2", Invoke: 50, Complete: 60}}
	tests := []struct {
		name        string
		ops         []history.Op
		removals    []Removal
		kinds       map[string]int // anomaly counts; nil = valid
		lost        []int64
		unexpected  []int64
		resurrected []int64
	}{
		{name: "correct", ops: h(sAdd(0, 10, ok, 1, "n1"), sAdd(0, 10, ok, 2, "n1"), sRemove(20, 30, ok, "", 2),
			sRead(40, 50, false, 1), sRead(100, 110, true, 1))},
		{name: "lost element", ops: h(sAdd(0, 10, ok, 1, "n1"), sAdd(0, 10, ok, 2, "n1"), sRead(100, 110, true, 2)),
			kinds: map[string]int{"lost": 1}, lost: []int64{1}},
		{name: "duplicated element", ops: h(sAdd(0, 10, ok, 1, "n1"), sRead(100, 110, true, 1, 1)),
			kinds: map[string]int{"duplicate": 1}},
		{name: "element never attempted", ops: h(sAdd(0, 10, ok, 1, "n1"), sRead(100, 110, true, 1, 7)),
			kinds: map[string]int{"unexpected": 1}, unexpected: []int64{7}},
		{name: "definitely failed add present", ops: h(sAdd(0, 10, fail, 1, "n1"), sRead(100, 110, true, 1)),
			kinds: map[string]int{"unexpected": 1}, unexpected: []int64{1}},
		{name: "info add absent", ops: h(sAdd(0, 10, info, 1, "n1"), sRead(100, 110, true))},
		{name: "info add present", ops: h(sAdd(0, 10, info, 1, "n1"), sRead(100, 110, true, 1))},
		{name: "info remove either way", ops: h(sAdd(0, 10, ok, 1, "n1"), sAdd(0, 10, ok, 2, "n1"),
			sRemove(20, 30, info, "timeout", 1), sRemove(20, 30, info, "outcome_unknown", 2), sRead(100, 110, true, 2))},
		{name: "failed remove must leave it", ops: h(sAdd(0, 10, ok, 1, "n1"), sRemove(20, 30, fail, "no_leader", 1),
			sRead(100, 110, true)), kinds: map[string]int{"lost": 1}, lost: []int64{1}},
		{name: "acknowledged remove undone", ops: h(sAdd(0, 10, ok, 1, "n1"), sRemove(20, 30, ok, "", 1), sRead(100, 110, true, 1)),
			kinds: map[string]int{"resurrected": 1}, resurrected: []int64{1}},
		{name: "stale read during the run", ops: h(sAdd(0, 10, ok, 1, "n1"), sRead(20, 30, false), sRead(100, 110, true, 1)),
			kinds: map[string]int{"stale-read": 1}},
		{name: "read concurrent with the add may miss it", ops: h(sAdd(0, 25, ok, 1, "n1"), sRead(20, 30, false), sRead(100, 110, true, 1))},
		{name: "add seen before it was invoked", ops: h(sRead(0, 10, false, 1), sAdd(20, 30, ok, 1, "n1"), sRead(100, 110, true, 1)),
			kinds: map[string]int{"unexpected": 1}},
		{name: "leave of the owner may deregister", ops: h(sAdd(0, 10, ok, 1, "n2"), sAdd(0, 10, ok, 2, "n1"), sRead(100, 110, true, 2)),
			removals: leaveN2},
		{name: "leave of another node does not", ops: h(sAdd(0, 10, ok, 1, "n1"), sRead(100, 110, true)),
			removals: leaveN2, kinds: map[string]int{"lost": 1}, lost: []int64{1}},
		{name: "add after the leave is not deregistered by it", ops: h(sAdd(70, 80, ok, 1, "n2"), sRead(100, 110, true)),
			removals: leaveN2, kinds: map[string]int{"lost": 1}, lost: []int64{1}},
		{name: "remove answered 404 after an acknowledged add", ops: h(sAdd(0, 10, ok, 1, "n1"), sRemove(20, 30, fail, "not_found", 1),
			sRead(100, 110, true)), kinds: map[string]int{"remove-not-found": 1, "lost": 1}, lost: []int64{1}},
		{name: "no final read", ops: h(sAdd(0, 10, ok, 1, "n1"), sRead(20, 30, false, 1)),
			kinds: map[string]int{"no-final-read": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := CheckSet(tc.ops, tc.removals)
			wantKinds(t, res.Counts, res.Anomalies, res.Valid, tc.kinds)
			for _, c := range []struct {
				name      string
				got, want []int64
			}{{"lost", res.Lost, tc.lost}, {"unexpected", res.Unexpected, tc.unexpected}, {"resurrected", res.Resurrected, tc.resurrected}} {
				if len(c.got) != len(c.want) || (len(c.want) > 0 && !reflect.DeepEqual(c.got, c.want)) {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
		})
	}
}
