package workload

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec    string
		names   []string
		wantErr error
	}{
		{"register", []string{"register"}, nil},
		{"register, set,register", []string{"register", "set"}, nil},
		{"audit", nil, ErrAuditNotBuilt},
		{"bogus", nil, errors.New("")},
		{"", nil, errors.New("")},
	}
	for _, tc := range tests {
		ws, err := Parse(tc.spec)
		if (err != nil) != (tc.wantErr != nil) || (tc.wantErr == ErrAuditNotBuilt && !errors.Is(err, ErrAuditNotBuilt)) {
			t.Fatalf("%q: err %v", tc.spec, err)
		}
		if len(ws) != len(tc.names) {
			t.Fatalf("%q: %d workloads", tc.spec, len(ws))
		}
		for i, w := range ws {
			if w.Name() != tc.names[i] {
				t.Fatalf("%q: %s", tc.spec, w.Name())
			}
		}
	}
}

func TestElementID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want int64
	}{{"e1", 1}, {"e123456", 123456}, {ElementID(77), 77}, {"x1", -1}, {"e", -1}, {"e-3", -1}, {"web-1", -1}}
	for _, tc := range tests {
		if got := ParseElementID(tc.id); got != tc.want {
			t.Errorf("ParseElementID(%q) = %d, want %d", tc.id, got, tc.want)
		}
	}
}
