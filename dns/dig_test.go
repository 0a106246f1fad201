package dns

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nexus/nexus/registry"
)

// TestDig runs the dig examples of docs/dns.md (Debian's dnsutils) against
// the server and checks their answers. Skipped without dig.
func TestDig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (Debian package dnsutils)")
	}
	e := newEnv(t, nil)
	e.register("web", "web-1", "n1", "10.0.0.1", 9001, registry.StatusPassing, "v1")
	e.register("web", "web-2", "n1", "10.0.0.7", 9002, registry.StatusPassing, "v2")
	for i := 0; i < 100; i++ {
		e.register("big", fmt.Sprintf("big-%d", i), "n2", fmt.Sprintf("10.2.0.%d", i+1), 80, registry.StatusPassing)
	}
	host, port, _ := net.SplitHostPort(e.srv.UDPAddr().String())
	run := func(args ...string) []string {
		t.Helper()
		out, err := exec.Command(dig, append([]string{"@" + host, "-p", port, "+time=5", "+tries=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l = strings.Join(strings.Fields(l), " "); l != "" {
				lines = append(lines, l)
			}
		}
		slices.Sort(lines)
		return lines
	}
	status := func(lines []string) string {
		for _, l := range lines {
			if _, s, ok := strings.Cut(l, "status: "); ok {
				return strings.TrimSuffix(strings.Fields(s)[0], ",")
			}
		}
		return ""
	}
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"web.service.nexus", "+short"}, []string{"10.0.0.1", "10.0.0.7"}},
		{[]string{"WEB.Service.NEXUS", "+short"}, []string{"10.0.0.1", "10.0.0.7"}},
		{[]string{"v1.web.service.nexus", "+short"}, []string{"10.0.0.1"}},
		{[]string{"_web._tcp.service.nexus", "SRV", "+noall", "+answer", "+additional"}, []string{
			"0a000007.addr.nexus. 0 IN A 10.0.0.7",
			"_web._tcp.service.nexus. 0 IN SRV 1 1 9001 n1.node.nexus.",
			"_web._tcp.service.nexus. 0 IN SRV 1 1 9002 0a000007.addr.nexus.",
			"n1.node.nexus. 0 IN A 10.0.0.1",
		}},
		{[]string{"n1.node.nexus", "+short"}, []string{"10.0.0.1"}},
	}
	for _, tt := range tests {
		if got := run(tt.args...); !slices.Equal(got, tt.want) {
			t.Errorf("dig %s:\n got %q\nwant %q", strings.Join(tt.args, " "), got, tt.want)
		}
	}
	nx := run("nosuch.service.nexus", "+noall", "+comments", "+authority")
	if status(nx) != "NXDOMAIN" || !slices.ContainsFunc(nx, func(l string) bool { return strings.HasPrefix(l, "nexus. 0 IN SOA ns.nexus. hostmaster.nexus.") }) {
		t.Errorf("NXDOMAIN with SOA: %q", nx)
	}
	if s := status(run("example.com", "+noall", "+comments")); s != "REFUSED" {
		t.Errorf("example.com: status %s, want REFUSED", s)
	}
	// A large answer: TC over UDP (+ignore: dig does not retry over TCP),
	// complete over TCP.
	if udp := run("big.service.nexus", "+ignore", "+noedns", "+noall", "+comments"); !slices.ContainsFunc(udp, func(l string) bool {
		return strings.HasPrefix(l, ";; flags:") && strings.Contains(l, " tc")
	}) {
		t.Errorf("big over UDP: no TC flag in %q", udp)
	}
	if tcp := run("big.service.nexus", "+tcp", "+short"); len(tcp) != 100 {
		t.Errorf("big over TCP: %d addresses, want 100", len(tcp))
	}
}
