// Package agentconfig loads and validates the settings of `nexus agent`
// (docs/api.md, section "nexus agent").
//
// Every setting has one key, used in four places:
//
//	YAML key    raft_port        (file named by --config / NEXUS_CONFIG)
//	environment NEXUS_RAFT_PORT
//	flag        --raft-port
//	errors      invalid setting raft_port: "70000" is out of range 1..65535
//
// Precedence is defaults < YAML file < NEXUS_* environment < flags. Only flags
// actually given on the command line override. A malformed value is an error in
// whichever source it appears, even if a higher source overrides it. Every
// error except --help is one line naming the setting, normally a *SettingError.
//
// The package has no globals and touches no process state: the environment,
// the file system, the host name and the temp dir come in as functions.
package agentconfig

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config holds the merged, validated settings of `nexus agent`.
type Config struct {
	Dev             bool
	Node            string // unique node name, also the Raft server ID
	Datacenter      string // reported and accepted by the Consul-compatible API
	DataDir         string
	Bind            string // IP for Raft and gossip
	Advertise       string // IP peers use to reach this node; defaults to Bind
	RaftPort        int
	GossipPort      int
	HTTPAddr        string // admin REST API, HOST:PORT
	GatewayAddr     string // API gateway, HOST:PORT
	BootstrapExpect int
	NonVoter        bool     // a read replica: joins as a non-voter and stays one
	Join            []string // gossip addresses, normalized to HOST:PORT
	ConfigFile      string   // the YAML file read, if any
	PostgresURL     string   // audit archive; empty = off

	GatewayAccessLog bool
	GatewaySocketIO  string // raw|plain: how the gateway makes socket reads and writes
	LogLevel         string // debug|info|warn|error
	LogFormat        string // json|text
	EnableDebug      bool   // /debug/pprof/ on the admin API without ACLs

	// Raft tuning: defaults chosen for fast failover on a LAN
	// (docs/benchmarks.md, "Failover timings").
	RaftHeartbeatTimeout   time.Duration
	RaftElectionTimeout    time.Duration
	RaftLeaderLeaseTimeout time.Duration
	RaftCommitTimeout      time.Duration
	RaftSnapshotThreshold  uint64
	RaftSnapshotInterval   time.Duration
	RaftLogStore           string // boltdb|wal: the Raft log store of a new data dir

	MaxBodyBytes int           // limit on admin API request bodies
	ApplyTimeout time.Duration // bound on waiting for a Raft write

	// Autopilot, the leader's Raft membership policy (cluster.AutopilotConfig).
	AutopilotStabilizationTime time.Duration // a new server stays healthy this long before it votes
	AutopilotDeadServerGrace   time.Duration // a failed server is removed from Raft after this long
	AutopilotMinQuorum         int           // never remove a failed voter below this many voters; default bootstrap_expect

	// DNS interface (docs/dns.md).
	DNSAddr        string        // UDP and TCP listen address HOST:PORT, or "off"; default bind:8600
	DNSDomain      string        // zone served, lower case, no trailing dot
	DNSServiceTTL  time.Duration // TTL of DNS answers, whole seconds
	DNSOnlyPassing bool          // leave warning instances out too (critical ones always are)
	DNSRecursors   []string      // HOST:PORT that answer names outside the domain; none: REFUSED

	// Security (docs/security.md).
	TrustedHosts           []string // Host header values the admin API accepts, lower case; empty = any
	AdminRateLimit         float64  // per-IP admin API requests/s; 0 = off
	AdminRateBurst         int      // burst of AdminRateLimit; derived when 0
	TLSCertFile            string   // admin API certificate; with TLSKeyFile: HTTPS only
	TLSKeyFile             string
	TLSClientCAFile        string // admin API requires client certificates from this CA
	TLSCAFile              string // CA of the other nodes' admin API certificates (forwarding)
	GatewayTLSCertFile     string // gateway certificate; with GatewayTLSKeyFile: HTTPS only
	GatewayTLSKeyFile      string
	GatewayTLSClientCAFile string // gateway requires client certificates from this CA
	Encrypt                string // base64 gossip key (16, 24 or 32 bytes)

	// Access control (docs/acl.md); YAML "acl:" mapping, flags --acl-*.
	// Off by default, --dev included; only an explicit acl_enabled turns it on.
	ACLEnabled           bool
	ACLMetricsPublic     bool          // /metrics without a token
	ACLJWTSecret         Secret        // HS256 key, at least 32 bytes; never logged
	ACLJWTSecretFile     string        // file holding the HS256 key (instead of ACLJWTSecret)
	ACLJWTExpiry         time.Duration // lifetime of the JWTs POST /acl/login issues
	ACLJWTIssuer         string
	ACLJWTAudience       string
	ACLJWTRolesClaim     string
	ACLJWTPublicKeyFiles []string // PEM public keys (RS256, ES256)
	ACLJWTJWKSFile       string   // JSON Web Key Set (RS256, ES256)
	ACLTokenRateLimit    float64  // per-token admin API requests/s; 0 = off
	ACLTokenRateBurst    int      // burst of ACLTokenRateLimit; derived when 0
}

// TLS reports whether the admin API serves HTTPS.
func (c *Config) TLS() bool { return c.TLSCertFile != "" }

// GatewayTLS reports whether the gateway serves HTTPS.
func (c *Config) GatewayTLS() bool { return c.GatewayTLSCertFile != "" }

// RaftAddr is the Raft transport address peers use: advertise:raft_port.
func (c *Config) RaftAddr() string {
	return net.JoinHostPort(c.Advertise, strconv.Itoa(c.RaftPort))
}

// GossipAddr is the memberlist address peers use: advertise:gossip_port.
func (c *Config) GossipAddr() string {
	return net.JoinHostPort(c.Advertise, strconv.Itoa(c.GossipPort))
}

// SettingError reports an invalid setting. Error() is one line:
//
//	invalid setting raft_port: "70000" is out of range 1..65535
//
// Setting is the YAML key (flag name with "_" for "-"), or for an unknown
// flag or YAML key the name as given.
type SettingError struct {
	Setting string
	Reason  string
}

func (e *SettingError) Error() string {
	return oneLine("invalid setting " + e.Setting + ": " + e.Reason)
}

func settingErr(key, format string, args ...any) *SettingError {
	return &SettingError{Setting: key, Reason: fmt.Sprintf(format, args...)}
}

// oneLine folds any line breaks so that an error stays on one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// Default values.
const (
	defaultBind             = "127.0.0.1"
	defaultRaftPort         = 8300
	defaultGossipPort       = 8301 // also the port of a --join address without one
	defaultHTTPAddr         = "127.0.0.1:8500"
	defaultGatewayAddr      = "127.0.0.1:8080"
	defaultDevNode          = "dev"
	defaultDatacenter       = "dc1"
	defaultLogLevel         = "info"
	defaultLogFormat        = "json"
	defaultGatewaySocketIO  = "raw"
	defaultHeartbeat        = 300 * time.Millisecond
	defaultElection         = 300 * time.Millisecond
	defaultLeaderLease      = 300 * time.Millisecond
	defaultCommit           = 5 * time.Millisecond
	defaultSnapshotThresh   = 8192
	defaultSnapshotInterval = 30 * time.Second
	defaultRaftLogStore     = "boltdb"
	defaultMaxBodyBytes     = 1 << 20
	defaultApplyTimeout     = 10 * time.Second
	// A server must be healthy this long before it becomes a voter.
	defaultStabilization = 10 * time.Second
	// Longer than a reboot or a restart for an upgrade, so routine restarts
	// change no membership; short enough that a cluster that lost servers
	// for good shrinks to its survivors (never below min_quorum) before a
	// further failure costs it its quorum.
	defaultDeadServerGrace = 5 * time.Minute
)

func defaults() *Config {
	return &Config{
		Bind:                   defaultBind,
		Datacenter:             defaultDatacenter,
		RaftPort:               defaultRaftPort,
		GossipPort:             defaultGossipPort,
		HTTPAddr:               defaultHTTPAddr,
		GatewayAddr:            defaultGatewayAddr,
		LogLevel:               defaultLogLevel,
		LogFormat:              defaultLogFormat,
		GatewaySocketIO:        defaultGatewaySocketIO,
		RaftHeartbeatTimeout:   defaultHeartbeat,
		RaftElectionTimeout:    defaultElection,
		RaftLeaderLeaseTimeout: defaultLeaderLease,
		RaftCommitTimeout:      defaultCommit,
		RaftSnapshotThreshold:  defaultSnapshotThresh,
		RaftSnapshotInterval:   defaultSnapshotInterval,
		RaftLogStore:           defaultRaftLogStore,
		MaxBodyBytes:           defaultMaxBodyBytes,
		ApplyTimeout:           defaultApplyTimeout,

		AutopilotStabilizationTime: defaultStabilization,
		AutopilotDeadServerGrace:   defaultDeadServerGrace,

		DNSAddr:        net.JoinHostPort(defaultBind, strconv.Itoa(defaultDNSPort)),
		DNSDomain:      defaultDNSDomain,
		DNSOnlyPassing: true,

		ACLJWTExpiry:     defaultACLJWTExpiry,
		ACLJWTIssuer:     defaultACLJWTIssuer,
		ACLJWTAudience:   defaultACLJWTAudience,
		ACLJWTRolesClaim: defaultACLJWTRolesClaim,
	}
}

// Load builds the Config with precedence defaults < YAML file (--config) <
// NEXUS_* environment < flags, then validates it.
//
// args are the arguments after `agent`. getenv reads the environment;
// readFile reads the YAML file; hostname returns the default node name
// (called only when no source names the node and --dev is off); tempDir makes
// the --dev data dir (called only for --dev without a data dir, and only once
// everything else is valid). A nil function falls back to the os package.
//
// -h/--help returns an error wrapping flag.ErrHelp; print Usage() then.
func Load(args []string, getenv func(string) string, readFile func(string) ([]byte, error),
	hostname func() (string, error), tempDir func() (string, error)) (*Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	if hostname == nil {
		hostname = os.Hostname
	}
	if tempDir == nil {
		tempDir = func() (string, error) { return os.MkdirTemp("", "nexus-dev-") }
	}

	table := settingsTable()

	flagLayer, err := parseFlags(table, args)
	if err != nil {
		return nil, err
	}
	envLayer := readEnv(table, getenv)

	var fileLayer layer
	path := envLayer["config"].s
	if r, ok := flagLayer["config"]; ok {
		path = r.s
	}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return nil, settingErr("config", "cannot read config file: %v", err)
		}
		if fileLayer, err = parseFile(table, path, data); err != nil {
			return nil, err
		}
	}

	c := defaults()
	set := make(map[string]bool)
	for _, l := range []layer{fileLayer, envLayer, flagLayer} {
		for i := range table {
			s := &table[i]
			r, ok := l[s.key]
			if !ok {
				continue
			}
			if err := s.apply(c, r); err != nil {
				return nil, err
			}
			set[s.key] = true
		}
	}
	c.ConfigFile = path

	// Derived defaults.
	if c.Dev {
		if !set["bind"] {
			c.Bind = defaultBind
		}
		if !set["http_addr"] {
			c.HTTPAddr = defaultHTTPAddr
		}
		if !set["gateway_addr"] {
			c.GatewayAddr = defaultGatewayAddr
		}
		if c.BootstrapExpect == 0 {
			c.BootstrapExpect = 1
		}
		// ACLs stay off, as everywhere by default; an explicit
		// acl_enabled from any source turns them on (docs/acl.md).
	}
	if c.AdminRateBurst == 0 && c.AdminRateLimit > 0 {
		c.AdminRateBurst = max(1, int(math.Ceil(2*c.AdminRateLimit)))
	}
	if c.ACLTokenRateBurst == 0 && c.ACLTokenRateLimit > 0 {
		c.ACLTokenRateBurst = max(1, int(math.Ceil(2*c.ACLTokenRateLimit)))
	}
	if !set["dns_addr"] {
		c.DNSAddr = net.JoinHostPort(c.Bind, strconv.Itoa(defaultDNSPort))
	}
	if !set["autopilot_min_quorum"] {
		c.AutopilotMinQuorum = c.BootstrapExpect
	}
	// The lease defaults to the heartbeat timeout (300ms), never above it:
	// a shorter heartbeat set alone brings the lease down with it.
	if !set["raft_leader_lease_timeout"] && c.RaftLeaderLeaseTimeout > c.RaftHeartbeatTimeout {
		c.RaftLeaderLeaseTimeout = c.RaftHeartbeatTimeout
	}
	if !set["advertise"] {
		c.Advertise = c.Bind
		if c.Dev && isUnspecified(c.Bind) {
			c.Advertise = defaultBind
		}
	}
	nodeFromHost := false
	if !set["node"] {
		if c.Dev {
			c.Node = defaultDevNode
		} else {
			h, err := hostname()
			if err != nil {
				return nil, settingErr("node", "not set and the host name is unknown (%v); set --node", err)
			}
			c.Node, nodeFromHost = h, true
		}
	}

	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.GatewaySocketIO = strings.ToLower(strings.TrimSpace(c.GatewaySocketIO))
	c.RaftLogStore = strings.ToLower(strings.TrimSpace(c.RaftLogStore))

	if err := c.Validate(); err != nil {
		var se *SettingError
		if errors.As(err, &se) {
			switch {
			case se.Setting == "node" && nodeFromHost:
				se.Reason += " (the host name is the default); set --node"
			case se.Setting == "advertise" && !set["advertise"]:
				se.Reason += " (taken from bind); set --advertise"
			}
		}
		return nil, err
	}

	// Only now, with everything else valid, make the dev data dir.
	if c.Dev && c.DataDir == "" {
		dir, err := tempDir()
		if err != nil {
			return nil, settingErr("data_dir", "cannot create a temp dir for --dev: %v", err)
		}
		if dir == "" {
			return nil, settingErr("data_dir", "the temp dir for --dev has an empty name")
		}
		c.DataDir = dir
	}
	return c, nil
}

// parseFlags parses args into the flag layer: only flags given on the command
// line (fs.Visit). Values are checked later, with the other layers.
func parseFlags(table []setting, args []string) (layer, error) {
	fs, values := newFlagSet(table)
	if err := fs.Parse(args); err != nil {
		return nil, flagError(table, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("nexus agent: unexpected argument %q (agent takes only flags; see --help)", fs.Arg(0))
	}
	l := make(layer)
	fs.Visit(func(f *flag.Flag) {
		v := values[f.Name]
		r := raw{src: "--" + f.Name}
		if v.s.kind == kindList {
			r.list = append([]string(nil), v.vals...)
		} else {
			r.s = v.vals[len(v.vals)-1]
		}
		l[v.s.key] = r
	})
	return l, nil
}

func newFlagSet(table []setting) (*flag.FlagSet, map[string]*flagValue) {
	fs := flag.NewFlagSet("nexus agent", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make(map[string]*flagValue, len(table))
	for i := range table {
		s := &table[i]
		v := &flagValue{s: s}
		values[s.flagName()] = v
		fs.Var(v, s.flagName(), s.usage)
	}
	return fs, values
}

// flagValue records the raw strings given for one flag.
type flagValue struct {
	s    *setting
	vals []string
}

func (v *flagValue) String() string {
	if v == nil || len(v.vals) == 0 {
		return ""
	}
	return strings.Join(v.vals, ",")
}

func (v *flagValue) Set(x string) error {
	if v.s.kind != kindList {
		v.vals = v.vals[:0]
	}
	v.vals = append(v.vals, x)
	return nil
}

func (v *flagValue) IsBoolFlag() bool { return v != nil && v.s != nil && v.s.kind == kindBool }

// flagError turns a flag package error into a one-line error naming the flag.
func flagError(table []setting, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return fmt.Errorf("nexus agent: %w", flag.ErrHelp)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		reason := "unknown flag --" + name
		alt := strings.ReplaceAll(strings.ToLower(name), "_", "-")
		for i := range table {
			if table[i].flagName() == alt {
				reason += "; did you mean --" + alt + "?"
			}
		}
		return &SettingError{Setting: name, Reason: reason}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		name = strings.TrimLeft(name, "-")
		return &SettingError{Setting: strings.ReplaceAll(name, "-", "_"), Reason: "flag --" + name + " needs a value"}
	}
	return errors.New("nexus agent: " + oneLine(msg))
}

// readEnv reads NEXUS_<KEY> for every setting; empty means unset.
func readEnv(table []setting, getenv func(string) string) layer {
	l := make(layer)
	for i := range table {
		s := &table[i]
		name := s.envName()
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		r := raw{s: v, src: name}
		if s.kind == kindList {
			r.s = ""
			for _, part := range strings.Split(v, ",") {
				if part = strings.TrimSpace(part); part != "" {
					r.list = append(r.list, part)
				}
			}
		}
		l[s.key] = r
	}
	return l
}

func isUnspecified(ip string) bool {
	p := net.ParseIP(ip)
	return p != nil && p.IsUnspecified()
}
