package consul

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nexus/nexus/registry"
)

func TestParseWait(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"120000ms", 2 * time.Minute, false},
		{"5m", 5 * time.Minute, false},
		{"10s", 10 * time.Second, false},
		{"30", 30 * time.Second, false},
		{"11m", MaxWait, false},
		{"1h", MaxWait, false},
		{"0s", 0, true},
		{"-1s", 0, true},
		{"soon", 0, true},
		{"", 0, true},
	}
	for _, c := range cases {
		got, e := parseWait(c.in)
		if (e != nil) != c.bad || got != c.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v, bad %v", c.in, got, e, c.want, c.bad)
		}
		if e != nil && e.field != "wait" {
			t.Errorf("parseWait(%q) error names %q", c.in, e.field)
		}
	}
}

func TestCheckIDs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id       string
		n, count int
		want     string
	}{
		{"web-1", 0, 1, "service:web-1"},
		{"web-1", 0, 0, "service:web-1"},
		{"web-1", 0, 2, "service:web-1:1"},
		{"web-1", 1, 2, "service:web-1:2"},
		{"a:b", 0, 1, "service:a:b"},
	}
	for _, c := range cases {
		if got := checkID(c.id, c.n, c.count); got != c.want {
			t.Errorf("checkID(%q, %d, %d) = %q, want %q", c.id, c.n, c.count, got, c.want)
		}
	}
}

func TestIsCompactJSON(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		`{"a":1}`:   true,
		`42`:        true,
		`"s"`:       true,
		`{"a": 1}`:  false, // would not read back byte for byte
		"hello":     false,
		"":          false,
		"\xff\x00":  false,
		`[1,2] `:    false,
		`null`:      true,
		`{"a":1}{}`: false,
	}
	for in, want := range cases {
		if got := isCompactJSON([]byte(in)); got != want {
			t.Errorf("isCompactJSON(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestFieldsOK(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body, field string
	}{
		{`{"Name":"web","Port":1}`, ""},
		{`{"name":"web","port":1,"check":null}`, ""},
		{`{"Name":"web","Connect":null,"Proxy":{},"SocketPath":"","Ports":[],"EnableTagOverride":false}`, ""},
		{`{"Name":"web","Connect":{"Native":true}}`, "Connect"},
		{`{"Name":"web","SocketPath":"/s","Proxy":{"x":1}}`, "Proxy"},
	}
	for _, c := range cases {
		a := fieldsOK("", json.RawMessage(c.body), serviceFields)
		switch {
		case c.field == "" && a != nil:
			t.Errorf("%s: refused: %s", c.body, a.message)
		case c.field != "" && (a == nil || a.field != c.field):
			t.Errorf("%s: got %+v, want a refusal naming %s", c.body, a, c.field)
		}
	}
}

func TestToChecks(t *testing.T) {
	t.Parallel()
	in := registry.Instance{ID: "web-1", Service: "web", Node: "n2", Tags: []string{"v1"}, CreateIndex: 3, ModifyIndex: 9,
		DeregisterCriticalAfter: "1m",
		Checks: []registry.Check{
			{Kind: registry.CheckTTL, TTL: "10s", Status: registry.StatusPassing, Output: "ok"},
			{Kind: registry.CheckHTTP, HTTP: "http://h/x", Interval: "5s", Timeout: "1s", Status: registry.StatusCritical, Name: "probe"},
		}}
	got := toChecks(&in)
	if len(got) != 2 {
		t.Fatalf("%d checks", len(got))
	}
	a, b := got[0], got[1]
	if a.CheckID != "service:web-1:1" || a.Name != "Service 'web' check" || a.Type != "ttl" || a.Interval != "" ||
		a.Status != "passing" || a.Output != "ok" || a.Node != "n2" || a.ServiceID != "web-1" || a.ServiceName != "web" ||
		a.ModifyIndex != 9 || a.Definition.DeregisterCriticalServiceAfter != "1m" {
		t.Errorf("ttl check = %+v", a)
	}
	if b.CheckID != "service:web-1:2" || b.Name != "probe" || b.Type != "http" || b.Interval != "5s" || b.Timeout != "1s" ||
		b.Definition.HTTP != "http://h/x" || b.Status != "critical" {
		t.Errorf("http check = %+v", b)
	}
	if passing(&in) {
		t.Error("an instance with a critical check passes")
	}
}
