package agentconfig

import (
	"errors"
	"flag"
	"io/fs"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// fakeOS provides the functions Load takes, and counts the calls.
type fakeOS struct {
	env          map[string]string
	files        map[string]string
	host         string
	hostErr      error
	tmp          string
	tmpErr       error
	hostCalls    int
	tmpCalls     int
	readPaths    []string
	readFileFail error
}

func (f *fakeOS) load(args ...string) (*Config, error) {
	return Load(args,
		func(k string) string { return f.env[k] },
		func(p string) ([]byte, error) {
			f.readPaths = append(f.readPaths, p)
			if f.readFileFail != nil {
				return nil, f.readFileFail
			}
			s, ok := f.files[p]
			if !ok {
				return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
			}
			return []byte(s), nil
		},
		func() (string, error) {
			f.hostCalls++
			if f.host == "" && f.hostErr == nil {
				return "host-a", nil
			}
			return f.host, f.hostErr
		},
		func() (string, error) {
			f.tmpCalls++
			if f.tmp == "" && f.tmpErr == nil {
				return "/tmp/nexus-dev-123", nil
			}
			return f.tmp, f.tmpErr
		})
}

func mustLoad(t *testing.T, f *fakeOS, args ...string) *Config {
	t.Helper()
	c, err := f.load(args...)
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	f := &fakeOS{}
	c := mustLoad(t, f, "--data-dir", "/var/lib/nexus")
	want := &Config{
		Node:                   "host-a",
		DataDir:                "/var/lib/nexus",
		Bind:                   "127.0.0.1",
		Advertise:              "127.0.0.1",
		RaftPort:               8300,
		GossipPort:             8301,
		HTTPAddr:               "127.0.0.1:8500",
		GatewayAddr:            "127.0.0.1:8080",
		LogLevel:               "info",
		LogFormat:              "json",
		GatewaySocketIO:        "raw",
		RaftHeartbeatTimeout:   300 * time.Millisecond,
		RaftElectionTimeout:    300 * time.Millisecond,
		RaftLeaderLeaseTimeout: 300 * time.Millisecond,
		RaftCommitTimeout:      5 * time.Millisecond,
		RaftSnapshotThreshold:  8192,
		RaftSnapshotInterval:   30 * time.Second,
		RaftLogStore:           "boltdb",
		MaxBodyBytes:           1 << 20,
		ApplyTimeout:           10 * time.Second,

		AutopilotStabilizationTime: 10 * time.Second,
		AutopilotDeadServerGrace:   5 * time.Minute,
		AutopilotMinQuorum:         0, // bootstrap_expect

		DNSAddr:        "127.0.0.1:8600",
		DNSDomain:      "nexus",
		DNSOnlyPassing: true,

		ACLJWTExpiry:     time.Hour,
		ACLJWTIssuer:     "nexus",
		ACLJWTAudience:   "nexus",
		ACLJWTRolesClaim: "roles",
		Datacenter:       "dc1",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if got := c.RaftAddr(); got != "127.0.0.1:8300" {
		t.Errorf("RaftAddr = %q", got)
	}
	if got := c.GossipAddr(); got != "127.0.0.1:8301" {
		t.Errorf("GossipAddr = %q", got)
	}
	if f.tmpCalls != 0 || f.hostCalls != 1 {
		t.Errorf("tempDir calls %d (want 0), hostname calls %d (want 1)", f.tmpCalls, f.hostCalls)
	}
	if len(f.readPaths) != 0 {
		t.Errorf("read files %q without --config", f.readPaths)
	}
}

func TestDistinctHostsSamePort(t *testing.T) {
	c := mustLoad(t, &fakeOS{}, "--data-dir", "/d", "--bind", "10.0.0.1",
		"--http-addr", "127.0.0.1:8300", "--gateway-addr", "127.0.0.2:8300")
	if c.HTTPAddr != "127.0.0.1:8300" || c.GatewayAddr != "127.0.0.2:8300" {
		t.Errorf("got %+v", c)
	}
}

func TestAddrsIPv6(t *testing.T) {
	c := mustLoad(t, &fakeOS{}, "--data-dir", "/d", "--bind", "::", "--advertise", "fd00::1",
		"--http-addr", "[::1]:8500", "--gateway-addr", "[::1]:8080")
	if got := c.RaftAddr(); got != "[fd00::1]:8300" {
		t.Errorf("RaftAddr = %q", got)
	}
	if got := c.GossipAddr(); got != "[fd00::1]:8301" {
		t.Errorf("GossipAddr = %q", got)
	}
}

func TestPrecedence(t *testing.T) {
	const file = `
data_dir: /from/file
raft_port: 9100
join: [file-a, "file-b:7000"]
log_level: warn
raft_election_timeout: 800ms
max_body_bytes: 2MiB
gateway_access_log: true
node: file-node
`
	env := map[string]string{
		"NEXUS_CONFIG":                "/etc/nexus.yaml",
		"NEXUS_RAFT_PORT":             "9200",
		"NEXUS_JOIN":                  "env-a, env-b:7001",
		"NEXUS_LOG_LEVEL":             "debug",
		"NEXUS_RAFT_ELECTION_TIMEOUT": "900ms",
		"NEXUS_NODE":                  "env-node",
	}
	get := map[string]func(*Config) any{
		"data_dir":   func(c *Config) any { return c.DataDir },
		"raft_port":  func(c *Config) any { return c.RaftPort },
		"join":       func(c *Config) any { return c.Join },
		"log_level":  func(c *Config) any { return c.LogLevel },
		"election":   func(c *Config) any { return c.RaftElectionTimeout },
		"max_body":   func(c *Config) any { return c.MaxBodyBytes },
		"access_log": func(c *Config) any { return c.GatewayAccessLog },
		"node":       func(c *Config) any { return c.Node },
		"config":     func(c *Config) any { return c.ConfigFile },
	}
	tests := []struct {
		name  string
		file  bool
		env   bool
		args  []string
		wants map[string]any
	}{
		{
			name: "defaults",
			args: []string{"--data-dir", "/d"},
			wants: map[string]any{"data_dir": "/d", "raft_port": 8300, "join": []string(nil), "log_level": "info",
				"election": 300 * time.Millisecond, "max_body": 1 << 20, "access_log": false, "node": "host-a", "config": ""},
		},
		{
			name: "file over defaults",
			file: true,
			args: []string{"--config", "/etc/nexus.yaml"},
			wants: map[string]any{"data_dir": "/from/file", "raft_port": 9100, "join": []string{"file-a:8301", "file-b:7000"},
				"log_level": "warn", "election": 800 * time.Millisecond, "max_body": 2 << 20, "access_log": true,
				"node": "file-node", "config": "/etc/nexus.yaml"},
		},
		{
			name: "env over file (config path from NEXUS_CONFIG)",
			file: true, env: true,
			wants: map[string]any{"data_dir": "/from/file", "raft_port": 9200, "join": []string{"env-a:8301", "env-b:7001"},
				"log_level": "debug", "election": 900 * time.Millisecond, "max_body": 2 << 20, "access_log": true,
				"node": "env-node", "config": "/etc/nexus.yaml"},
		},
		{
			name: "flags over env over file",
			file: true, env: true,
			args: []string{"--raft-port", "9300", "--join", "flag-a", "--join", "[fd00::2]:7002", "--log-level", "error",
				"--raft-election-timeout", "1s", "--data-dir", "/from/flag", "--gateway-access-log=false", "--node", "flag-node",
				"--max-body-bytes", "4096"},
			wants: map[string]any{"data_dir": "/from/flag", "raft_port": 9300, "join": []string{"flag-a:8301", "[fd00::2]:7002"},
				"log_level": "error", "election": time.Second, "max_body": 4096, "access_log": false,
				"node": "flag-node", "config": "/etc/nexus.yaml"},
		},
		{
			name: "flags not given do not override",
			file: true, env: true,
			args: []string{"--log-format", "text"},
			wants: map[string]any{"raft_port": 9200, "join": []string{"env-a:8301", "env-b:7001"}, "log_level": "debug",
				"election": 900 * time.Millisecond, "node": "env-node"},
		},
		{
			name: "env over defaults without file",
			env:  true,
			args: []string{"--data-dir", "/d", "--config", ""},
			wants: map[string]any{"raft_port": 9200, "log_level": "debug", "election": 900 * time.Millisecond,
				"max_body": 1 << 20, "node": "env-node", "config": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeOS{files: map[string]string{}, env: map[string]string{}}
			if tt.file {
				f.files["/etc/nexus.yaml"] = file
			}
			if tt.env {
				for k, v := range env {
					f.env[k] = v
				}
			}
			c := mustLoad(t, f, tt.args...)
			keys := make([]string, 0, len(tt.wants))
			for k := range tt.wants {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				if got := get[k](c); !reflect.DeepEqual(got, tt.wants[k]) {
					t.Errorf("%s = %#v, want %#v", k, got, tt.wants[k])
				}
			}
		})
	}
}

func TestConfigPathFlagOverridesEnv(t *testing.T) {
	f := &fakeOS{
		env:   map[string]string{"NEXUS_CONFIG": "/env.yaml"},
		files: map[string]string{"/env.yaml": "data_dir: /env\n", "/flag.yaml": "data_dir: /flag\n"},
	}
	c := mustLoad(t, f, "--config", "/flag.yaml")
	if c.DataDir != "/flag" || c.ConfigFile != "/flag.yaml" {
		t.Errorf("DataDir %q ConfigFile %q, want /flag from /flag.yaml", c.DataDir, c.ConfigFile)
	}
	if !reflect.DeepEqual(f.readPaths, []string{"/flag.yaml"}) {
		t.Errorf("read %q, want only /flag.yaml", f.readPaths)
	}
}

func TestEmptyAndNullFile(t *testing.T) {
	for _, content := range []string{"", "# only a comment\n", "---\n", "data_dir:\n", "~\n"} {
		f := &fakeOS{files: map[string]string{"/c.yaml": content}}
		c := mustLoad(t, f, "--config", "/c.yaml", "--data-dir", "/d")
		if c.RaftPort != 8300 || c.DataDir != "/d" {
			t.Errorf("file %q: RaftPort %d DataDir %q", content, c.RaftPort, c.DataDir)
		}
	}
}

func TestFileNullLeavesLowerLayer(t *testing.T) {
	// "key:" with no value is "not set": the default stays.
	f := &fakeOS{files: map[string]string{"/c.yaml": "data_dir: /d\nraft_port:\njoin:\n"}}
	c := mustLoad(t, f, "--config", "/c.yaml")
	if c.RaftPort != 8300 || c.Join != nil {
		t.Errorf("RaftPort %d Join %q", c.RaftPort, c.Join)
	}
}

func TestFileAllKeys(t *testing.T) {
	const file = `
dev: false
node: n1
datacenter: east-1
data_dir: /data
bind: 10.0.0.1
advertise: 10.0.0.2
raft_port: 7300
gossip_port: 7301
http_addr: 0.0.0.0:7500
gateway_addr: ":7080"
bootstrap_expect: 3
join: 10.0.0.3
postgres_url: postgres://u:p@db:5432/nexus
gateway_access_log: true
gateway_socket_io: Plain
log_level: WARN
log_format: text
enable_debug: true
raft_heartbeat_timeout: 1s
raft_election_timeout: 2s
raft_leader_lease_timeout: 500ms
raft_commit_timeout: 10ms
raft_snapshot_threshold: 100
raft_snapshot_interval: 1m
raft_log_store: WAL
max_body_bytes: 65536
apply_timeout: 3s
autopilot_stabilization_time: 2s
autopilot_dead_server_grace: 90s
autopilot_min_quorum: 2
dns_addr: 10.0.0.1:53
dns_domain: Consul.
dns_service_ttl: 10s
dns_only_passing: false
dns_recursor: [10.0.0.53, "[fd00::53]:5353"]
acl:
  enabled: true
  metrics_public: true
  jwt_secret_file: /etc/nexus/jwt.key
  jwt_expiry: 30m
  jwt_issuer: iss
  jwt_audience: aud
  jwt_roles_claim: groups
  jwt_public_key_files: [/k1.pem, /k2.pem]
  jwt_jwks_file: /jwks.json
  token_rate_limit: 4
  token_rate_burst: 6
`
	c := mustLoad(t, &fakeOS{files: map[string]string{"/c.yaml": file}}, "--config", "/c.yaml")
	want := &Config{
		Node: "n1", Datacenter: "east-1", DataDir: "/data", Bind: "10.0.0.1", Advertise: "10.0.0.2", RaftPort: 7300, GossipPort: 7301,
		HTTPAddr: "0.0.0.0:7500", GatewayAddr: ":7080", BootstrapExpect: 3, Join: []string{"10.0.0.3:8301"},
		ConfigFile: "/c.yaml", PostgresURL: "postgres://u:p@db:5432/nexus", GatewayAccessLog: true, GatewaySocketIO: "plain",
		LogLevel: "warn", LogFormat: "text", EnableDebug: true, RaftHeartbeatTimeout: time.Second, RaftElectionTimeout: 2 * time.Second,
		RaftLeaderLeaseTimeout: 500 * time.Millisecond, RaftCommitTimeout: 10 * time.Millisecond,
		RaftSnapshotThreshold: 100, RaftSnapshotInterval: time.Minute, RaftLogStore: "wal", MaxBodyBytes: 65536, ApplyTimeout: 3 * time.Second,
		AutopilotStabilizationTime: 2 * time.Second, AutopilotDeadServerGrace: 90 * time.Second, AutopilotMinQuorum: 2,
		DNSAddr: "10.0.0.1:53", DNSDomain: "consul", DNSServiceTTL: 10 * time.Second, DNSRecursors: []string{"10.0.0.53:53", "[fd00::53]:5353"},
		ACLEnabled: true, ACLMetricsPublic: true, ACLJWTSecretFile: "/etc/nexus/jwt.key", ACLJWTExpiry: 30 * time.Minute,
		ACLJWTIssuer: "iss", ACLJWTAudience: "aud", ACLJWTRolesClaim: "groups", ACLJWTPublicKeyFiles: []string{"/k1.pem", "/k2.pem"},
		ACLJWTJWKSFile: "/jwks.json", ACLTokenRateLimit: 4, ACLTokenRateBurst: 6,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("\n got %+v\nwant %+v", c, want)
	}
	if c.RaftAddr() != "10.0.0.2:7300" || c.GossipAddr() != "10.0.0.2:7301" {
		t.Errorf("RaftAddr %q GossipAddr %q", c.RaftAddr(), c.GossipAddr())
	}
}

func TestEnvAllKinds(t *testing.T) {
	f := &fakeOS{env: map[string]string{
		"NEXUS_DEV":                     "true",
		"NEXUS_DATA_DIR":                "/env",
		"NEXUS_BOOTSTRAP_EXPECT":        "3",
		"NEXUS_JOIN":                    "a,,b:9, ",
		"NEXUS_POSTGRES_URL":            "postgres://x",
		"DATABASE_URL":                  "postgres://must-not-be-read",
		"NEXUS_GATEWAY_ACCESS_LOG":      "1",
		"NEXUS_RAFT_SNAPSHOT_THRESHOLD": "10",
		"NEXUS_MAX_BODY_BYTES":          "64KiB",
		"NEXUS_APPLY_TIMEOUT":           "2s",

		"NEXUS_AUTOPILOT_STABILIZATION_TIME": "1500ms",
		"NEXUS_AUTOPILOT_DEAD_SERVER_GRACE":  "1m",
		"NEXUS_AUTOPILOT_MIN_QUORUM":         "5",
	}}
	c := mustLoad(t, f)
	if !c.Dev || c.DataDir != "/env" || c.BootstrapExpect != 3 || !reflect.DeepEqual(c.Join, []string{"a:8301", "b:9"}) ||
		c.PostgresURL != "postgres://x" || !c.GatewayAccessLog || c.RaftSnapshotThreshold != 10 ||
		c.MaxBodyBytes != 64<<10 || c.ApplyTimeout != 2*time.Second ||
		c.AutopilotStabilizationTime != 1500*time.Millisecond || c.AutopilotDeadServerGrace != time.Minute || c.AutopilotMinQuorum != 5 {
		t.Errorf("got %+v", c)
	}
	if f.tmpCalls != 0 {
		t.Errorf("tempDir called with a data dir set")
	}
}

func TestPostgresURLNotFromDatabaseURL(t *testing.T) {
	c := mustLoad(t, &fakeOS{env: map[string]string{"DATABASE_URL": "postgres://x"}}, "--data-dir", "/d")
	if c.PostgresURL != "" {
		t.Errorf("PostgresURL = %q, want empty (DATABASE_URL is not read)", c.PostgresURL)
	}
}

func TestDev(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		files    map[string]string
		args     []string
		check    func(c *Config) bool
		tmpCalls int
	}{
		{
			name: "flag only",
			args: []string{"--dev"},
			check: func(c *Config) bool {
				return c.Dev && c.Node == "dev" && c.DataDir == "/tmp/nexus-dev-123" && c.BootstrapExpect == 1 &&
					c.Bind == "127.0.0.1" && c.Advertise == "127.0.0.1" && c.HTTPAddr == "127.0.0.1:8500" &&
					c.GatewayAddr == "127.0.0.1:8080"
			},
			tmpCalls: 1,
		},
		{
			name:     "env NEXUS_DEV=true",
			env:      map[string]string{"NEXUS_DEV": "true"},
			check:    func(c *Config) bool { return c.Dev && c.Node == "dev" && c.BootstrapExpect == 1 },
			tmpCalls: 1,
		},
		{
			name:     "yaml dev: true",
			files:    map[string]string{"/c.yaml": "dev: true\n"},
			args:     []string{"--config=/c.yaml"},
			check:    func(c *Config) bool { return c.Dev && c.DataDir == "/tmp/nexus-dev-123" },
			tmpCalls: 1,
		},
		{
			name: "explicit settings win",
			args: []string{"--dev", "--node", "me", "--data-dir", "/mine", "--bootstrap-expect", "3", "--bind", "10.1.1.1",
				"--http-addr", "0.0.0.0:9500", "--gateway-addr", "0.0.0.0:9080"},
			check: func(c *Config) bool {
				return c.Node == "me" && c.DataDir == "/mine" && c.BootstrapExpect == 3 && c.Bind == "10.1.1.1" &&
					c.Advertise == "10.1.1.1" && c.HTTPAddr == "0.0.0.0:9500" && c.GatewayAddr == "0.0.0.0:9080"
			},
		},
		{
			name:     "node from env wins over dev default",
			env:      map[string]string{"NEXUS_NODE": "envnode"},
			args:     []string{"--dev"},
			check:    func(c *Config) bool { return c.Node == "envnode" },
			tmpCalls: 1,
		},
		{
			name:     "wildcard bind advertises loopback",
			args:     []string{"--dev", "--bind", "0.0.0.0"},
			check:    func(c *Config) bool { return c.Bind == "0.0.0.0" && c.Advertise == "127.0.0.1" },
			tmpCalls: 1,
		},
		{
			name:     "--dev=false is not dev",
			args:     []string{"--dev=false", "--data-dir", "/d"},
			check:    func(c *Config) bool { return !c.Dev && c.Node == "host-a" && c.BootstrapExpect == 0 },
			tmpCalls: 0,
		},
		{
			name:     "flag --dev=false overrides NEXUS_DEV",
			env:      map[string]string{"NEXUS_DEV": "true", "NEXUS_DATA_DIR": "/d"},
			args:     []string{"--dev=false"},
			check:    func(c *Config) bool { return !c.Dev },
			tmpCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeOS{env: tt.env, files: tt.files}
			c := mustLoad(t, f, tt.args...)
			if !tt.check(c) {
				t.Errorf("unexpected config %+v", c)
			}
			if f.tmpCalls != tt.tmpCalls {
				t.Errorf("tempDir called %d times, want %d", f.tmpCalls, tt.tmpCalls)
			}
			if c.Dev && f.hostCalls != 0 {
				t.Errorf("hostname called in dev mode")
			}
		})
	}
}

func TestDevTempDirErrors(t *testing.T) {
	_, err := (&fakeOS{tmpErr: errors.New("disk full")}).load("--dev")
	wantSettingErr(t, err, "data_dir", "disk full")

	// tempDir is not called when another setting is bad: no stray dir.
	f := &fakeOS{}
	_, err = f.load("--dev", "--raft-port", "0")
	wantSettingErr(t, err, "raft_port", `"0" is out of range 1..65535`)
	if f.tmpCalls != 0 {
		t.Errorf("tempDir called %d times before a validation error", f.tmpCalls)
	}
}

func TestHostname(t *testing.T) {
	_, err := (&fakeOS{hostErr: errors.New("no uts")}).load("--data-dir", "/d")
	wantSettingErr(t, err, "node", "set --node")

	_, err = (&fakeOS{host: "bad host!"}).load("--data-dir", "/d")
	wantSettingErr(t, err, "node", "host name")

	// hostname is not consulted when the node is named.
	f := &fakeOS{hostErr: errors.New("no uts")}
	mustLoad(t, f, "--data-dir", "/d", "--node", "n1")
	if f.hostCalls != 0 {
		t.Errorf("hostname called with --node given")
	}
}

// wantSettingErr checks err is a one-line *SettingError for setting whose
// message contains substr.
func wantSettingErr(t *testing.T, err error, setting, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want one for %s", setting)
	}
	var se *SettingError
	if !errors.As(err, &se) {
		t.Fatalf("error %q (%T) is not a *SettingError", err, err)
	}
	msg := err.Error()
	if se.Setting != setting {
		t.Errorf("error %q names setting %q, want %q", msg, se.Setting, setting)
	}
	if !strings.HasPrefix(msg, "invalid setting "+setting+": ") {
		t.Errorf("error %q does not start with %q", msg, "invalid setting "+setting+": ")
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.Contains(msg, substr) {
		t.Errorf("error %q does not contain %q", msg, substr)
	}
}

func TestValidationErrors(t *testing.T) {
	base := []string{"--data-dir", "/d"}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		setting string
		substr  string
	}{
		{"node empty", []string{"--node", ""}, nil, "node", "required"},
		{"node bad char", []string{"--node", "a b"}, nil, "node", `"a b" must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`},
		{"node leading dash", []string{"--node", "-a"}, nil, "node", "must match"},
		{"node too long", []string{"--node", strings.Repeat("a", 65)}, nil, "node", "must match"},
		{"data_dir required", []string{"--node", "n"}, map[string]string{"NEXUS_DATA_DIR": ""}, "data_dir", "required unless --dev"},
		{"datacenter bad char", []string{"--datacenter", "dc.1"}, nil, "datacenter", `"dc.1" must be 1..64 of [A-Za-z0-9_-]`},
		{"datacenter empty", []string{"--datacenter="}, nil, "datacenter", "must be 1..64"},
		{"bind not ip", []string{"--bind", "localhost"}, nil, "bind", `"localhost" is not an IP address`},
		{"advertise not ip", []string{"--advertise", "host"}, nil, "advertise", `"host" is not an IP address`},
		{"advertise unspecified", []string{"--advertise", "0.0.0.0"}, nil, "advertise", "unspecified"},
		{"advertise inherits unspecified bind", []string{"--bind", "0.0.0.0"}, nil, "advertise", "set --advertise"},
		{"advertise v6 unspecified", []string{"--bind", "::"}, nil, "advertise", "unspecified"},
		{"raft port high", []string{"--raft-port", "70000"}, nil, "raft_port", `"70000" is out of range 1..65535`},
		{"raft port zero", []string{"--raft-port", "0"}, nil, "raft_port", "out of range"},
		{"gossip port negative", []string{"--gossip-port", "-1"}, nil, "gossip_port", `"-1" is out of range 1..65535`},
		{"raft equals gossip", []string{"--raft-port", "8301"}, nil, "gossip_port", "must differ"},
		{"http addr no port", []string{"--http-addr", "127.0.0.1"}, nil, "http_addr", "not HOST:PORT"},
		{"http addr port name", []string{"--http-addr", "127.0.0.1:http"}, nil, "http_addr", "1..65535"},
		{"http addr port range", []string{"--http-addr", "127.0.0.1:65536"}, nil, "http_addr", "1..65535"},
		{"http addr bad host", []string{"--http-addr", "bad host:80"}, nil, "http_addr", "not an IP address or host name"},
		{"gateway addr port zero", []string{"--gateway-addr", "127.0.0.1:0"}, nil, "gateway_addr", "1..65535"},
		{"gateway equals http", []string{"--gateway-addr", "127.0.0.1:8500"}, nil, "gateway_addr", "http_addr"},
		{"gateway wildcard collides with http", []string{"--gateway-addr", ":8500"}, nil, "gateway_addr", "http_addr"},
		{"same host name", []string{"--http-addr", "localhost:9000", "--gateway-addr", "LOCALHOST:9000"}, nil, "gateway_addr", "http_addr"},
		{"http collides with raft", []string{"--http-addr", "0.0.0.0:8300"}, nil, "http_addr", "raft_port"},
		{"gateway collides with gossip", []string{"--gateway-addr", "127.0.0.1:8301"}, nil, "gateway_addr", "gossip_port"},
		{"bootstrap negative", []string{"--bootstrap-expect", "-1"}, nil, "bootstrap_expect", `"-1" must be >= 0`},
		{"join bad port", []string{"--join", "a:0"}, nil, "join", `"a:0"`},
		{"join empty", []string{"--join", ""}, nil, "join", "empty"},
		{"join bad host", []string{"--join", "a b"}, nil, "join", `"a b"`},
		{"log level", []string{"--log-level", "verbose"}, nil, "log_level", `"verbose" is not one of debug, info, warn, error`},
		{"log format", []string{"--log-format", "xml"}, nil, "log_format", `"xml" is not one of json, text`},
		{"gateway socket io", []string{"--gateway-socket-io", "fast"}, nil, "gateway_socket_io", `"fast" is not one of raw, plain`},
		{"heartbeat zero", []string{"--raft-heartbeat-timeout", "0s"}, nil, "raft_heartbeat_timeout", "must be positive"},
		{"heartbeat low", []string{"--raft-heartbeat-timeout", "10ms"}, nil, "raft_heartbeat_timeout", `"10ms" must be at least 50ms`},
		{"election negative", []string{"--raft-election-timeout", "-1s"}, nil, "raft_election_timeout", "must be positive"},
		{"election low", []string{"--raft-election-timeout", "49ms"}, nil, "raft_election_timeout", "at least 50ms"},
		{"election below heartbeat", []string{"--raft-heartbeat-timeout", "1s"}, nil, "raft_election_timeout", "raft_heartbeat_timeout"},
		{"lease zero", []string{"--raft-leader-lease-timeout", "0s"}, nil, "raft_leader_lease_timeout", "must be positive"},
		{"lease above heartbeat", []string{"--raft-leader-lease-timeout", "600ms"}, nil, "raft_leader_lease_timeout", "must not exceed raft_heartbeat_timeout"},
		{"lease above a lowered heartbeat", []string{"--raft-heartbeat-timeout", "200ms", "--raft-leader-lease-timeout", "300ms"}, nil, "raft_leader_lease_timeout", "must not exceed raft_heartbeat_timeout"},
		{"read replica bootstraps", []string{"--non-voter", "--bootstrap-expect", "3"}, nil, "non_voter", "never bootstraps"},
		{"read replica dev", []string{"--non-voter", "--dev"}, nil, "non_voter", "never bootstraps"},
		{"commit zero", []string{"--raft-commit-timeout", "0s"}, nil, "raft_commit_timeout", "must be positive"},
		{"commit above heartbeat", []string{"--raft-commit-timeout", "501ms"}, nil, "raft_commit_timeout", "must not exceed raft_heartbeat_timeout"},
		{"snapshot threshold zero", []string{"--raft-snapshot-threshold", "0"}, nil, "raft_snapshot_threshold", "at least 1"},
		{"snapshot interval zero", []string{"--raft-snapshot-interval", "0s"}, nil, "raft_snapshot_interval", "must be positive"},
		{"unknown log store", []string{"--raft-log-store", "rocksdb"}, nil, "raft_log_store", "rocksdb"},
		{"max body low", []string{"--max-body-bytes", "1023"}, nil, "max_body_bytes", `"1023" is out of range 1024..67108864`},
		{"max body high", []string{"--max-body-bytes", "65MiB"}, nil, "max_body_bytes", "out of range"},
		{"apply timeout zero", []string{"--apply-timeout", "0s"}, nil, "apply_timeout", "must be positive"},
		{"apply timeout from env", nil, map[string]string{"NEXUS_APPLY_TIMEOUT": "-5s"}, "apply_timeout", "must be positive"},
		{"stabilization zero", []string{"--autopilot-stabilization-time", "0s"}, nil, "autopilot_stabilization_time", `"0s" must be positive`},
		{"stabilization not a duration", []string{"--autopilot-stabilization-time", "10"}, nil, "autopilot_stabilization_time", "not a duration"},
		{"grace negative", []string{"--autopilot-dead-server-grace", "-1m"}, nil, "autopilot_dead_server_grace", "must be positive"},
		{"grace from env", nil, map[string]string{"NEXUS_AUTOPILOT_DEAD_SERVER_GRACE": "0s"}, "autopilot_dead_server_grace", "must be positive"},
		{"min quorum negative", []string{"--autopilot-min-quorum", "-1"}, nil, "autopilot_min_quorum", `"-1" must be >= 0`},
		{"min quorum not a number", []string{"--autopilot-min-quorum", "three"}, nil, "autopilot_min_quorum", "not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeOS{env: tt.env}
			args := append(append([]string(nil), base...), tt.args...)
			if tt.setting == "data_dir" {
				args = tt.args
			}
			c, err := f.load(args...)
			if err == nil {
				t.Fatalf("no error, config %+v", c)
			}
			wantSettingErr(t, err, tt.setting, tt.substr)
		})
	}
}

func TestErrorExactText(t *testing.T) {
	_, err := (&fakeOS{}).load("--data-dir", "/d", "--raft-port", "70000")
	if got, want := err.Error(), `invalid setting raft_port: "70000" is out of range 1..65535`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	_, err = (&fakeOS{}).load()
	if got, want := err.Error(), `invalid setting data_dir: required unless --dev`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	e := &SettingError{Setting: "x", Reason: "a\nb"}
	if got := e.Error(); got != "invalid setting x: a b" {
		t.Errorf("multi-line reason not folded: %q", got)
	}
}

func TestBadEnvValues(t *testing.T) {
	tests := []struct {
		key, value, setting, substr string
	}{
		{"NEXUS_RAFT_PORT", "abc", "raft_port", `"abc" is not an integer (from NEXUS_RAFT_PORT)`},
		{"NEXUS_GOSSIP_PORT", "1.5", "gossip_port", "NEXUS_GOSSIP_PORT"},
		{"NEXUS_BOOTSTRAP_EXPECT", "three", "bootstrap_expect", "NEXUS_BOOTSTRAP_EXPECT"},
		{"NEXUS_DEV", "yes please", "dev", "not a boolean"},
		{"NEXUS_GATEWAY_ACCESS_LOG", "on", "gateway_access_log", "NEXUS_GATEWAY_ACCESS_LOG"},
		{"NEXUS_RAFT_HEARTBEAT_TIMEOUT", "500", "raft_heartbeat_timeout", "not a duration"},
		{"NEXUS_RAFT_SNAPSHOT_THRESHOLD", "-1", "raft_snapshot_threshold", "non-negative integer"},
		{"NEXUS_RAFT_SNAPSHOT_INTERVAL", "soon", "raft_snapshot_interval", "NEXUS_RAFT_SNAPSHOT_INTERVAL"},
		{"NEXUS_MAX_BODY_BYTES", "1MB", "max_body_bytes", "not a byte count"},
		{"NEXUS_MAX_BODY_BYTES", "lots", "max_body_bytes", "NEXUS_MAX_BODY_BYTES"},
		{"NEXUS_APPLY_TIMEOUT", "10", "apply_timeout", "NEXUS_APPLY_TIMEOUT"},
		{"NEXUS_JOIN", "good,bad:port", "join", `"bad:port"`},
		{"NEXUS_BIND", "example.com", "bind", "not an IP address"},
		{"NEXUS_LOG_LEVEL", "trace", "log_level", "not one of"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := (&fakeOS{env: map[string]string{tt.key: tt.value}}).load("--data-dir", "/d")
			wantSettingErr(t, err, tt.setting, tt.substr)
		})
	}
}

func TestBadValueInOverriddenLayerStillFails(t *testing.T) {
	// A malformed value is an error wherever it is, even if a flag overrides it.
	_, err := (&fakeOS{env: map[string]string{"NEXUS_RAFT_PORT": "abc"}}).load("--data-dir", "/d", "--raft-port", "9000")
	wantSettingErr(t, err, "raft_port", "NEXUS_RAFT_PORT")
}

func TestBadFlagValues(t *testing.T) {
	tests := []struct {
		args            []string
		setting, substr string
	}{
		{[]string{"--raft-port", "abc"}, "raft_port", `"abc" is not an integer (from --raft-port)`},
		{[]string{"--dev=maybe"}, "dev", "(from --dev)"},
		{[]string{"--raft-commit-timeout", "fast"}, "raft_commit_timeout", "--raft-commit-timeout"},
		{[]string{"--max-body-bytes", "-5"}, "max_body_bytes", "not a byte count"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := (&fakeOS{}).load(append([]string{"--data-dir", "/d"}, tt.args...)...)
			wantSettingErr(t, err, tt.setting, tt.substr)
		})
	}
}

func TestFileErrors(t *testing.T) {
	tests := []struct {
		name            string
		content         string
		setting, substr string
	}{
		{"unknown key", "data_dir: /d\nraft_prot: 1\n", "raft_prot", "unknown key in config file /c.yaml line 2"},
		{"dashed key suggests underscore", "data-dir: /d\n", "data-dir", `did you mean "data_dir"?`},
		{"config key not allowed in file", "config: /other.yaml\n", "config", "unknown key"},
		{"malformed yaml", "data_dir: /d\n  raft_port: : 1\n", "config", "not valid YAML"},
		{"tab indentation", "data_dir:\n\t- x\n", "config", "not valid YAML"},
		{"not a mapping", "- a\n- b\n", "config", "mapping of settings"},
		{"duplicate key", "data_dir: /a\ndata_dir: /b\n", "data_dir", "given twice in config file /c.yaml (lines 1 and 2)"},
		{"two documents", "data_dir: /a\n---\ndata_dir: /b\n", "config", "more than one YAML document"},
		{"int as list", "data_dir: /d\nraft_port: [1, 2]\n", "raft_port", "expected a single value, got a list"},
		{"string as mapping", "data_dir: /d\nnode: {a: b}\n", "node", "got a mapping"},
		{"bad int", "data_dir: /d\nraft_port: abc\n", "raft_port", `"abc" is not an integer (from config file /c.yaml line 2)`},
		{"bad bool", "data_dir: /d\ndev: yes\n", "dev", "not a boolean"},
		{"int duration", "data_dir: /d\nraft_commit_timeout: 5\n", "raft_commit_timeout", "not a duration"},
		{"float port", "data_dir: /d\ngossip_port: 8301.5\n", "gossip_port", "not an integer"},
		{"join mapping", "data_dir: /d\njoin: {a: b}\n", "join", "expected a list"},
		{"join nested list", "data_dir: /d\njoin: [[a]]\n", "join", "list items"},
		{"join null item", "data_dir: /d\njoin: [a, ~]\n", "join", "list items"},
		{"join bad entry", "data_dir: /d\njoin: [a, 'b:99999']\n", "join", `"b:99999"`},
		{"range checked after merge", "data_dir: /d\nraft_port: 70000\n", "raft_port", `"70000" is out of range 1..65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&fakeOS{files: map[string]string{"/c.yaml": tt.content}}).load("--config", "/c.yaml")
			wantSettingErr(t, err, tt.setting, tt.substr)
		})
	}
}

func TestFileReadError(t *testing.T) {
	_, err := (&fakeOS{}).load("--config", "/missing.yaml", "--data-dir", "/d")
	wantSettingErr(t, err, "config", "/missing.yaml")
	if !strings.Contains(err.Error(), "not exist") {
		t.Errorf("error %q does not say why", err)
	}
	_, err = (&fakeOS{env: map[string]string{"NEXUS_CONFIG": "/missing.yaml"}}).load("--data-dir", "/d")
	wantSettingErr(t, err, "config", "/missing.yaml")
}

func TestFileAliasAndQuoted(t *testing.T) {
	const file = `
base: &port 9400
data_dir: /d
`
	// "base" is unknown: aliases are fine, unknown keys are not.
	_, err := (&fakeOS{files: map[string]string{"/c.yaml": file}}).load("--config", "/c.yaml")
	wantSettingErr(t, err, "base", "unknown key")

	const ok = `
data_dir: &d /data
bind: &ip 10.0.0.7
advertise: *ip
node: "007"
raft_port: "9400"
join: "x, y:1"
`
	c := mustLoad(t, &fakeOS{files: map[string]string{"/c.yaml": ok}}, "--config", "/c.yaml")
	if c.Node != "007" || c.RaftPort != 9400 || c.Advertise != "10.0.0.7" || !reflect.DeepEqual(c.Join, []string{"x:8301", "y:1"}) {
		t.Errorf("got %+v", c)
	}
}

func TestJoinNormalization(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "10.0.0.1", want: "10.0.0.1:8301"},
		{in: "10.0.0.1:7000", want: "10.0.0.1:7000"},
		{in: "node-2", want: "node-2:8301"},
		{in: "node-2.example.com:8301", want: "node-2.example.com:8301"},
		{in: "nexus_1", want: "nexus_1:8301"},
		{in: " 10.0.0.1 ", want: "10.0.0.1:8301"},
		{in: "fd00::1", want: "[fd00::1]:8301"},
		{in: "[fd00::1]", want: "[fd00::1]:8301"},
		{in: "[fd00::1]:7000", want: "[fd00::1]:7000"},
		{in: "[fd00:0::1]:7000", want: "[fd00::1]:7000"},
		{in: "host.", want: "host.:8301"},
		{in: "", bad: true},
		{in: "host:", bad: true},
		{in: ":8301", bad: true},
		{in: "host:0", bad: true},
		{in: "host:65536", bad: true},
		{in: "host:+80", bad: true},
		{in: "host:http", bad: true},
		{in: "a:b:c", bad: true},
		{in: "[host]", bad: true},
		{in: "[10.0.0.1]", bad: true},
		{in: "0.0.0.0", bad: true},
		{in: "[::]:8301", bad: true},
		{in: "1.2.3.400", bad: true},
		{in: "-host", bad: true},
		{in: "a..b", bad: true},
		{in: "a b", bad: true},
		{in: "http://host", bad: true},
		{in: strings.Repeat("a", 64), bad: true},
	}
	for _, tt := range tests {
		got, err := normalizeJoin(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("normalizeJoin(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("normalizeJoin(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}

	// Through Load: flags repeat, in order.
	c := mustLoad(t, &fakeOS{}, "--data-dir", "/d", "--join", "a", "--join=b:1", "--join", "fd00::2")
	if want := []string{"a:8301", "b:1", "[fd00::2]:8301"}; !reflect.DeepEqual(c.Join, want) {
		t.Errorf("Join = %q, want %q", c.Join, want)
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		t.Run(arg, func(t *testing.T) {
			f := &fakeOS{}
			c, err := f.load("--data-dir", "/d", arg)
			if !errors.Is(err, flag.ErrHelp) || c != nil {
				t.Fatalf("Load(%s) = %v, %v; want an error wrapping flag.ErrHelp", arg, c, err)
			}
			if f.hostCalls+f.tmpCalls+len(f.readPaths) != 0 {
				t.Errorf("help touched the environment")
			}
		})
	}
	u := Usage()
	for _, s := range settingsTable() {
		for _, want := range []string{"--" + s.flagName(), "$" + s.envName()} {
			if !strings.Contains(u, want) {
				t.Errorf("Usage() lacks %q", want)
			}
		}
	}
	for _, want := range []string{"Usage: nexus agent", "(default 8300)", "(default 127.0.0.1:8500)", "--join HOST[:PORT]", "(default 300ms)"} {
		if !strings.Contains(u, want) {
			t.Errorf("Usage() lacks %q:\n%s", want, u)
		}
	}
}

func TestFlagSyntaxErrors(t *testing.T) {
	_, err := (&fakeOS{}).load("--data-dir", "/d", "--bogus")
	wantSettingErr(t, err, "bogus", "unknown flag --bogus")

	_, err = (&fakeOS{}).load("--data_dir", "/d")
	wantSettingErr(t, err, "data_dir", "did you mean --data-dir?")

	_, err = (&fakeOS{}).load("--data-dir", "/d", "--node")
	wantSettingErr(t, err, "node", "needs a value")

	_, err = (&fakeOS{}).load("--data-dir", "/d", "extra")
	if err == nil || !strings.Contains(err.Error(), `unexpected argument "extra"`) || strings.Contains(err.Error(), "\n") {
		t.Errorf("positional argument: err = %v", err)
	}
}

func TestFileSettingsMatchTable(t *testing.T) {
	var f fileSettings
	nodes := f.nodes()
	var got []string
	for k := range nodes {
		got = append(got, k)
	}
	var want []string
	for _, s := range settingsTable() {
		if !s.notFile {
			want = append(want, s.key)
			// The YAML path (acl.enabled for section acl) is where the
			// node sits in fileSettings.
			if n, ok := nodes[s.key]; ok && n.path != s.fileKey() {
				t.Errorf("setting %s: fileSettings path %q, table path %q", s.key, n.path, s.fileKey())
			}
		}
		if s.section != "" && !strings.HasPrefix(s.key, s.section+"_") {
			t.Errorf("setting %s of section %s lacks the prefix %s_", s.key, s.section, s.section)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fileSettings keys %q\n    table keys %q", got, want)
	}
	// Every nested mapping is known to the decoder error mapping.
	if secs := sectionTypes(); secs["agentconfig.fileACL"] != "acl" || len(secs) != 1 {
		t.Errorf("sectionTypes() = %v", secs)
	}
	// Every setting can be applied from a string without panicking.
	for _, s := range settingsTable() {
		c := defaults()
		_ = s.apply(c, raw{s: "1", list: []string{"a"}, src: "test"})
	}
}

func TestValidateDirect(t *testing.T) {
	c := defaults()
	c.Node, c.DataDir, c.Advertise = "n1", "/d", "127.0.0.1"
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	c.Join = []string{"ok", "bad:0"}
	wantSettingErr(t, c.Validate(), "join", `"bad:0"`)
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"1024", 1024, true}, {"1KiB", 1024, true}, {"1kib", 1024, true}, {"64MiB", 64 << 20, true},
		{"1 MiB", 1 << 20, true}, {"2048B", 2048, true}, {"1GiB", 1 << 30, true},
		{"", 0, false}, {"KiB", 0, false}, {"1.5MiB", 0, false}, {"-1", 0, false}, {"1MB", 0, false},
		{"99999999999999999999", 0, false}, {"9999999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseBytes(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNilFuncsFallBack(t *testing.T) {
	c, err := Load([]string{"--data-dir", "/d", "--node", "n1"}, nil, nil, nil, nil)
	if err != nil || c.Node != "n1" {
		t.Fatalf("Load with nil funcs: %v, %v", c, err)
	}
}

// autopilot_min_quorum defaults to bootstrap_expect, whichever source set
// that, and an explicit value (0 included) wins.
func TestAutopilotMinQuorumDefault(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		file string
		args []string
		want int
	}{
		{name: "no bootstrap_expect", args: []string{"--data-dir", "/d"}, want: 0},
		{name: "from bootstrap_expect flag", args: []string{"--data-dir", "/d", "--bootstrap-expect", "5"}, want: 5},
		{name: "from bootstrap_expect env", env: map[string]string{"NEXUS_BOOTSTRAP_EXPECT": "3"}, args: []string{"--data-dir", "/d"}, want: 3},
		{name: "from bootstrap_expect yaml", file: "bootstrap_expect: 7\n", args: []string{"--data-dir", "/d"}, want: 7},
		{name: "dev bootstraps alone", args: []string{"--dev"}, want: 1},
		{name: "explicit wins", args: []string{"--data-dir", "/d", "--bootstrap-expect", "5", "--autopilot-min-quorum", "3"}, want: 3},
		{name: "explicit zero wins", args: []string{"--data-dir", "/d", "--bootstrap-expect", "5", "--autopilot-min-quorum", "0"}, want: 0},
		{name: "yaml explicit, flag expect", file: "autopilot_min_quorum: 2\n", args: []string{"--data-dir", "/d", "--bootstrap-expect", "5"}, want: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeOS{env: tt.env}
			args := tt.args
			if tt.file != "" {
				f.files = map[string]string{"/c.yaml": tt.file}
				args = append([]string{"--config", "/c.yaml"}, args...)
			}
			c := mustLoad(t, f, args...)
			if c.AutopilotMinQuorum != tt.want {
				t.Errorf("AutopilotMinQuorum = %d, want %d", c.AutopilotMinQuorum, tt.want)
			}
		})
	}
}

// TestLeaseFollowsALowerHeartbeat: the lease defaults to 300ms but never
// above the heartbeat timeout, so lowering the heartbeat alone is valid.
func TestLeaseFollowsALowerHeartbeat(t *testing.T) {
	cases := []struct {
		args  []string
		lease time.Duration
	}{
		{nil, 300 * time.Millisecond},
		{[]string{"--raft-heartbeat-timeout", "200ms", "--raft-election-timeout", "200ms"}, 200 * time.Millisecond},
		{[]string{"--raft-heartbeat-timeout", "1s", "--raft-election-timeout", "1s"}, 300 * time.Millisecond},
		{[]string{"--raft-heartbeat-timeout", "200ms", "--raft-election-timeout", "200ms", "--raft-leader-lease-timeout", "100ms"}, 100 * time.Millisecond},
	}
	for _, c := range cases {
		got := mustLoad(t, &fakeOS{}, append([]string{"--data-dir", "/d"}, c.args...)...)
		if got.RaftLeaderLeaseTimeout != c.lease {
			t.Errorf("%v: lease %v, want %v", c.args, got.RaftLeaderLeaseTimeout, c.lease)
		}
	}
}
