// Command nexus is the single Nexus binary: `nexus agent` runs a node, every
// other subcommand is a client of the admin API.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/nexus/nexus/cmd/nexus/cli"
)

// version is the build version, set with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "agent":
		return runAgent(args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(args[1:], stdout, stderr, os.Getenv)
	case "recover":
		return runRecover(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "nexus", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	}
	return cli.Run(args, stdin, stdout, stderr, os.Getenv)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: nexus <command> [flags]")
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "  agent      run a Nexus node (nexus agent --help for its flags)")
	fmt.Fprintln(w, "  migrate    status|up: the PostgreSQL audit archive schema (--postgres-url)")
	fmt.Fprintln(w, "  recover    --data-dir DIR [--voter NODE=HOST:RAFTPORT ...]: offline quorum-loss recovery")
	fmt.Fprintln(w, "  version    print the version")
	cli.Usage(w)
}
