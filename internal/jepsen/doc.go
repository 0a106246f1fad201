// Package jepsen is the root of nexus-jepsen, a Jepsen-style fault-injection
// harness for Nexus (design-notes.md §6.7, docs/jepsen.md).
//
// The work is split by job:
//
//	netns     network namespaces: one per node plus the harness's own, a bridge,
//	          veth pairs, stale-namespace cleanup, and running commands inside
//	history   the record of every client operation (invoke/complete, outcome)
//	client    the Nexus REST client that turns answers into outcomes
//	workload  register (porcupine), set, audit (PostgreSQL audit_events), and lock
//	          (a counter incremented under a lock through fenced transactions)
//	pgserver  the throwaway PostgreSQL the audit workload's agents archive to
//	nemesis   kill, pause, partition, net-slow, membership, and their schedule
//	checker   linearizability (porcupine), set, audit and lock checks, availability, stats
//	runner    one run: cluster, clients, nemesis, final reads, check, output
//
// cmd/nexus-jepsen is the command; porcupine is linked only into it, never into
// the nexus binary.
package jepsen
