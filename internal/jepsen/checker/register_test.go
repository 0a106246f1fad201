package checker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/history"
)

func TestCheckRegister(t *testing.T) {
	t.Parallel()
	const ok, fail, info = history.OK, history.Fail, history.Info
	tests := []struct {
		name      string
		ops       []history.Op
		want      string // linearizability verdict
		anomalies int
	}{
		{"empty", h(), LinOK, 0},
		{"write then read", h(rWrite(0, 10, ok, 1, 5), rRead(20, 30, 1, 5)), LinOK, 0},
		{"read of the initial absent key", h(rRead(0, 10, 0, 0), rWrite(20, 30, ok, 1, 5)), LinOK, 0},
		{"stale read: an older value after a newer write was acknowledged",
			h(rWrite(0, 10, ok, 1, 5), rWrite(20, 30, ok, 2, 6), rRead(40, 50, 1, 5)), LinIllegal, 0},
		{"lost write: absent after an acknowledged write",
			h(rWrite(0, 10, ok, 1, 5), rRead(20, 30, 0, 0)), LinIllegal, 0},
		{"lost write: the older value after the newer write was read",
			h(rWrite(0, 10, ok, 1, 5), rWrite(20, 30, ok, 2, 6), rRead(40, 50, 2, 6), rRead(60, 70, 1, 5)), LinIllegal, 0},
		{"read concurrent with a write may see either",
			h(rWrite(0, 100, ok, 1, 5), rRead(10, 20, 0, 0), rRead(30, 40, 1, 5)), LinOK, 0},
		{"non-monotonic concurrent reads are not linearizable",
			h(rWrite(0, 100, ok, 1, 5), rRead(10, 20, 1, 5), rRead(30, 40, 0, 0)), LinIllegal, 0},
		{"info write may have applied", h(rWrite(0, 10, info, 1, 0), rRead(20, 30, 1, 5)), LinOK, 0},
		{"info write may not have applied", h(rWrite(0, 10, info, 1, 0), rRead(20, 30, 0, 0)), LinOK, 0},
		{"info write applied late, after other ops",
			h(rWrite(0, 10, info, 1, 0), rWrite(20, 30, ok, 2, 6), rRead(40, 50, 2, 6), rRead(60, 70, 1, 7)), LinOK, 0},
		{"failed write became visible",
			h(rWrite(0, 10, fail, 1, 0), rRead(20, 30, 1, 5)), LinIllegal, 0},
		{"cas ok after read",
			h(rWrite(0, 10, ok, 1, 5), rCAS(20, 30, ok, "", 5, 2, 6), rRead(40, 50, 2, 6)), LinOK, 0},
		{"cas 0 creates",
			h(rCAS(0, 10, ok, "", 0, 1, 5), rCAS(20, 30, fail, "cas_conflict", 0, 2, 0), rRead(40, 50, 1, 5)), LinOK, 0},
		{"cas conflict although the index matched",
			h(rWrite(0, 10, ok, 1, 5), rCAS(20, 30, fail, "cas_conflict", 5, 2, 0)), LinIllegal, 0},
		{"cas ok although the index had moved on",
			h(rWrite(0, 10, ok, 1, 5), rWrite(20, 30, ok, 3, 7), rCAS(40, 50, ok, "", 5, 2, 8)), LinIllegal, 0},
		{"cas ok but its value lost",
			h(rWrite(0, 10, ok, 1, 5), rCAS(20, 30, ok, "", 5, 2, 6), rRead(40, 50, 1, 5)), LinIllegal, 0},
		{"info cas either way",
			h(rWrite(0, 10, ok, 1, 5), rCAS(20, 30, info, "", 5, 2, 0), rRead(40, 50, 1, 5), rRead(60, 70, 2, 6)), LinOK, 0},
		{"failed cas (503) ignored",
			h(rWrite(0, 10, ok, 1, 5), rCAS(20, 30, fail, "no_leader", 5, 2, 0), rRead(40, 50, 1, 5)), LinOK, 0},
		{"one index with two values",
			h(rWrite(0, 10, ok, 1, 5), rRead(20, 30, 1, 5), rWrite(40, 50, ok, 2, 5), rRead(60, 70, 2, 5)), LinOK, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := CheckRegister(tc.ops, 10*time.Second)
			if res.Linearizable != tc.want || len(res.Anomalies) != tc.anomalies {
				t.Fatalf("got %s with anomalies %+v; want %s with %d", res.Linearizable, res.Anomalies, tc.want, tc.anomalies)
			}
			if res.Valid() != (tc.want == LinOK && tc.anomalies == 0) {
				t.Fatalf("Valid() = %v", res.Valid())
			}
			if tc.want == LinIllegal && len(res.IllegalKeys) != 1 {
				t.Fatalf("illegal keys %v, want [k]", res.IllegalKeys)
			}
		})
	}
}

func TestCheckRegister_partitionsByKeyAndIgnoresSet(t *testing.T) {
	t.Parallel()
	a := rWrite(0, 10, history.OK, 1, 5)
	b := rRead(20, 30, 0, 0) // key b is fine: never written
	b.Key = "b"
	c := rRead(20, 30, 0, 0) // key a lost its write
	ops := h(a, b, c, sAdd(0, 5, history.OK, 1, "n1"))
	res := CheckRegister(ops, 10*time.Second)
	if res.Linearizable != LinIllegal || res.Keys != 2 || res.Ops != 3 || strings.Join(res.IllegalKeys, ",") != "k" {
		t.Fatalf("got %+v", res)
	}
}

func TestRegisterResult_WriteHTML(t *testing.T) {
	t.Parallel()
	res := CheckRegister(h(rWrite(0, 10, history.OK, 1, 5), rRead(20, 30, 0, 0)), 10*time.Second)
	path := filepath.Join(t.TempDir(), "register.html")
	if err := res.WriteHTML(path, []Window{{Name: "kill n1", Start: 5, End: 25}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "<html") {
		t.Fatalf("visualization: %v, %d bytes", err, len(b))
	}
}
