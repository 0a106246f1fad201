package netns

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, id string
		ok       bool
	}{
		{"njp-a1b2c3-h", "a1b2c3", true},
		{"njp-a1b2c3-n12", "a1b2c3", true},
		{"njp-A1-h", "", false}, // not lower-case hex
		{"njp--h", "", false},   // no id
		{"njp-abc", "", false},  // no role
		{"other-abc-h", "", false},
		{"njp-xyz-h", "", false},
	}
	for _, tc := range tests {
		id, ok := ParseName(tc.name)
		if id != tc.id || ok != tc.ok {
			t.Errorf("ParseName(%q) = %q, %v; want %q, %v", tc.name, id, ok, tc.id, tc.ok)
		}
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	topo := &Topology{ID: "abc", Harness: "njp-abc-h", HarnessIP: "10.77.0.1", Prefix: DefaultPrefix,
		Nodes: []Node{{Name: "n1", NS: "njp-abc-n1", IP: NodeIP(DefaultPrefix, 0)}}}
	t.Setenv(EnvTopology, topo.Encode())
	got, ok, err := FromEnv()
	if !ok || err != nil || got.Nodes[0].IP != "10.77.0.11" || got.Harness != topo.Harness {
		t.Fatalf("FromEnv = %+v, %v, %v", got, ok, err)
	}
	if err := got.Close(context.Background()); err == nil {
		t.Fatal("Close must refuse a topology this process does not own")
	}
}

func TestWriteAgentWrapper(t *testing.T) {
	t.Parallel()
	topo := &Topology{ID: "abc", Nodes: []Node{{Name: "n1", NS: "njp-abc-n1"}, {Name: "n2", NS: "njp-abc-n2"}}}
	path := filepath.Join(t.TempDir(), "wrapper.sh")
	if err := topo.WriteAgentWrapper(path, "/opt/it's/nexus"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"n2) ns=njp-abc-n2 ;;", `exec ip netns exec "$ns" '/opt/it'\''s/nexus' "$@"`} {
		if !strings.Contains(s, want) {
			t.Fatalf("wrapper lacks %q:\n%s", want, s)
		}
	}
	if _, err := exec.LookPath("sh"); err == nil {
		// An unknown node is refused before anything runs.
		out, err := exec.Command(path, "agent", "--node", "n9").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "unknown node 'n9'") {
			t.Fatalf("unknown node: %v %s", err, out)
		}
	}
}

// TestSetupAndClean builds a topology, checks that its nodes reach each
// other only through the bridge, and that a topology whose owner died is
// cleaned while a live one is not.
func TestSetupAndClean(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	ctx := context.Background()
	topo, err := Setup(ctx, Spec{Nodes: 2}, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close(ctx)
	for _, ns := range topo.Namespaces() {
		if !exists(ns) {
			t.Fatalf("namespace %s missing", ns)
		}
	}
	out, err := topo.ExecNode(ctx, 0, nil, "ip", "-br", "addr", "show", NodeIface)
	if err != nil || !strings.Contains(string(out), topo.Nodes[0].IP+"/24") {
		t.Fatalf("node 0 address: %v %s", err, out)
	}
	// The address exists only inside the namespaces.
	if out, _ := exec.Command("ip", "-br", "addr").CombinedOutput(); strings.Contains(string(out), topo.Nodes[0].IP+"/") {
		t.Fatalf("node address visible in the root namespace:\n%s", out)
	}
	// A live topology survives CleanStale.
	if removed, err := CleanStale(ctx, t.Logf); err != nil || containsAny(removed, topo.Namespaces()) {
		t.Fatalf("CleanStale removed a live topology: %v %v", removed, err)
	}
	// Simulate a dead owner: drop the lock without deleting.
	topo.lock.Close()
	topo.lock = nil
	removed, err := CleanStale(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range topo.Namespaces() {
		if exists(ns) || !containsAny(removed, []string{ns}) {
			t.Fatalf("stale namespace %s not removed (removed %v)", ns, removed)
		}
	}
}

func containsAny(list, any []string) bool {
	for _, a := range list {
		for _, b := range any {
			if a == b {
				return true
			}
		}
	}
	return false
}
