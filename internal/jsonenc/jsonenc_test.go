package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
)

var rawCases = []struct {
	in    string
	plain bool
}{
	{`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`, true},
	{`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, true},
	{`[]`, true},
	{`{}`, true},
	{`-0.5e+10`, true},
	{`0`, true},
	{`12.25E-3`, true},
	{`"esc \" \\ \/ \b \f \n \r \t \u00e9 \u2028"`, true},
	{``, false}, // empty, not nil: Marshal fails
	{`{"a": 1}`, false},
	{" 1", false},
	{"1 ", false},
	{`"<b>"`, false},
	{`"a&b"`, false},
	{`"é"`, false},
	{"\"\u2028\"", false},
	{`01`, false},
	{`1.`, false},
	{`.5`, false},
	{`1e`, false},
	{`-`, false},
	{`+1`, false},
	{`tru`, false},
	{`nul`, false},
	{`"abc`, false},
	{`"\x"`, false},
	{`"\u12g4"`, false},
	{`"\u12"`, false},
	{"\"a\tb\"", false},
	{`{"a"}`, false},
	{`{"a":}`, false},
	{`{"a":1,}`, false},
	{`[1,]`, false},
	{`[1 2]`, false},
	{`{1:2}`, false},
	{`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`, false},
	{`1}`, false},
	{`"a"b`, false},
}

// TestAppendRawAsMarshal: whatever the input, AppendRaw gives Marshal's
// bytes (or fails where Marshal fails), and Plain takes the fast path
// exactly where the table says.
func TestAppendRawAsMarshal(t *testing.T) {
	for _, c := range rawCases {
		if got := Plain([]byte(c.in)); got != c.plain && c.in != "" {
			t.Errorf("Plain(%q) = %v, want %v", c.in, got, c.plain)
		}
		checkRaw(t, []byte(c.in))
	}
	checkRaw(t, nil) // null
}

func checkRaw(t *testing.T, in []byte) {
	t.Helper()
	want, err := json.Marshal(json.RawMessage(in))
	got, ok := AppendRaw([]byte("prefix"), in)
	if ok != (err == nil) {
		t.Fatalf("AppendRaw(%q): ok %v, Marshal error %v", in, ok, err)
	}
	if !ok {
		if string(got) != "prefix" {
			t.Fatalf("AppendRaw(%q) failed but changed dst: %q", in, got)
		}
		return
	}
	if string(got) != "prefix"+string(want) {
		t.Fatalf("AppendRaw(%q) = %q, Marshal gives %q", in, got[len("prefix"):], want)
	}
	if Plain(in) && !bytes.Equal(want, in) {
		t.Fatalf("Plain(%q) but Marshal gives %q", in, want)
	}
}

func TestAppendStringAsMarshal(t *testing.T) {
	for _, s := range []string{"", "app/k0001", "a b", "quote\"", `back\slash`, "<tag>", "a&b", "tab\t", "é", "\xff\xfe", "\u2028", "del\x7f", "ctl\x01"} {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, Marshal gives %s", s, got, want)
		}
	}
}

func FuzzAppendRaw(f *testing.F) {
	for _, c := range rawCases {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkRaw(t, in) })
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"a", "<", "é", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, Marshal gives %s", s, got, want)
		}
	})
}

func BenchmarkAppendRaw(b *testing.B) {
	v := []byte(`"` + string(bytes.Repeat([]byte("x"), 254)) + `"`)
	buf := make([]byte, 0, 512)
	b.Run("jsonenc", func(b *testing.B) {
		for range b.N {
			buf, _ = AppendRaw(buf[:0], v)
		}
	})
	b.Run("marshal", func(b *testing.B) {
		for range b.N {
			buf, _ = json.Marshal(json.RawMessage(v))
		}
	})
}
