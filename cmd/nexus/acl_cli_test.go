package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nexus/nexus/agent/agenttest"
	"github.com/nexus/nexus/cmd/nexus/cli"
)

// TestACLCLIAgainstRealAPI runs every `nexus acl` subcommand against a
// real one-node agent with ACLs on, so the CLI and the server agree on
// every answer's shape, in table and JSON output.
func TestACLCLIAgainstRealAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	a := agenttest.Start(t, agenttest.Node{Name: "n1", Ports: agenttest.NewPorts(t).Node(), Expect: 1,
		Args: []string{"--acl-enabled", "--acl-jwt-secret", strings.Repeat("k", 32)}})
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not become ready")
	}
	env := map[string]string{"NEXUS_HTTP_ADDR": a.AdminAddr().String()}
	run := func(want int, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		rc := cli.Run(args, strings.NewReader(""), &out, &errb, func(k string) string { return env[k] })
		if rc != want {
			t.Fatalf("nexus %s: exit %d, want %d\nstdout %s\nstderr %s", strings.Join(args, " "), rc, want, out.String(), errb.String())
		}
		return out.String()
	}
	var boot struct {
		SecretID string `json:"secret_id"`
	}
	if err := json.Unmarshal([]byte(run(0, "acl", "bootstrap", "--format", "json")), &boot); err != nil || boot.SecretID == "" {
		t.Fatalf("bootstrap: %v", err)
	}
	run(1, "acl", "bootstrap")
	run(1, "acl", "policy", "list")
	env["NEXUS_TOKEN"] = boot.SecretID
	run(0, "acl", "policy", "create", "--name", "web", "--rule", "service:web:write", "--rule", "config:web/:write")
	run(0, "acl", "policy", "update", "web", "--description", "web team")
	run(0, "acl", "role", "create", "--name", "dev", "--policy", "web")
	var tok struct {
		AccessorID string `json:"accessor_id"`
		SecretID   string `json:"secret_id"`
	}
	for _, format := range []string{"table", "json"} {
		out := run(0, "acl", "token", "create", "--role", "dev", "--expires-in", "1h", "--format", format)
		if format == "json" {
			if err := json.Unmarshal([]byte(out), &tok); err != nil {
				t.Fatal(err)
			}
		}
		for _, args := range [][]string{
			{"acl", "policy", "list"}, {"acl", "policy", "get", "web"}, {"acl", "role", "list"}, {"acl", "role", "get", "dev"},
			{"acl", "token", "list"}, {"acl", "token", "self"},
		} {
			run(0, append(args, "--format", format)...)
		}
	}
	run(0, "acl", "token", "get", tok.AccessorID)
	run(0, "acl", "token", "update", tok.AccessorID, "--description", "ci")
	env["NEXUS_TOKEN"] = tok.SecretID
	run(0, "acl", "token", "self")
	run(0, "acl", "login")
	run(0, "config", "set", "web/a", "1")
	run(1, "config", "set", "db/a", "1")
	env["NEXUS_TOKEN"] = boot.SecretID
	run(0, "acl", "token", "delete", tok.AccessorID)
	run(1, "acl", "role", "delete", "missing")
	// Still held by the token created in table mode: refused, 409.
	run(1, "acl", "role", "delete", "dev")
	run(1, "acl", "policy", "delete", "web")
	env["NEXUS_TOKEN"] = tok.SecretID
	run(1, "acl", "token", "self")
}
