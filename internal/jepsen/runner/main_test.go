package runner

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/jepsen/netns"
)

// envBinary passes the nexus binary built by the outer test process to the
// test re-executed inside the harness namespace.
const envBinary = "NEXUS_JEPSEN_TEST_BINARY"

var buildErr error

// TestMain builds the nexus binary once, in the outer process, when the
// namespace tests can run at all (root, ip netns, not -short).
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if _, inner, _ := netns.FromEnv(); inner || testing.Short() || netns.Available() != nil {
			return m.Run()
		}
		if os.Getenv(envBinary) != "" {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nexus-jepsen-bin-")
		if err != nil {
			buildErr = err
			return m.Run()
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "nexus")
		start := time.Now()
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/nexus/nexus/cmd/nexus").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/nexus: %v\n%s", err, out)
		} else {
			fmt.Fprintf(os.Stderr, "jepsen tests: built %s in %v\n", bin, time.Since(start).Round(time.Millisecond))
			os.Setenv(envBinary, bin)
		}
		return m.Run()
	}())
}

// inside runs the calling test inside a fresh topology of n nodes (see
// netns.Inside); it returns nil in the outer process.
func inside(t *testing.T, n int) (*netns.Topology, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: starts real agents in network namespaces (not in -short mode)")
	}
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	topo := netns.Inside(t, netns.Spec{Nodes: n}, envBinary+"="+os.Getenv(envBinary))
	if topo == nil {
		return nil, ""
	}
	bin := os.Getenv(envBinary)
	if bin == "" {
		t.Fatal(envBinary + " is not set")
	}
	return topo, bin
}
