package proccluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBinary returns the nexus binary for a test package's TestMain:
// $NEXUS_E2E_BINARY when set (for example bin/nexus built by
// `go build -o bin/nexus ./cmd/nexus`), else one built now into a temporary
// directory that cleanup removes.
func BuildBinary() (binary string, cleanup func(), err error) {
	if b := os.Getenv("NEXUS_E2E_BINARY"); b != "" {
		return b, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "nexus-bin-")
	if err != nil {
		return "", func() {}, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	binary = filepath.Join(dir, "nexus")
	if out, err := exec.Command("go", "build", "-o", binary, "github.com/nexus/nexus/cmd/nexus").CombinedOutput(); err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("go build github.com/nexus/nexus/cmd/nexus: %v\n%s", err, out)
	}
	return binary, cleanup, nil
}
