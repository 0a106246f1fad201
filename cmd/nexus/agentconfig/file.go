package agentconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileSettings is the shape of the YAML file. Every field is a yaml.Node so
// that the decoder only checks the keys (KnownFields) and each value is then
// parsed by the same code as environment and flag values, with errors
// naming the key. A field of struct type is a nested mapping whose keys
// are settings of that section: ACL.Enabled, YAML "acl: {enabled: ...}",
// is the setting acl_enabled. The tags must match settingsTable (tested).
type fileSettings struct {
	Dev                    yaml.Node `yaml:"dev"`
	Node                   yaml.Node `yaml:"node"`
	DataDir                yaml.Node `yaml:"data_dir"`
	Datacenter             yaml.Node `yaml:"datacenter"`
	Bind                   yaml.Node `yaml:"bind"`
	Advertise              yaml.Node `yaml:"advertise"`
	RaftPort               yaml.Node `yaml:"raft_port"`
	GossipPort             yaml.Node `yaml:"gossip_port"`
	HTTPAddr               yaml.Node `yaml:"http_addr"`
	GatewayAddr            yaml.Node `yaml:"gateway_addr"`
	BootstrapExpect        yaml.Node `yaml:"bootstrap_expect"`
	NonVoter               yaml.Node `yaml:"non_voter"`
	Join                   yaml.Node `yaml:"join"`
	PostgresURL            yaml.Node `yaml:"postgres_url"`
	GatewayAccessLog       yaml.Node `yaml:"gateway_access_log"`
	GatewaySocketIO        yaml.Node `yaml:"gateway_socket_io"`
	LogLevel               yaml.Node `yaml:"log_level"`
	LogFormat              yaml.Node `yaml:"log_format"`
	EnableDebug            yaml.Node `yaml:"enable_debug"`
	RaftHeartbeatTimeout   yaml.Node `yaml:"raft_heartbeat_timeout"`
	RaftElectionTimeout    yaml.Node `yaml:"raft_election_timeout"`
	RaftLeaderLeaseTimeout yaml.Node `yaml:"raft_leader_lease_timeout"`
	RaftCommitTimeout      yaml.Node `yaml:"raft_commit_timeout"`
	RaftSnapshotThreshold  yaml.Node `yaml:"raft_snapshot_threshold"`
	RaftSnapshotInterval   yaml.Node `yaml:"raft_snapshot_interval"`
	RaftLogStore           yaml.Node `yaml:"raft_log_store"`
	MaxBodyBytes           yaml.Node `yaml:"max_body_bytes"`
	ApplyTimeout           yaml.Node `yaml:"apply_timeout"`

	AutopilotStabilizationTime yaml.Node `yaml:"autopilot_stabilization_time"`
	AutopilotDeadServerGrace   yaml.Node `yaml:"autopilot_dead_server_grace"`
	AutopilotMinQuorum         yaml.Node `yaml:"autopilot_min_quorum"`

	DNSAddr        yaml.Node `yaml:"dns_addr"`
	DNSDomain      yaml.Node `yaml:"dns_domain"`
	DNSServiceTTL  yaml.Node `yaml:"dns_service_ttl"`
	DNSOnlyPassing yaml.Node `yaml:"dns_only_passing"`
	DNSRecursor    yaml.Node `yaml:"dns_recursor"`

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

	ACL fileACL `yaml:"acl"`
}

// fileACL is the "acl:" mapping: settings acl_<key>.
type fileACL struct {
	Enabled           yaml.Node `yaml:"enabled"`
	MetricsPublic     yaml.Node `yaml:"metrics_public"`
	JWTSecret         yaml.Node `yaml:"jwt_secret"`
	JWTSecretFile     yaml.Node `yaml:"jwt_secret_file"`
	JWTExpiry         yaml.Node `yaml:"jwt_expiry"`
	JWTIssuer         yaml.Node `yaml:"jwt_issuer"`
	JWTAudience       yaml.Node `yaml:"jwt_audience"`
	JWTRolesClaim     yaml.Node `yaml:"jwt_roles_claim"`
	JWTPublicKeyFiles yaml.Node `yaml:"jwt_public_key_files"`
	JWTJWKSFile       yaml.Node `yaml:"jwt_jwks_file"`
	TokenRateLimit    yaml.Node `yaml:"token_rate_limit"`
	TokenRateBurst    yaml.Node `yaml:"token_rate_burst"`
}

// fileNode is the node of one setting in the YAML file and its dotted
// path there ("raft_port", "acl.enabled").
type fileNode struct {
	path string
	node *yaml.Node
}

// nodes returns the nodes of f by setting key: a field of a nested struct
// tagged "acl" with tag "enabled" is the setting acl_enabled, path
// acl.enabled.
func (f *fileSettings) nodes() map[string]fileNode {
	m := make(map[string]fileNode)
	var walk func(v reflect.Value, key, path string)
	walk = func(v reflect.Value, key, path string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("yaml")
			fv := v.Field(i)
			if n, ok := fv.Addr().Interface().(*yaml.Node); ok {
				m[key+tag] = fileNode{path: path + tag, node: n}
				continue
			}
			walk(fv, key+tag+"_", path+tag+".")
		}
	}
	walk(reflect.ValueOf(f).Elem(), "", "")
	return m
}

// sectionTypes maps the Go type of each nested mapping of fileSettings
// ("agentconfig.fileACL") to its YAML key ("acl"), for decoder errors.
func sectionTypes() map[string]string {
	m := make(map[string]string)
	t := reflect.TypeOf(fileSettings{})
	for i := 0; i < t.NumField(); i++ {
		if f := t.Field(i); f.Type != reflect.TypeOf(yaml.Node{}) {
			m[f.Type.String()] = f.Tag.Get("yaml")
		}
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
		return nil, fileError(table, path, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, settingErr("config", "config file %q holds more than one YAML document", path)
	} else if !errors.Is(err, io.EOF) {
		return nil, fileError(table, path, data, err)
	}

	l := make(layer)
	nodes := f.nodes()
	for i := range table {
		s := &table[i]
		fn, ok := nodes[s.key]
		if !ok || fn.node.Kind == 0 {
			continue
		}
		n := fn.node
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
			continue // "key:" with no value leaves the setting unset
		}
		src := fmt.Sprintf("config file %s line %d", path, n.Line)
		if fn.path != s.key {
			src += ", " + fn.path
		}
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
					return nil, settingErr(s.key, "list items must be %s strings (from config file %s line %d)", s.arg, path, item.Line)
				}
				r.list = append(r.list, item.Value)
			}
		case s.kind == kindList:
			return nil, settingErr(s.key, "expected a list of %s strings, got %s (from %s)", s.arg, kindName(n), src)
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
// the setting, with its path in nested mappings ("acl.enabeld"); anything
// else is reported against "config".
func fileError(table []setting, path string, data []byte, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		re := regexp.MustCompile(`^line (\d+): field (.+) not found in type `)
		dup := regexp.MustCompile(`^line (\d+): mapping key "(.+)" already defined at line (\d+)$`)
		notMap := regexp.MustCompile(`^line (\d+): cannot unmarshal (!!\w+).* into (\S+)$`)
		sections := sectionTypes()
		for _, msg := range te.Errors {
			if m := dup.FindStringSubmatch(msg); m != nil {
				line, _ := strconv.Atoi(m[1])
				return settingErr(keyPath(data, line, m[2]), "given twice in config file %s (lines %s and %s)", path, m[3], m[1])
			}
			if m := notMap.FindStringSubmatch(msg); m != nil && sections[m[3]] != "" {
				sec := sections[m[3]]
				return settingErr(sec, "expected a mapping of %s settings such as \"%s: {enabled: true}\", got %s (from config file %s line %s)",
					sec, sec, strings.TrimPrefix(m[2], "!!"), path, m[1])
			}
			m := re.FindStringSubmatch(msg)
			if m == nil {
				continue
			}
			line, _ := strconv.Atoi(m[1])
			key := keyPath(data, line, m[2])
			reason := fmt.Sprintf("unknown key in config file %s line %s", path, m[1])
			alt := strings.ReplaceAll(strings.ToLower(key), "-", "_")
			for i := range table {
				s := &table[i]
				switch {
				case s.notFile:
				case s.fileKey() == alt && alt != key:
					reason += fmt.Sprintf("; did you mean %q?", alt)
				case s.section != "" && s.key == alt:
					// A flat acl_enabled at the top: the file nests it.
					reason += fmt.Sprintf("; did you mean %q (%s under %s:)?", s.fileKey(), strings.TrimPrefix(s.fileKey(), s.section+"."), s.section)
				}
			}
			return &SettingError{Setting: key, Reason: reason}
		}
		msg := oneLine(te.Errors[0])
		msg = strings.ReplaceAll(msg, "agentconfig.fileSettings", "a mapping of settings")
		for typ, sec := range sections {
			msg = strings.ReplaceAll(msg, typ, "a mapping of "+sec+" settings")
		}
		return settingErr("config", "config file %s: %s", path, msg)
	}
	msg := strings.TrimPrefix(oneLine(err.Error()), "yaml: ")
	return settingErr("config", "config file %s is not valid YAML: %s", path, msg)
}

// keyPath returns the dotted path ("acl.enabled") of the mapping key named
// key on line of the YAML document data, or key itself when there is no
// such key or it is at the top.
func keyPath(data []byte, line int, key string) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return key
	}
	var walk func(n *yaml.Node, prefix string) (string, bool)
	walk = func(n *yaml.Node, prefix string) (string, bool) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p, ok := walk(c, prefix); ok {
					return p, true
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Line == line && k.Value == key {
					return prefix + key, true
				}
				if v.Kind == yaml.MappingNode {
					if p, ok := walk(v, prefix+k.Value+"."); ok {
						return p, true
					}
				}
			}
		}
		return "", false
	}
	if p, ok := walk(&root, ""); ok {
		return p
	}
	return key
}
