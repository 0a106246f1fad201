package agentconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

type kind int

const (
	kindString kind = iota
	kindBool
	kindInt
	kindUint64
	kindDuration
	kindBytes // int, plain bytes or with a KiB/MiB/GiB suffix
	kindList  // []string: join addresses, host names, file names
	kindFloat // float64
)

// setting describes one setting. Its YAML key is key, its flag key with "-"
// for "_", its environment variable NEXUS_ + upper-case key.
type setting struct {
	key     string
	kind    kind
	arg     string // argument name shown in Usage, e.g. "N"
	usage   string
	def     string // default shown in Usage; "" shows none
	notFile bool   // not accepted in the YAML file (config itself)
	// section is the YAML mapping the setting sits in: key "acl_enabled"
	// with section "acl" is "acl: {enabled: ...}" in the file (fileKey),
	// --acl-enabled and NEXUS_ACL_ENABLED elsewhere.
	section string
	field   func(c *Config) any
	// item normalizes one element of a kindList setting; nil: a join
	// address (normalizeJoin).
	item func(string) (string, error)
}

func (s *setting) flagName() string { return strings.ReplaceAll(s.key, "_", "-") }
func (s *setting) envName() string  { return "NEXUS_" + strings.ToUpper(s.key) }

// fileKey is the setting's dotted path in the YAML file: "raft_port",
// "acl.enabled".
func (s *setting) fileKey() string {
	if s.section == "" {
		return s.key
	}
	return s.section + "." + strings.TrimPrefix(s.key, s.section+"_")
}

// settingsTable lists the settings in the order Usage shows them and
// Validate checks them. It is built per call: the package has no globals.
func settingsTable() []setting {
	d := func(v time.Duration) string { return v.String() }
	return []setting{
		{key: "dev", kind: kindBool, usage: "single node: data in a fresh temp dir, bootstraps itself, all listeners on 127.0.0.1",
			field: func(c *Config) any { return &c.Dev }},
		{key: "node", arg: "NAME", usage: "unique node name, also the Raft server ID", def: `host name; "dev" with --dev`,
			field: func(c *Config) any { return &c.Node }},
		{key: "datacenter", arg: "NAME", usage: "datacenter name the Consul-compatible API reports and accepts as ?dc= (docs/consul-compat.md)", def: defaultDatacenter,
			field: func(c *Config) any { return &c.Datacenter }},
		{key: "data_dir", arg: "DIR", usage: "where the Raft log, snapshots and node id live; required unless --dev",
			field: func(c *Config) any { return &c.DataDir }},
		{key: "bind", arg: "IP", usage: "address for Raft and gossip", def: defaultBind,
			field: func(c *Config) any { return &c.Bind }},
		{key: "advertise", arg: "IP", usage: "address peers use to reach this node", def: "--bind",
			field: func(c *Config) any { return &c.Advertise }},
		{key: "raft_port", kind: kindInt, arg: "N", usage: "Raft transport port (TCP)", def: strconv.Itoa(defaultRaftPort),
			field: func(c *Config) any { return &c.RaftPort }},
		{key: "gossip_port", kind: kindInt, arg: "N", usage: "memberlist port (TCP+UDP)", def: strconv.Itoa(defaultGossipPort),
			field: func(c *Config) any { return &c.GossipPort }},
		{key: "http_addr", arg: "HOST:PORT", usage: "admin REST API listen address", def: defaultHTTPAddr,
			field: func(c *Config) any { return &c.HTTPAddr }},
		{key: "gateway_addr", arg: "HOST:PORT", usage: "API gateway listen address", def: defaultGatewayAddr,
			field: func(c *Config) any { return &c.GatewayAddr }},
		{key: "bootstrap_expect", kind: kindInt, arg: "N", usage: "wait until N servers see each other via gossip, then bootstrap Raft once", def: "0; 1 with --dev",
			field: func(c *Config) any { return &c.BootstrapExpect }},
		{key: "non_voter", kind: kindBool, usage: "join as a read replica: a non-voting Raft server that serves local and consistent reads and forwards writes, never promoted to voter nor counted in bootstrap_expect",
			field: func(c *Config) any { return &c.NonVoter }},
		{key: "join", kind: kindList, arg: "HOST[:PORT]", usage: "gossip address of a member (port " + strconv.Itoa(defaultGossipPort) + " if omitted); repeatable; NEXUS_JOIN and YAML take a list",
			field: func(c *Config) any { return &c.Join }},
		{key: "config", arg: "FILE", usage: "YAML file with the same settings (keys as the flags, _ for -)", notFile: true,
			field: func(c *Config) any { return &c.ConfigFile }},
		{key: "postgres_url", arg: "URL", usage: "PostgreSQL audit archive; empty = off (DATABASE_URL is not read)",
			field: func(c *Config) any { return &c.PostgresURL }},
		{key: "gateway_access_log", kind: kindBool, usage: "log one JSON line per gateway request",
			field: func(c *Config) any { return &c.GatewayAccessLog }},
		{key: "gateway_socket_io", arg: "MODE", usage: "raw: gateway sockets read and written with raw system calls (less CPU per request; docs/gateway.md); plain: Go's net.Conn calls", def: defaultGatewaySocketIO,
			field: func(c *Config) any { return &c.GatewaySocketIO }},
		{key: "log_level", arg: "LEVEL", usage: "debug, info, warn or error", def: defaultLogLevel,
			field: func(c *Config) any { return &c.LogLevel }},
		{key: "log_format", arg: "FORMAT", usage: "json or text", def: defaultLogFormat,
			field: func(c *Config) any { return &c.LogFormat }},
		{key: "enable_debug", kind: kindBool, usage: "serve Go's pprof profiles on the admin API under /debug/pprof/ without ACLs (with ACLs on they are served anyway, to cluster:write)",
			field: func(c *Config) any { return &c.EnableDebug }},
		{key: "raft_heartbeat_timeout", kind: kindDuration, arg: "DURATION", usage: "Raft heartbeat timeout (at least 50ms)", def: d(defaultHeartbeat),
			field: func(c *Config) any { return &c.RaftHeartbeatTimeout }},
		{key: "raft_election_timeout", kind: kindDuration, arg: "DURATION", usage: "Raft election timeout (at least 50ms and the heartbeat timeout)", def: d(defaultElection),
			field: func(c *Config) any { return &c.RaftElectionTimeout }},
		{key: "raft_leader_lease_timeout", kind: kindDuration, arg: "DURATION", usage: "Raft leader lease timeout (at most the heartbeat timeout)", def: d(defaultLeaderLease),
			field: func(c *Config) any { return &c.RaftLeaderLeaseTimeout }},
		{key: "raft_commit_timeout", kind: kindDuration, arg: "DURATION", usage: "Raft commit timeout (at most the heartbeat timeout)", def: d(defaultCommit),
			field: func(c *Config) any { return &c.RaftCommitTimeout }},
		{key: "raft_snapshot_threshold", kind: kindUint64, arg: "N", usage: "Raft log entries between snapshots", def: strconv.Itoa(defaultSnapshotThresh),
			field: func(c *Config) any { return &c.RaftSnapshotThreshold }},
		{key: "raft_snapshot_interval", kind: kindDuration, arg: "DURATION", usage: "how often Raft checks whether to snapshot", def: d(defaultSnapshotInterval),
			field: func(c *Config) any { return &c.RaftSnapshotInterval }},
		{key: "raft_log_store", arg: "STORE", usage: "Raft log store of a new data dir: boltdb (raft-boltdb, the default) or wal (raft-wal: one fsync per append, faster writes; docs/operations.md); an existing data dir keeps its own", def: defaultRaftLogStore,
			field: func(c *Config) any { return &c.RaftLogStore }},
		{key: "max_body_bytes", kind: kindBytes, arg: "BYTES", usage: "largest admin API request body, 1KiB..64MiB (plain bytes, or a KiB/MiB suffix)", def: "1MiB",
			field: func(c *Config) any { return &c.MaxBodyBytes }},
		{key: "apply_timeout", kind: kindDuration, arg: "DURATION", usage: "bound on waiting for a Raft write", def: d(defaultApplyTimeout),
			field: func(c *Config) any { return &c.ApplyTimeout }},
		{key: "autopilot_stabilization_time", kind: kindDuration, arg: "DURATION", usage: "how long a new server must be healthy (alive, caught up) before the leader makes it a voter", def: d(defaultStabilization),
			field: func(c *Config) any { return &c.AutopilotStabilizationTime }},
		{key: "autopilot_dead_server_grace", kind: kindDuration, arg: "DURATION", usage: "how long a server must be failed before the leader removes it from Raft", def: d(defaultDeadServerGrace),
			field: func(c *Config) any { return &c.AutopilotDeadServerGrace }},
		{key: "autopilot_min_quorum", kind: kindInt, arg: "N", usage: "the leader never removes a failed voter when fewer voters would remain (0: the largest bootstrap_expect of the servers)", def: "bootstrap_expect",
			field: func(c *Config) any { return &c.AutopilotMinQuorum }},
		// DNS interface (docs/dns.md).
		{key: "dns_addr", arg: "HOST:PORT", usage: "DNS interface listen address, UDP and TCP; off disables it", def: "--bind address, port " + strconv.Itoa(defaultDNSPort),
			field: func(c *Config) any { return &c.DNSAddr }},
		{key: "dns_domain", arg: "DOMAIN", usage: "DNS zone served: NAME.service.DOMAIN, NODE.node.DOMAIN", def: defaultDNSDomain,
			field: func(c *Config) any { return &c.DNSDomain }},
		{key: "dns_service_ttl", kind: kindDuration, arg: "DURATION", usage: "TTL of DNS answers, whole seconds up to 24h", def: "0s",
			field: func(c *Config) any { return &c.DNSServiceTTL }},
		{key: "dns_only_passing", kind: kindBool, usage: "DNS answers leave out warning instances too (critical ones always)", def: "true",
			field: func(c *Config) any { return &c.DNSOnlyPassing }},
		{key: "dns_recursor", kind: kindList, arg: "HOST[:PORT]", usage: "DNS server (port 53 if omitted) that answers names outside the domain, tried in order; repeatable; none: such names are REFUSED; NEXUS_DNS_RECURSOR and YAML take a list",
			field: func(c *Config) any { return &c.DNSRecursors }, item: normalizeRecursor},
		// Security (docs/security.md).
		{key: "trusted_hosts", kind: kindList, arg: "HOST[:PORT]", usage: "Host header values the admin API accepts (a name without a port matches any port); empty = any; repeatable; NEXUS_TRUSTED_HOSTS and YAML take a list. The node's own http_addr is always accepted",
			field: func(c *Config) any { return &c.TrustedHosts }, item: normalizeTrustedHost},
		{key: "admin_rate_limit", kind: kindFloat, arg: "RPS", usage: "per-client-IP request rate on the admin API (requests/s); 0 = off", def: "0",
			field: func(c *Config) any { return &c.AdminRateLimit }},
		{key: "admin_rate_burst", kind: kindInt, arg: "N", usage: "burst of admin_rate_limit", def: "2 × admin_rate_limit, at least 1",
			field: func(c *Config) any { return &c.AdminRateBurst }},
		{key: "tls_cert_file", arg: "FILE", usage: "PEM certificate (chain) of the admin API; with tls_key_file the API serves HTTPS only; reloaded on SIGHUP",
			field: func(c *Config) any { return &c.TLSCertFile }},
		{key: "tls_key_file", arg: "FILE", usage: "PEM private key of tls_cert_file",
			field: func(c *Config) any { return &c.TLSKeyFile }},
		{key: "tls_client_ca_file", arg: "FILE", usage: "PEM CA bundle: the admin API then requires a client certificate signed by it (mTLS)",
			field: func(c *Config) any { return &c.TLSClientCAFile }},
		{key: "tls_ca_file", arg: "FILE", usage: "PEM CA bundle that signed the other nodes' admin API certificates (leader forwarding); default: tls_client_ca_file, else the system roots",
			field: func(c *Config) any { return &c.TLSCAFile }},
		{key: "gateway_tls_cert_file", arg: "FILE", usage: "PEM certificate (chain) of the gateway; with gateway_tls_key_file the gateway serves HTTPS only; reloaded on SIGHUP",
			field: func(c *Config) any { return &c.GatewayTLSCertFile }},
		{key: "gateway_tls_key_file", arg: "FILE", usage: "PEM private key of gateway_tls_cert_file",
			field: func(c *Config) any { return &c.GatewayTLSKeyFile }},
		{key: "gateway_tls_client_ca_file", arg: "FILE", usage: "PEM CA bundle: the gateway then requires a client certificate signed by it",
			field: func(c *Config) any { return &c.GatewayTLSClientCAFile }},
		{key: "encrypt", arg: "KEY", usage: "base64 gossip encryption key of 16, 24 or 32 bytes (AES-GCM); every member needs it. Seeds the keyring of a fresh node; DATA_DIR/gossip-keyring.json (nexus keyring) wins once it exists",
			field: func(c *Config) any { return &c.Encrypt }},
		// Access control (docs/acl.md); in the YAML file under "acl:".
		{key: "acl_enabled", section: "acl", kind: kindBool, usage: "access control on the admin API: requests need a token or JWT with the right (docs/acl.md); off by default, --dev included",
			field: func(c *Config) any { return &c.ACLEnabled }},
		{key: "acl_metrics_public", section: "acl", kind: kindBool, usage: "with ACLs on, serve /metrics without a token (else it needs cluster:read)",
			field: func(c *Config) any { return &c.ACLMetricsPublic }},
		{key: "acl_jwt_secret", section: "acl", arg: "SECRET", usage: "HS256 key, at least 32 bytes: signs the JWTs of POST /acl/login and verifies HS256 JWTs; never logged. Flags show in ps: prefer acl_jwt_secret_file or the environment",
			field: func(c *Config) any { return &c.ACLJWTSecret }},
		{key: "acl_jwt_secret_file", section: "acl", arg: "FILE", usage: "file holding acl_jwt_secret (surrounding white space ignored); instead of acl_jwt_secret",
			field: func(c *Config) any { return &c.ACLJWTSecretFile }},
		{key: "acl_jwt_expiry", section: "acl", kind: kindDuration, arg: "DURATION", usage: "lifetime of the JWTs POST /acl/login issues, 1m..24h", def: d(defaultACLJWTExpiry),
			field: func(c *Config) any { return &c.ACLJWTExpiry }},
		{key: "acl_jwt_issuer", section: "acl", arg: "ISS", usage: "iss of issued JWTs, and the iss accepted JWTs must carry", def: defaultACLJWTIssuer,
			field: func(c *Config) any { return &c.ACLJWTIssuer }},
		{key: "acl_jwt_audience", section: "acl", arg: "AUD", usage: "aud of issued JWTs, and an aud accepted JWTs must carry", def: defaultACLJWTAudience,
			field: func(c *Config) any { return &c.ACLJWTAudience }},
		{key: "acl_jwt_roles_claim", section: "acl", arg: "CLAIM", usage: "JWT claim naming the caller's Nexus roles", def: defaultACLJWTRolesClaim,
			field: func(c *Config) any { return &c.ACLJWTRolesClaim }},
		{key: "acl_jwt_public_key_files", section: "acl", kind: kindList, arg: "FILE", usage: "PEM public keys (RSA: RS256, EC P-256: ES256) of identity providers whose JWTs are accepted; repeatable; NEXUS_ACL_JWT_PUBLIC_KEY_FILES and YAML take a list",
			field: func(c *Config) any { return &c.ACLJWTPublicKeyFiles }, item: normalizeFile},
		{key: "acl_jwt_jwks_file", section: "acl", arg: "FILE", usage: "JSON Web Key Set file (RS256, ES256 keys) of identity providers whose JWTs are accepted",
			field: func(c *Config) any { return &c.ACLJWTJWKSFile }},
		{key: "acl_token_rate_limit", section: "acl", kind: kindFloat, arg: "RPS", usage: "per-token (or JWT subject) request rate on the admin API (requests/s); 0 = off", def: "0",
			field: func(c *Config) any { return &c.ACLTokenRateLimit }},
		{key: "acl_token_rate_burst", section: "acl", kind: kindInt, arg: "N", usage: "burst of acl_token_rate_limit", def: "2 × acl_token_rate_limit, at least 1",
			field: func(c *Config) any { return &c.ACLTokenRateBurst }},
	}
}

// raw is one source's value for a setting, before parsing.
type raw struct {
	s    string   // scalar value
	list []string // kindList value
	src  string   // where it came from, for errors: "--raft-port", "NEXUS_RAFT_PORT", ...
}

// layer maps setting keys to the values one source gives.
type layer map[string]raw

// apply parses r and stores it in c. Syntax errors name the setting and the
// source; range checks are left to Validate, after all sources are merged.
func (s *setting) apply(c *Config, r raw) error {
	bad := func(what string) error {
		return settingErr(s.key, "%q is not %s (from %s)", r.s, what, r.src)
	}
	v := strings.TrimSpace(r.s)
	switch p := s.field(c).(type) {
	case *string:
		*p = r.s
	case *Secret:
		*p = Secret(r.s)
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad("a boolean (true or false)")
		}
		*p = b
	case *int:
		if s.kind == kindBytes {
			n, ok := parseBytes(v)
			if !ok {
				return bad(`a byte count such as "1048576" or "1MiB"`)
			}
			*p = n
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return bad("an integer")
		}
		*p = n
	case *uint64:
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad("a non-negative integer")
		}
		*p = n
	case *time.Duration:
		dur, err := time.ParseDuration(v)
		if err != nil {
			return bad(`a duration such as "500ms" or "10s"`)
		}
		*p = dur
	case *float64:
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("a number")
		}
		*p = f
	case *[]string:
		norm := s.item
		if norm == nil {
			norm = normalizeJoin
		}
		out := make([]string, 0, len(r.list))
		for _, a := range r.list {
			n, err := norm(a)
			if err != nil {
				return settingErr(s.key, "%q %s (from %s)", a, err, r.src)
			}
			out = append(out, n)
		}
		*p = out
	default:
		panic(fmt.Sprintf("agentconfig: setting %s has unsupported type %T", s.key, p))
	}
	return nil
}

// parseBytes parses a plain byte count or one with a B, KiB, MiB or GiB
// suffix (case-insensitive).
func parseBytes(s string) (int, bool) {
	mult := int64(1)
	lower := strings.ToLower(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"b", 1}} {
		if strings.HasSuffix(lower, u.suffix) {
			s, mult = strings.TrimSpace(s[:len(s)-len(u.suffix)]), u.mult
			break
		}
	}
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > int64(math.MaxInt)/mult {
		return 0, false
	}
	return int(n * mult), true
}
