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

// usage is the one usage text: the CLI's, which lists every command
// (agent, migrate and version included).
func usage(w io.Writer) { cli.Usage(w) }
