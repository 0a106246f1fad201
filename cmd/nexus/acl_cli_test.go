package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nexus/nexus/api"
	"github.com/nexus/nexus/cmd/nexus/cli"
	"github.com/nexus/nexus/fsm"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// fsmWriter applies commands to a real FSM like a one-node Raft.
type fsmWriter struct {
	mu  sync.Mutex
	f   *fsm.FSM
	idx uint64
}

func (w *fsmWriter) Apply(_ context.Context, cmd []byte) (*command.Result, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.idx++
	res, _ := w.f.Apply(&raft.Log{Index: w.idx, Type: raft.LogCommand, Data: cmd}).(*command.Result)
	return res, nil
}

// TestACLCLIAgainstRealAPI runs every `nexus acl` subcommand against the
// real admin API (real FSM and store), so the CLI and the server agree on
// every answer's shape, in table and JSON output.
func TestACLCLIAgainstRealAPI(t *testing.T) {
	o, err := aclOptions(aclConfig(t, "--acl-enabled", "--acl-jwt-secret", strings.Repeat("k", 32)), nil)
	if err != nil {
		t.Fatal(err)
	}
	store := registry.NewStore()
	reg := prometheus.NewRegistry()
	srv, err := api.New(api.Deps{Writer: &fsmWriter{f: fsm.New(fsm.Deps{Store: store, Codec: command.NewCodec()})},
		Reader: stubReader{store}, Cluster: stubCluster{}, Registry: reg, Gatherer: reg, ACL: o})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })

	env := map[string]string{"NEXUS_HTTP_ADDR": ln.Addr().String()}
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
