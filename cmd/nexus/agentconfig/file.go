package agentconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileSettings is the shape of the YAML file. Every field is a yaml.Node so
// that the decoder only checks the keys (KnownFields) and each value is then
// parsed by the same code as environment and flag values, with errors
// naming the key. The tags must match settingsTable (tested).
type fileSettings struct {
	Dev                    yaml.Node `yaml:"dev"`
	Node                   yaml.Node `yaml:"node"`
	DataDir                yaml.Node `yaml:"data_dir"`
	Bind                   yaml.Node `yaml:"bind"`
	Advertise              yaml.Node `yaml:"advertise"`
	RaftPort               yaml.Node `yaml:"raft_port"`
	GossipPort             yaml.Node `yaml:"gossip_port"`
	HTTPAddr               yaml.Node `yaml:"http_addr"`
	GatewayAddr            yaml.Node `yaml:"gateway_addr"`
	BootstrapExpect        yaml.Node `yaml:"bootstrap_expect"`
	Join                   yaml.Node `yaml:"join"`
	PostgresURL            yaml.Node `yaml:"postgres_url"`
	GatewayAccessLog       yaml.Node `yaml:"gateway_access_log"`
	LogLevel               yaml.Node `yaml:"log_level"`
	LogFormat              yaml.Node `yaml:"log_format"`
	RaftHeartbeatTimeout   yaml.Node `yaml:"raft_heartbeat_timeout"`
	RaftElectionTimeout    yaml.Node `yaml:"raft_election_timeout"`
	RaftLeaderLeaseTimeout yaml.Node `yaml:"raft_leader_lease_timeout"`
	RaftCommitTimeout      yaml.Node `yaml:"raft_commit_timeout"`
	RaftSnapshotThreshold  yaml.Node `yaml:"raft_snapshot_threshold"`
	RaftSnapshotInterval   yaml.Node `yaml:"raft_snapshot_interval"`
	MaxBodyBytes           yaml.Node `yaml:"max_body_bytes"`
	ApplyTimeout           yaml.Node `yaml:"apply_timeout"`

	AutopilotStabilizationTime yaml.Node `yaml:"autopilot_stabilization_time"`
	AutopilotDeadServerGrace   yaml.Node `yaml:"autopilot_dead_server_grace"`
	AutopilotMinQuorum         yaml.Node `yaml:"autopilot_min_quorum"`

	TrustedHosts           yaml.Node `yaml:"trusted_hosts"`
	AdminRateLimit         yaml.Node `yaml:"admin_rate_limit"`
	AdminRateBurst         yaml.Node `yaml:"admin_rate_burst"`
	TLSCertFile            yaml.Node `yaml:"tls_cert_file"`
	TLSKeyFile             yaml.Node `yaml:"tls_key_file"`
	TLSClientCAFile        yaml.Node `yaml:"tls_client_ca_file"`
	TLSCAFile              yaml.Node `yaml:"tls_ca_file"`
	GatewayTLSCertFile     yaml.Node `yaml:"gateway_tls_cert_file"`
	GatewayTLSKeyFile      yaml.Node `yaml:"gateway_tls_key_file"`
	GatewayTLSClientCAFile yaml.Node `yaml:"gateway_tls_client_ca_file"`
	Encrypt                yaml.Node `yaml:"encrypt"`
}

// nodes returns the nodes of f by YAML key.
func (f *fileSettings) nodes() map[string]*yaml.Node {
	v := reflect.ValueOf(f).Elem()
	t := v.Type()
	m := make(map[string]*yaml.Node, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		m[t.Field(i).Tag.Get("yaml")] = v.Field(i).Addr().Interface().(*yaml.Node)
	}
	return m
}

func parseFile(table []setting, path string, data []byte) (layer, error) {
	var f fileSettings
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) { // empty file or only comments
			return layer{}, nil
		}
		return nil, fileError(table, path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, settingErr("config", "config file %q holds more than one YAML document", path)
	} else if !errors.Is(err, io.EOF) {
		return nil, fileError(table, path, err)
	}

	l := make(layer)
	nodes := f.nodes()
	for i := range table {
		s := &table[i]
		n, ok := nodes[s.key]
		if !ok || n.Kind == 0 {
			continue
		}
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			continue // "key:" with no value leaves the setting unset
		}
		src := fmt.Sprintf("config file %s line %d", path, n.Line)
		r := raw{src: src}
		switch {
		case n.Kind == yaml.ScalarNode && s.kind == kindList:
			for _, part := range strings.Split(n.Value, ",") {
				if part = strings.TrimSpace(part); part != "" {
					r.list = append(r.list, part)
				}
			}
		case n.Kind == yaml.ScalarNode:
			r.s = n.Value
		case n.Kind == yaml.SequenceNode && s.kind == kindList:
			for _, item := range n.Content {
				if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
					return nil, settingErr(s.key, "list items must be HOST[:PORT] strings (from config file %s line %d)", path, item.Line)
				}
				r.list = append(r.list, item.Value)
			}
		case s.kind == kindList:
			return nil, settingErr(s.key, "expected a list of HOST[:PORT] strings, got %s (from %s)", kindName(n), src)
		default:
			return nil, settingErr(s.key, "expected a single value, got %s (from %s)", kindName(n), src)
		}
		l[s.key] = r
	}
	return l, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	default:
		return "a " + n.ShortTag()
	}
}

// fileError turns a yaml.v3 error into one line. An unknown key is named as
// the setting; anything else is reported against "config".
func fileError(table []setting, path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		re := regexp.MustCompile(`^line (\d+): field (.+) not found in type `)
		dup := regexp.MustCompile(`^line (\d+): mapping key "(.+)" already defined at line (\d+)$`)
		for _, msg := range te.Errors {
			if m := dup.FindStringSubmatch(msg); m != nil {
				return settingErr(m[2], "given twice in config file %s (lines %s and %s)", path, m[3], m[1])
			}
			m := re.FindStringSubmatch(msg)
			if m == nil {
				continue
			}
			key := m[2]
			reason := fmt.Sprintf("unknown key in config file %s line %s", path, m[1])
			alt := strings.ReplaceAll(strings.ToLower(key), "-", "_")
			for i := range table {
				if table[i].key == alt && alt != key && !table[i].notFile {
					reason += fmt.Sprintf("; did you mean %q?", alt)
				}
			}
			return &SettingError{Setting: key, Reason: reason}
		}
		msg := strings.ReplaceAll(oneLine(te.Errors[0]), "agentconfig.fileSettings", "a mapping of settings")
		return settingErr("config", "config file %s: %s", path, msg)
	}
	msg := strings.TrimPrefix(oneLine(err.Error()), "yaml: ")
	return settingErr("config", "config file %s is not valid YAML: %s", path, msg)
}
