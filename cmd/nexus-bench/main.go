// Command nexus-bench is the load generator behind `make bench-raft` and
// `make bench-scale` (scale.go: a catalog of 100,000 instances, 1,000,000
// config keys and 10,000 routes on a 3-node cluster).
//
//	nexus-bench raft --nexus PATH [--duration 10s] [--clients 1,16,64]
//	                 [--failover-rounds 5] [--out FILE]
//
// It starts its own 3-node cluster of real `nexus agent` processes (through
// internal/proccluster, on ports 28300.. so that it does not clash with a dev
// cluster or the e2e tests) and measures config writes, local and
// linearizable reads, and leader failover. Results are printed as markdown
// tables on stdout (progress goes to stderr) and optionally written as JSON.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: nexus-bench raft --nexus PATH [--duration 10s] [--clients 1,16,64]
                        [--read-clients 64] [--failover-rounds 5] [--out FILE]
                        [--dir DIR] [--base-ip 127.0.0.] [--raft-port 28300]
                        [--gossip-port 28301] [--http-port 28500] [--gateway-port 28080]
                        [--verbose]
       nexus-bench ab-raft --nexus PATH [--base 3cd8fea | --base-binary PATH] [--rounds 3]
                        [raft's flags] (interleaved A/B: A built from git at --base)
       nexus-bench gateway --nexus PATH [--duration 10s] [--rounds 3] [--threads 2]
                        [--connections 64] [--gomaxprocs N] [--only direct,nginx,nexus,nexus-plugins]
       nexus-bench security --nexus PATH [--duration 10s] [--rounds 5] [--clients 64]
                        [--gateway-duration 10s] [--threads 2] [--connections 64]
                        [--mtls=true] [--only admin,gateway] [--port-base 29700] [--out FILE]
       nexus-bench dns --nexus PATH [--duration 5s] [--instances 1000] [--clients 16]
                        [--only A/udp,A/udp-edns,SRV/udp,A/tcp] [--port-base 29800] [--dir DIR]
       nexus-bench locks --nexus PATH [--duration 10s] [--contenders 2,4,8,16]
                        [--kill-rounds 3] [--lock-delay 15s] [--port-base 27300] [--out FILE]
       nexus-bench scale --nexus PATH [--instances 100000] [--clients 64] [--config-keys 1000000]
                        [--routes 10000] [--route-clients 16] [--watchers 10000] [--watch-writes 1000]
                        [--watch-duration 10s] [--gateway-conns 64] [--gateway-duration 5s] [--gateway-rounds 3]
                        [--propagations 20] [--only register,watch,routes,config,lists,snapshot,restart,catchup]
                        [--out FILE] [--dir DIR] [--raft-port 28700] [--http-port 28900] [--verbose]
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "raft":
		os.Exit(runRaft(ctx, os.Args[2:]))
	case "ab-raft":
		os.Exit(runABRaft(ctx, os.Args[2:]))
	case "gateway":
		os.Exit(runGateway(ctx, os.Args[2:]))
	case "security":
		os.Exit(runSecurity(ctx, os.Args[2:]))
	case "dns":
		os.Exit(runDNS(ctx, os.Args[2:]))
	case "locks":
		os.Exit(runLocks(ctx, os.Args[2:]))
	case "scale":
		os.Exit(runScale(ctx, os.Args[2:]))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "nexus-bench: unknown command %q\n%s", os.Args[1], usage)
		os.Exit(2)
	}
}
