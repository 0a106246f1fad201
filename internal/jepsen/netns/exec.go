package netns

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// commandTimeout bounds every command when ctx has no deadline.
const commandTimeout = 30 * time.Second

// Run runs argv with stdin (may be nil) and returns its combined output; the
// error names the command and includes the output.
func Run(ctx context.Context, stdin []byte, argv ...string) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, commandTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Exec runs argv inside namespace ns (`ip netns exec ns argv...`).
func Exec(ctx context.Context, ns string, stdin []byte, argv ...string) ([]byte, error) {
	return Run(ctx, stdin, append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

// ExecNode runs argv inside the namespace of node i (0-based).
func (t *Topology) ExecNode(ctx context.Context, i int, stdin []byte, argv ...string) ([]byte, error) {
	return Exec(ctx, t.Nodes[i].NS, stdin, argv...)
}
