package netns

import (
	"fmt"
	"os"
	"strings"
)

// WriteAgentWrapper writes an executable shell script at path that runs
// binary inside the namespace of the node named by its --node argument:
//
//	wrapper agent --node n2 ...  →  exec ip netns exec njp-<id>-n2 binary agent --node n2 ...
//
// Both exec's keep the pid, so the wrapper's pid is the agent's: signals
// (SIGKILL, SIGSTOP) sent by proccluster reach the agent itself.
func (t *Topology) WriteAgentWrapper(path, binary string) error {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n# nexus-jepsen: run the nexus agent in its node's network namespace.\n")
	b.WriteString("node=\"\"\nprev=\"\"\nfor a in \"$@\"; do\n  if [ \"$prev\" = \"--node\" ]; then node=\"$a\"; fi\n  prev=\"$a\"\ndone\n")
	b.WriteString("case \"$node\" in\n")
	for _, n := range t.Nodes {
		fmt.Fprintf(&b, "  %s) ns=%s ;;\n", n.Name, n.NS)
	}
	b.WriteString("  *) echo \"nexus-jepsen wrapper: unknown node '$node'\" >&2; exit 2 ;;\nesac\n")
	fmt.Fprintf(&b, "exec ip netns exec \"$ns\" %s \"$@\"\n", shellQuote(binary))
	return os.WriteFile(path, []byte(b.String()), 0o755)
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
