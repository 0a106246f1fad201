package nemesis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// iptables chains the nemeses own inside each node namespace, jumped to from
// INPUT. They vanish with the namespace.
const (
	ChainPartition = "NJP-PART"
	ChainSlow      = "NJP-SLOW"
)

// Prepare creates the nemesis chains in every node namespace. Run it once
// before faults are injected.
func Prepare(ctx context.Context, c Cluster) error {
	return forEachNode(c, func(i int) error {
		rules := fmt.Sprintf("*filter\n:%s - [0:0]\n:%s - [0:0]\n-A INPUT -j %s\n-A INPUT -j %s\nCOMMIT\n",
			ChainPartition, ChainSlow, ChainPartition, ChainSlow)
		_, err := c.Exec(ctx, i, []byte(rules), "iptables-restore", "--noflush")
		return err
	})
}

// applyChain replaces the rules of chain in node i's namespace.
func applyChain(ctx context.Context, c Cluster, i int, chain string, rules []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*filter\n-F %s\n", chain)
	for _, r := range rules {
		fmt.Fprintf(&b, "-A %s %s\n", chain, r)
	}
	b.WriteString("COMMIT\n")
	_, err := c.Exec(ctx, i, []byte(b.String()), "iptables-restore", "--noflush")
	return err
}

// flushChain removes every rule of chain on every node.
func flushChain(ctx context.Context, c Cluster, chain string) error {
	return forEachNode(c, func(i int) error {
		_, err := c.Exec(ctx, i, nil, "iptables", "-F", chain)
		return err
	})
}

// applyGrudge installs g: node i drops every packet from the nodes it holds
// a grudge against (the harness's own address is never cut: clients keep
// reaching every node, as in Jepsen).
func applyGrudge(ctx context.Context, c Cluster, g Grudge) error {
	return forEachNode(c, func(i int) error {
		var rules []string
		for _, j := range g[i] {
			rules = append(rules, "-s "+c.NodeIP(j)+" -j DROP")
		}
		return applyChain(ctx, c, i, ChainPartition, rules)
	})
}

// forEachNode runs f for every node concurrently (so that a partition
// starts on all nodes at about the same time) and joins the errors.
func forEachNode(c Cluster, f func(i int) error) error {
	errs := make([]error, c.N())
	var wg sync.WaitGroup
	for i := 0; i < c.N(); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.NodeName(i), err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
