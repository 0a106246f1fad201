package command

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// THE RULE (docs/operations.md): every command type this build decodes is
// a type of the first release, skippable (older replicas skip it), or
// gated. A new type without its line in Gates fails here.
func TestEveryNewTypeIsGated(t *testing.T) {
	first := FirstReleaseTypes()
	gates := Gates()
	for i := 0; i < 256; i++ {
		typ := Type(i)
		if !typ.Known() || slices.Contains(first, typ) || typ&SkippableFlag != 0 {
			continue
		}
		if _, ok := gates[typ]; !ok {
			t.Errorf("command type %d (%s) is newer than the first release and not gated: add it to Gates in features.go", i, typ)
		}
	}
	for typ, f := range gates {
		if !typ.Known() || f == "" {
			t.Errorf("gate %d (%q): not a known type or no feature name", typ, f)
		}
	}
	for _, typ := range first {
		if !typ.Known() {
			t.Errorf("first-release type %d is no longer decoded: old logs could not be replayed", typ)
		}
	}
}

func TestTypeSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Type
		str  string
	}{
		{"", nil, ""},
		{"1", []Type{1}, "1"},
		{"1-3", []Type{1, 2, 3}, "1-3"},
		{"3,1,2", []Type{1, 2, 3}, "1-3"},
		{"0,5-6,129,255", []Type{0, 5, 6, 129, 255}, "0,5-6,129,255"},
		{"7-7", []Type{7}, "7"},
	} {
		s, err := ParseTypeSet(tc.in)
		if err != nil {
			t.Fatalf("%q: %v", tc.in, err)
		}
		var got []Type
		for i := 0; i < 256; i++ {
			if s.Has(Type(i)) {
				got = append(got, Type(i))
			}
		}
		if !slices.Equal(got, tc.want) || s.String() != tc.str {
			t.Errorf("%q: %v %q, want %v %q", tc.in, got, s.String(), tc.want, tc.str)
		}
	}
	for _, bad := range []string{"x", "1-", "-1", "3-1", "256", "1,,2", "1-300", " 1"} {
		if _, err := ParseTypeSet(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestKnownTypes(t *testing.T) {
	k := KnownTypes()
	for _, typ := range FirstReleaseTypes() {
		if !k.Has(typ) {
			t.Errorf("%s missing", typ)
		}
	}
	if k.Has(0) || k.Has(SkippableFlag|77) {
		t.Errorf("unknown types in %s", k)
	}
	back, err := ParseTypeSet(k.String())
	if err != nil || back != k {
		t.Fatalf("round trip of %q: %v", k.String(), err)
	}
	// It travels in gossip metadata (512 bytes with everything else).
	if len(k.String()) > 64 {
		t.Errorf("%q: too long for member metadata", k.String())
	}
}

func TestFeatureError(t *testing.T) {
	err := error(&FeatureError{Feature: "sessions", Type: TypeConfigSet, Missing: []string{"n2 (version 0.1.0)", "n3 (version 0.1.0)"}})
	if !errors.Is(err, ErrFeatureUnavailable) || errors.Is(err, ErrNoLeader) {
		t.Fatal("errors.Is")
	}
	for _, s := range []string{`feature "sessions"`, "config_set", "missing on: n2 (version 0.1.0), n3 (version 0.1.0)"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%q lacks %q", err, s)
		}
	}
}

func TestConfigSetType(t *testing.T) {
	for _, c := range []struct {
		name string
		ops  []ConfigOp
		want Type
	}{
		{"json values", []ConfigOp{{Key: "a", Value: []byte(`1`)}, {Key: "b", Value: []byte(`"x"`)}}, TypeConfigSet},
		{"a raw value", []ConfigOp{{Key: "a", Value: []byte(`1`)}, {Key: "b", Value: []byte("x"), Raw: true}}, TypeConfigSetRaw},
		{"flags", []ConfigOp{{Key: "a", Value: []byte(`1`), Flags: 3}}, TypeConfigSetRaw},
		{"none", nil, TypeConfigSet},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := ConfigSetType(&ConfigSet{Entries: c.ops}); got != c.want {
				t.Fatalf("%v, want %v", got, c.want)
			}
			if c.want == TypeConfigSetRaw && Gates()[c.want] != "kv_raw" {
				t.Fatal("config_set_raw is not gated as kv_raw")
			}
		})
	}
}
