// Command nexus-jepsen is a Jepsen-style fault-injection harness for Nexus:
// it starts real `nexus agent` processes, each in its own network namespace,
// runs concurrent clients against them while injecting faults, records every
// operation, and checks the history (docs/jepsen.md).
//
//	nexus-jepsen run      [flags]   one run (needs root, iproute2, iptables)
//	nexus-jepsen campaign [flags]   many runs per nemesis, with a results table
//	nexus-jepsen check    DIR       re-check a run's history offline
//	nexus-jepsen clean              remove namespaces left by dead harnesses
//
// Exit status: 0 valid, 1 an anomaly was found, 2 the harness could not
// decide (error, checker timeout, interrupted), 3 bad usage.
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes.
const (
	exitValid   = 0
	exitInvalid = 1
	exitUnknown = 2
	exitUsage   = 3
)

// innerCommand is the hidden subcommand the supervisor runs inside the
// harness namespace.
const innerCommand = "__inner"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "campaign":
		return cmdCampaign(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "clean":
		return cmdClean(stderr)
	case innerCommand:
		return cmdInner(args[1:], stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return exitValid
	}
	fmt.Fprintf(stderr, "nexus-jepsen: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  nexus-jepsen run      [flags]   one run: cluster in network namespaces, clients, faults, check
  nexus-jepsen campaign [flags]   repeated runs per nemesis, results in campaign.md/.json
  nexus-jepsen check    DIR       re-check DIR/history.jsonl offline
  nexus-jepsen report   DIR...    one set of campaign tables over several campaign folders
  nexus-jepsen clean              remove namespaces left by harnesses that died

Run "nexus-jepsen run -h" or "nexus-jepsen campaign -h" for flags.
Exit status: 0 valid, 1 anomaly found, 2 undecided (error, timeout, interrupted), 3 usage.
`)
}
