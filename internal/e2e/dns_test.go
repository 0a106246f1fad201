package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nexus/nexus/internal/proccluster"
	"github.com/nexus/nexus/internal/retry"
)

// dnsOptions keeps this file's clusters off the other tests' ports, with
// the DNS interface on.
func dnsOptions(t *testing.T) proccluster.Options {
	o := baseOptions(t)
	o.RaftPort, o.GossipPort, o.HTTPPort, o.GatewayPort = 26300, 26301, 26500, 26080
	o.DNSPort = envInt("NEXUS_E2E_DNS_PORT", 26600)
	return o
}

// resolver is Go's own stub resolver (the client every Go program uses)
// sending its queries to one node's DNS interface, over UDP and, for
// truncated answers, TCP.
func resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
	}}
}

// dnsView is what one node's DNS answers for the test's service and node
// names: sorted "addr" for A, "port target" for SRV.
type dnsView struct {
	a, srv, node []string
}

func lookup(ctx context.Context, r *net.Resolver, node string) (dnsView, error) {
	var v dnsView
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	a, err := r.LookupHost(ctx, "web.service.nexus.")
	if err != nil {
		return v, fmt.Errorf("A web.service.nexus: %w", err)
	}
	_, srvs, err := r.LookupSRV(ctx, "web", "tcp", "service.nexus.")
	if err != nil {
		return v, fmt.Errorf("SRV _web._tcp.service.nexus: %w", err)
	}
	for _, s := range srvs {
		v.srv = append(v.srv, strconv.Itoa(int(s.Port))+" "+s.Target)
	}
	n, err := r.LookupHost(ctx, node+".node.nexus.")
	if err != nil {
		return v, fmt.Errorf("A %s.node.nexus: %w", node, err)
	}
	v.a, v.node = a, n
	slices.Sort(v.a)
	slices.Sort(v.srv)
	return v, nil
}

// TestDNSAcrossNodesAndWithoutLeader registers instances through one node
// and resolves them through another, over the real DNS listeners of three
// nexus processes; after the leader is killed, and then the registering
// node too (no quorum, no leader), the last node still answers from its
// local replica.
func TestDNSAcrossNodesAndWithoutLeader(t *testing.T) {
	c := startCluster(t, dnsOptions(t))
	a := newAPI(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	leader := mustLeader(t, ctx, c)
	mustAllReady(t, ctx, c)
	others := others(c, leader)
	reg, asker := others[0], others[1] // register on one follower, ask the other
	regInfo, askInfo := c.Node(reg), c.Node(asker)

	// One instance on its node's own address (SRV target NODE.node), one
	// elsewhere (target HEX.addr), one critical (left out).
	a.mustDo(t, reg, "POST", "/services/register", map[string]any{
		"name": "web", "type": "http", "address": regInfo.IP, "port": 9001, "tags": []string{"v1"}}, http.StatusCreated)
	a.mustDo(t, reg, "POST", "/services/register", map[string]any{
		"name": "web", "type": "http", "address": "127.0.0.99", "port": 9002}, http.StatusCreated)
	a.mustDo(t, reg, "POST", "/services/register", map[string]any{
		"name": "web", "type": "http", "address": "127.0.0.98", "port": 9003, "check": map[string]any{"ttl": "1h"}}, http.StatusCreated)

	want := dnsView{
		a:    []string{regInfo.IP, "127.0.0.99"},
		srv:  []string{"9001 " + regInfo.Name + ".node.nexus.", "9002 7f000063.addr.nexus."},
		node: []string{regInfo.IP},
	}
	res := resolver(askInfo.DNSAddr)
	check := func(r *retry.R, what string) {
		got, err := lookup(ctx, res, regInfo.Name)
		r.Check(err)
		if !slices.Equal(got.a, want.a) || !slices.Equal(got.srv, want.srv) || !slices.Equal(got.node, want.node) {
			r.Fatalf("%s: %s answers %+v, want %+v", what, askInfo.Name, got, want)
		}
	}
	retry.Run(t, func(r *retry.R) { check(r, "registered on "+regInfo.Name) }, retry.Timeout(30*time.Second))

	// Tags and unknown names through the same resolver.
	if addrs, err := res.LookupHost(ctx, "v1.web.service.nexus."); err != nil || !slices.Equal(addrs, []string{regInfo.IP}) {
		t.Errorf("v1.web.service.nexus: %v %v", addrs, err)
	}
	var dnsErr *net.DNSError
	if _, err := res.LookupHost(ctx, "nosuch.service.nexus."); !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("nosuch.service.nexus: %v, want not found (NXDOMAIN)", err)
	}

	// The leader dies: the others answer as before.
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, func(r *retry.R) { check(r, "leader killed") }, retry.Timeout(10*time.Second))

	// The registering node dies too: one node of three, no quorum, no
	// leader; its replica still answers.
	if err := c.Kill(reg); err != nil {
		t.Fatal(err)
	}
	retry.Run(t, func(r *retry.R) {
		resp, err := a.do(ctx, asker, "GET", "/ready", nil, 2*time.Second)
		r.Check(err)
		if resp.status == http.StatusOK {
			r.Fatalf("%s still ready (has a leader)", askInfo.Name)
		}
	}, retry.Timeout(30*time.Second), retry.What(askInfo.Name+" without a leader"))
	retry.Run(t, func(r *retry.R) { check(r, "no leader") }, retry.Timeout(10*time.Second))
}
