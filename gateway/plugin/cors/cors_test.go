package cors

import (
	"testing"

	"github.com/nexus/nexus/registry"
)

func TestAllowed(t *testing.T) {
	p := New(&registry.CORSPolicy{Origins: []string{"https://app.example", "https://*.corp.example"}}, nil)
	cases := []struct {
		origin string
		want   bool
	}{
		{"https://app.example", true},
		{"HTTPS://APP.EXAMPLE", true},
		{"http://app.example", false},
		{"https://a.corp.example", true},
		{"https://a.b.corp.example", true},
		{"https://corp.example", false},
		{"http://a.corp.example", false},
		{"https://evilcorp.example", false},
		{"", false},
	}
	for _, c := range cases {
		if got := p.Allowed([]byte(c.origin)); got != c.want {
			t.Errorf("Allowed(%q) = %v", c.origin, got)
		}
	}
	if !New(&registry.CORSPolicy{Origins: []string{"*"}}, nil).Allowed([]byte("https://x")) {
		t.Error("* does not allow every origin")
	}
}
