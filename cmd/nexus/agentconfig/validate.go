package agentconfig

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// Limits checked by Validate. The Raft minimums are those of
// hashicorp/raft ValidateConfig, or stricter, so that a Config that passes
// here never fails later in raft.NewRaft.
const (
	minHeartbeat      = 50 * time.Millisecond
	minElection       = 50 * time.Millisecond
	minLeaderLease    = 5 * time.Millisecond
	minCommit         = time.Millisecond
	minSnapshotIntvl  = 5 * time.Millisecond
	minMaxBodyBytes   = 1 << 10
	maxMaxBodyBytes   = 64 << 20
	nodeNamePattern   = `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`
	maxNodeNameLength = 64
)

// Validate checks c and returns the first problem as a one-line
// *SettingError, checking settings in the order Usage lists them. Load
// calls it; it is exported for configs built in code (tests, embedding).
// An empty DataDir passes only with Dev set.
func (c *Config) Validate() error {
	if c.Node == "" {
		return settingErr("node", "required")
	}
	if !validNodeName(c.Node) {
		return settingErr("node", "%q must match %s", c.Node, nodeNamePattern)
	}
	if c.DataDir == "" && !c.Dev {
		return settingErr("data_dir", "required unless --dev")
	}
	if net.ParseIP(c.Bind) == nil {
		return settingErr("bind", "%q is not an IP address", c.Bind)
	}
	if net.ParseIP(c.Advertise) == nil {
		return settingErr("advertise", "%q is not an IP address", c.Advertise)
	}
	if isUnspecified(c.Advertise) {
		return settingErr("advertise", "%q is unspecified; peers need an address they can reach", c.Advertise)
	}
	if err := checkPort("raft_port", c.RaftPort); err != nil {
		return err
	}
	if err := checkPort("gossip_port", c.GossipPort); err != nil {
		return err
	}
	if c.GossipPort == c.RaftPort {
		return settingErr("gossip_port", "%d is also raft_port; they must differ", c.GossipPort)
	}
	httpHost, httpPort, err := checkHostPort("http_addr", c.HTTPAddr)
	if err != nil {
		return err
	}
	gwHost, gwPort, err := checkHostPort("gateway_addr", c.GatewayAddr)
	if err != nil {
		return err
	}
	for _, l := range []struct {
		key, addr, host string
		port            int
	}{{"http_addr", c.HTTPAddr, httpHost, httpPort}, {"gateway_addr", c.GatewayAddr, gwHost, gwPort}} {
		if sameHost(l.host, c.Bind) && (l.port == c.RaftPort || l.port == c.GossipPort) {
			other := "raft_port"
			if l.port == c.GossipPort {
				other = "gossip_port"
			}
			return settingErr(l.key, "%q collides with %s %d on bind address %s", l.addr, other, l.port, c.Bind)
		}
	}
	if httpPort == gwPort && sameHost(httpHost, gwHost) {
		return settingErr("gateway_addr", "%q collides with http_addr %q; they must differ", c.GatewayAddr, c.HTTPAddr)
	}
	if c.BootstrapExpect < 0 {
		return settingErr("bootstrap_expect", "%q must be >= 0", strconv.Itoa(c.BootstrapExpect))
	}
	if c.NonVoter && (c.BootstrapExpect > 0 || c.Dev) {
		return settingErr("non_voter", "a read replica never bootstraps: it excludes bootstrap_expect and dev (it joins a cluster with --join)")
	}
	for _, a := range c.Join {
		if _, err := normalizeJoin(a); err != nil {
			return settingErr("join", "%q %s", a, err)
		}
	}
	if !validDatacenter(c.Datacenter) {
		return settingErr("datacenter", "%q must be 1..64 of [A-Za-z0-9_-]", c.Datacenter)
	}
	if err := checkEnum("log_level", c.LogLevel, "debug", "info", "warn", "error"); err != nil {
		return err
	}
	if err := checkEnum("log_format", c.LogFormat, "json", "text"); err != nil {
		return err
	}
	if err := checkEnum("raft_log_store", c.RaftLogStore, "boltdb", "wal"); err != nil {
		return err
	}
	if err := checkEnum("gateway_socket_io", c.GatewaySocketIO, "raw", "plain"); err != nil {
		return err
	}

	hb := c.RaftHeartbeatTimeout
	if err := checkMin("raft_heartbeat_timeout", hb, minHeartbeat); err != nil {
		return err
	}
	if err := checkMin("raft_election_timeout", c.RaftElectionTimeout, minElection); err != nil {
		return err
	}
	if c.RaftElectionTimeout < hb {
		return settingErr("raft_election_timeout", "%q must be at least raft_heartbeat_timeout (%s)", c.RaftElectionTimeout.String(), hb)
	}
	if err := checkMin("raft_leader_lease_timeout", c.RaftLeaderLeaseTimeout, minLeaderLease); err != nil {
		return err
	}
	if c.RaftLeaderLeaseTimeout > hb {
		return settingErr("raft_leader_lease_timeout", "%q must not exceed raft_heartbeat_timeout (%s)", c.RaftLeaderLeaseTimeout.String(), hb)
	}
	if err := checkMin("raft_commit_timeout", c.RaftCommitTimeout, minCommit); err != nil {
		return err
	}
	if c.RaftCommitTimeout > hb {
		return settingErr("raft_commit_timeout", "%q must not exceed raft_heartbeat_timeout (%s)", c.RaftCommitTimeout.String(), hb)
	}
	if c.RaftSnapshotThreshold < 1 {
		return settingErr("raft_snapshot_threshold", "%q must be at least 1", strconv.FormatUint(c.RaftSnapshotThreshold, 10))
	}
	if err := checkMin("raft_snapshot_interval", c.RaftSnapshotInterval, minSnapshotIntvl); err != nil {
		return err
	}
	if c.MaxBodyBytes < minMaxBodyBytes || c.MaxBodyBytes > maxMaxBodyBytes {
		return settingErr("max_body_bytes", "%q is out of range %d..%d (1KiB..64MiB)", strconv.Itoa(c.MaxBodyBytes), minMaxBodyBytes, maxMaxBodyBytes)
	}
	if c.ApplyTimeout <= 0 {
		return settingErr("apply_timeout", "%q must be positive", c.ApplyTimeout.String())
	}
	if c.AutopilotStabilizationTime <= 0 {
		return settingErr("autopilot_stabilization_time", "%q must be positive", c.AutopilotStabilizationTime.String())
	}
	if c.AutopilotDeadServerGrace <= 0 {
		return settingErr("autopilot_dead_server_grace", "%q must be positive", c.AutopilotDeadServerGrace.String())
	}
	if c.AutopilotMinQuorum < 0 {
		return settingErr("autopilot_min_quorum", "%q must be >= 0", strconv.Itoa(c.AutopilotMinQuorum))
	}
	if err := c.validateDNS(); err != nil {
		return err
	}
	return c.validateSecurity()
}

func validNodeName(s string) bool {
	if len(s) == 0 || len(s) > maxNodeNameLength || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if b := s[i]; !isAlnum(b) && b != '.' && b != '_' && b != '-' {
			return false
		}
	}
	return true
}

func isAlnum(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9'
}

func checkPort(key string, p int) error {
	if p < 1 || p > 65535 {
		return settingErr(key, "%q is out of range 1..65535", strconv.Itoa(p))
	}
	return nil
}

// parsePort accepts a decimal port 1..65535, digits only.
func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	p, _ := strconv.Atoi(s)
	return p, p >= 1 && p <= 65535
}

// checkHostPort validates a listen address HOST:PORT; HOST may be empty
// (all interfaces), an IP address or a host name.
func checkHostPort(key, v string) (string, int, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", 0, settingErr(key, "%q is not HOST:PORT", v)
	}
	p, ok := parsePort(port)
	if !ok {
		return "", 0, settingErr(key, "%q: port %q is not a number in 1..65535", v, port)
	}
	if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
		return "", 0, settingErr(key, "%q: %q is not an IP address or host name", v, host)
	}
	return host, p, nil
}

// sameHost reports whether listeners on hosts a and b could collide: the
// same address, or either one is a wildcard.
func sameHost(a, b string) bool {
	if a == "" || b == "" || isUnspecified(a) || isUnspecified(b) {
		return true
	}
	ipA, ipB := net.ParseIP(a), net.ParseIP(b)
	if ipA != nil && ipB != nil {
		return ipA.Equal(ipB)
	}
	return strings.EqualFold(a, b)
}

func checkEnum(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return settingErr(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

func checkMin(key string, d, lowest time.Duration) error {
	if d <= 0 {
		return settingErr(key, "%q must be positive", d.String())
	}
	if d < lowest {
		return settingErr(key, "%q must be at least %s", d.String(), lowest)
	}
	return nil
}

// normalizeJoin turns HOST or HOST:PORT (IPv6 as [IP]:PORT, or a bare IP)
// into HOST:PORT, with the default gossip port when none is given. Its error
// is the reason only; callers prefix the quoted address.
func normalizeJoin(a string) (string, error) {
	a = strings.TrimSpace(a)
	if a == "" {
		return "", errors.New("is empty; want HOST[:PORT]")
	}
	host, port := a, strconv.Itoa(defaultGossipPort)
	switch {
	case net.ParseIP(a) != nil: // bare IPv4 or IPv6
	case strings.HasPrefix(a, "[") && strings.HasSuffix(a, "]"):
		host = a[1 : len(a)-1]
		if !strings.Contains(host, ":") || net.ParseIP(host) == nil {
			return "", errors.New("is not HOST[:PORT]: brackets must hold an IPv6 address")
		}
	case strings.Contains(a, ":"):
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return "", errors.New("is not HOST[:PORT]")
		}
		if _, ok := parsePort(p); !ok {
			return "", fmt.Errorf("is not HOST[:PORT]: port %q is not a number in 1..65535", p)
		}
		host, port = h, p
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return "", errors.New("is not HOST[:PORT]: an unspecified address cannot be joined")
		}
		host = ip.String()
	} else if !validHostname(host) {
		return "", errors.New("is not HOST[:PORT]: bad IP address or host name")
	}
	return net.JoinHostPort(host, port), nil
}

// validHostname accepts DNS names, leniently: labels of letters, digits,
// '-' and '_' (container names), not starting or ending with '-', and a last
// label that is not all digits (that would be a malformed IPv4 address).
func validHostname(h string) bool {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if b := l[i]; !isAlnum(b) && b != '-' && b != '_' {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return strings.IndexFunc(last, func(r rune) bool { return r < '0' || r > '9' }) >= 0
}

// Usage returns the help text of `nexus agent`, for -h/--help and usage
// errors.
func Usage() string {
	var b strings.Builder
	b.WriteString(`Usage: nexus agent [flags]

Runs a Nexus node. Settings come from, lowest precedence first: defaults, the
YAML file named by --config (keys as the flags with _ for -, join as a list,
durations as "500ms"; the --acl-* settings nested: acl: {enabled: true}),
NEXUS_<KEY> environment variables (NEXUS_DATA_DIR, NEXUS_JOIN=a,b,
NEXUS_DEV=true, NEXUS_ACL_ENABLED=true), and flags given on the command line.

Flags:
`)
	for _, s := range settingsTable() {
		b.WriteString("  --" + s.flagName())
		if s.arg != "" {
			b.WriteString(" " + s.arg)
		}
		b.WriteString("\n        " + s.usage)
		if s.def != "" {
			b.WriteString(" (default " + s.def + ")")
		}
		b.WriteString(" [$" + s.envName())
		if s.section != "" {
			b.WriteString("; YAML " + s.fileKey())
		}
		b.WriteString("]\n")
	}
	return b.String()
}

// validDatacenter: 1..64 of [A-Za-z0-9_-], as Consul names datacenters.
func validDatacenter(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidNodeName reports whether s is a valid node name (the node setting's
// rule), for commands that name nodes (nexus recover --voter).
func ValidNodeName(s string) bool { return validNodeName(s) }
