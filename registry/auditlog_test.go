package registry

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func rec(i uint64, pos uint32) AuditRecord {
	return AuditRecord{Index: i, Position: pos, Action: "set", Resource: "k"}
}

func keysOf(l *auditLog) []AuditKey {
	var out []AuditKey
	l.each(0, func(r *AuditRecord) bool { out = append(out, r.Key()); return true })
	return out
}

// The log against a model (a sorted slice), under random pushes, pops,
// replacements and out-of-order puts; every version taken along the way
// must still read as it did when taken (readers of older versions), and
// an abandoned version (an aborted write) must not disturb the next.
func TestAuditLogVersions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var l auditLog
	var model []AuditKey
	type version struct {
		l    auditLog
		want []AuditKey
	}
	var versions []version
	next := uint64(1)
	for step := 0; step < 20000; step++ {
		switch op := rng.IntN(100); {
		case op < 55:
			l.put(rec(next, 0))
			model = append(model, AuditKey{Index: next})
			next++
		case op < 90 && len(model) > 0:
			if got := l.pop().Key(); got != model[0] {
				t.Fatalf("step %d: pop %v, want %v", step, got, model[0])
			}
			model = model[1:]
		case op < 93 && len(model) > 0:
			// A key already present is replaced, not added.
			k := model[rng.IntN(len(model))]
			if old := l.put(AuditRecord{Index: k.Index, Position: k.Position, Action: "again"}); old == nil || old.Key() != k {
				t.Fatalf("step %d: replacing %v returned %v", step, k, old)
			}
		case op < 95 && len(model) > 0 && model[0].Index > 1:
			// A key below the first: a sorted insert.
			k := AuditKey{Index: model[0].Index - 1, Position: 7}
			l.put(AuditRecord{Index: k.Index, Position: k.Position})
			model = append([]AuditKey{k}, model...)
		case op < 97:
			// An aborted write: filled positions nobody may see.
			scratch := l
			for range rng.IntN(3 * auditChunk) {
				scratch.push(rec(next+1000000, 1))
			}
		default:
			versions = append(versions, version{l: l, want: append([]AuditKey(nil), model...)})
		}
		if l.Len() != len(model) {
			t.Fatalf("step %d: %d records, model %d", step, l.Len(), len(model))
		}
	}
	if got := keysOf(&l); !reflect.DeepEqual(got, model) {
		t.Fatalf("final log differs from the model (%d vs %d records)", len(got), len(model))
	}
	for i, v := range versions {
		if got := keysOf(&v.l); !reflect.DeepEqual(got, v.want) {
			t.Fatalf("version %d changed after it was taken (%d vs %d records)", i, len(got), len(v.want))
		}
	}
	if len(versions) < 50 {
		t.Fatalf("only %d versions checked", len(versions))
	}
}

func TestAuditLogSearch(t *testing.T) {
	var l auditLog
	for i := uint64(1); i <= 3*auditChunk; i++ {
		l.push(rec(2*i, 0)) // even indexes only
	}
	for _, l := range []auditLog{l, func() auditLog { c := l; c.pop(); c.pop(); return c }()} {
		tests := []struct {
			k    AuditKey
			want uint64 // index of the record found; 0 = end
		}{
			{AuditKey{}, l.at(0).Index},
			{AuditKey{Index: 2 * auditChunk}, 2 * auditChunk},
			{AuditKey{Index: 2*auditChunk + 1}, 2*auditChunk + 2},
			{AuditKey{Index: 2 * auditChunk, Position: 1}, 2*auditChunk + 2},
			{AuditKey{Index: 6 * auditChunk}, 6 * auditChunk},
			{AuditKey{Index: 6*auditChunk + 1}, 0},
		}
		for _, tc := range tests {
			i := l.search(tc.k)
			got := uint64(0)
			if i < l.Len() {
				got = l.at(i).Index
			}
			if got != tc.want {
				t.Errorf("search(%v) = record %d, want %d", tc.k, got, tc.want)
			}
		}
	}
}
