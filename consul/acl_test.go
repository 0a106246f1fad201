package consul_test

import (
	"encoding/json"
	"testing"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/nexus/nexus/api"
)

// TestACL: tokens come from X-Consul-Token, Authorization: Bearer or
// ?token=, and Nexus ACLs decide.
func TestACL(t *testing.T) {
	h := newHarness(t, func(o *harnessOpts) { o.acl = api.ACLOptions{Enabled: true} })
	root := h.bootstrap()
	secret := h.token(root, `{"name":"app-read","rules":[{"resource":"config","prefix":"app/","access":"read"},`+
		`{"resource":"service","prefix":"web","access":"write"}]}`)

	for _, p := range []string{"app/a", "app/b", "secret/x"} {
		if code, _, body := h.raw("PUT", "/v1/kv/"+p, "v", "X-Consul-Token", root); code != 200 || body != "true" {
			t.Fatalf("put %s as root: %d %s", p, code, body)
		}
	}
	// The write is audited with the caller's identity.
	code, _, body := h.raw("GET", "/audit?resource_type=config&resource=app/a", "", "X-Nexus-Token", root)
	var recs []struct {
		Actor  string `json:"actor"`
		Action string `json:"action"`
	}
	if err := json.Unmarshal([]byte(body), &recs); code != 200 || err != nil || len(recs) != 1 || recs[0].Action != "set" ||
		recs[0].Actor == "" || recs[0].Actor == "anonymous" {
		t.Fatalf("audit of a Consul KV write: %d %s", code, body)
	}
	cases := []struct {
		name, method, path string
		hdr                []string
		status             int
	}{
		{"anonymous read", "GET", "/v1/kv/app/a", nil, 401},
		{"anonymous list", "GET", "/v1/catalog/services", nil, 401},
		{"leader is open", "GET", "/v1/status/leader", nil, 200},
		{"unknown token", "GET", "/v1/kv/app/a", []string{"X-Consul-Token", "nope"}, 401},
		{"token in X-Consul-Token", "GET", "/v1/kv/app/a", []string{"X-Consul-Token", secret}, 200},
		{"token in Authorization", "GET", "/v1/kv/app/a", []string{"Authorization", "Bearer " + secret}, 200},
		{"token in the query", "GET", "/v1/kv/app/a?token=" + secret, nil, 200},
		{"read outside the policy", "GET", "/v1/kv/secret/x", []string{"X-Consul-Token", secret}, 403},
		{"write without the right", "PUT", "/v1/kv/app/a", []string{"X-Consul-Token", secret}, 403},
		{"delete tree without the right", "DELETE", "/v1/kv/?recurse", []string{"X-Consul-Token", secret}, 403},
		{"agent self needs cluster read", "GET", "/v1/agent/self", []string{"X-Consul-Token", secret}, 403},
		{"register outside the policy", "PUT", "/v1/agent/service/register", []string{"X-Consul-Token", secret}, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := ""
			if c.name == "register outside the policy" {
				body = `{"Name":"db","Port":5432}`
			}
			code, hdr, got := h.raw(c.method, c.path, body, c.hdr...)
			if code != c.status {
				t.Errorf("status %d, want %d: %s", code, c.status, got)
			}
			wantHeaders(t, hdr, true)
		})
	}

	// A list shows only what the token may read.
	list, _, err := h.client.KV().List("", &consulapi.QueryOptions{Token: secret})
	if err != nil || len(list) != 2 || list[0].Key != "app/a" || list[1].Key != "app/b" {
		t.Fatalf("filtered list = %+v, %v", list, err)
	}
	// A service the token may write, registered through the client.
	if err := h.client.Agent().ServiceRegisterOpts(&consulapi.AgentServiceRegistration{Name: "web", Port: 80},
		consulapi.ServiceRegisterOpts{Token: secret}); err != nil {
		t.Fatal(err)
	}
}
