package consul

import (
	"fmt"
	"strconv"

	"github.com/nexus/nexus/registry"
)

// The JSON shapes below are Consul's (its HTTP API documentation), field
// for field for what Nexus has; fields Nexus has no data for keep Consul's
// zero values.

// weights is Consul's Weights.
type weights struct {
	Passing int
	Warning int
}

// agentService is Consul's AgentService (the Service of a ServiceEntry).
type agentService struct {
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]serviceAddress `json:",omitempty"`
	Weights           weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	Datacenter        string `json:",omitempty"`
}

type serviceAddress struct {
	Address string
	Port    int
}

// node is Consul's Node.
type node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

// healthCheck is Consul's HealthCheck.
type healthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Interval    string
	Timeout     string
	ExposedPort int
	Definition  checkDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

// checkDefinition is Consul's HealthCheckDefinition (the durations as
// Go duration strings, as Consul writes them).
type checkDefinition struct {
	HTTP                           string `json:",omitempty"`
	TCP                            string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

// serviceEntry is Consul's ServiceEntry (GET /v1/health/service/:name).
type serviceEntry struct {
	Node    node
	Service agentService
	Checks  []healthCheck
}

// catalogService is Consul's CatalogService (GET /v1/catalog/service/:name).
type catalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceID                string
	ServiceName              string
	ServiceAddress           string
	ServiceTags              []string
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceWeights           weights
	ServiceEnableTagOverride bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

// kvPair is Consul's KVPair; Value is base64 in JSON, null when empty.
type kvPair struct {
	LockIndex   uint64
	Key         string
	Flags       uint64
	Value       []byte
	Session     string `json:",omitempty"`
	CreateIndex uint64
	ModifyIndex uint64
}

// nodes indexes the cluster's members by name for the node half of the
// answers; a node gossip does not know (any more) still answers with its
// name.
type nodes struct {
	dc      string
	members map[string]Member
}

func (s *Server) nodes() nodes {
	ms := s.cluster.Members()
	n := nodes{dc: s.dc, members: make(map[string]Member, len(ms))}
	for _, m := range ms {
		n.members[m.Name] = m
	}
	return n
}

func (n nodes) node(name string) node {
	m := n.members[name]
	return node{Node: name, Address: m.Addr, Datacenter: n.dc, TaggedAddresses: map[string]string{"lan": m.Addr, "wan": m.Addr},
		Meta: map[string]string{}}
}

func weightsOf(in *registry.Instance) weights {
	if in.Weights == nil {
		return weights{Passing: 1, Warning: 1}
	}
	return weights{Passing: in.Weights.Passing, Warning: in.Weights.Warning}
}

func toAgentService(in *registry.Instance) agentService {
	return agentService{ID: in.ID, Service: in.Service, Tags: nonNil(in.Tags), Meta: nonNilMap(in.Metadata), Port: in.Port,
		Address: in.Address, Weights: weightsOf(in), CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex}
}

func toCatalogService(n nodes, in *registry.Instance) catalogService {
	nd := n.node(in.Node)
	return catalogService{ID: nd.ID, Node: nd.Node, Address: nd.Address, Datacenter: nd.Datacenter,
		TaggedAddresses: nd.TaggedAddresses, NodeMeta: nd.Meta, ServiceID: in.ID, ServiceName: in.Service,
		ServiceAddress: in.Address, ServiceTags: nonNil(in.Tags), ServiceMeta: nonNilMap(in.Metadata), ServicePort: in.Port,
		ServiceWeights: weightsOf(in), CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex}
}

// checkID is the id Consul clients use for a service's check n (0-based)
// of count: service:<id>, or service:<id>:<n+1> when there are several.
func checkID(serviceID string, n, count int) string {
	if count <= 1 {
		return "service:" + serviceID
	}
	return "service:" + serviceID + ":" + strconv.Itoa(n+1)
}

// toChecks is the health checks of an instance. An instance without a
// check is vouched for by its owner node: it shows no check and counts as
// passing, as a Consul service without checks does.
func toChecks(in *registry.Instance) []healthCheck {
	out := make([]healthCheck, 0, len(in.Checks))
	for i := range in.Checks {
		c := &in.Checks[i]
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("Service '%s' check", in.Service)
		}
		hc := healthCheck{Node: in.Node, CheckID: checkID(in.ID, i, len(in.Checks)), Name: name, Status: c.Status,
			Output: c.Output, ServiceID: in.ID, ServiceName: in.Service, ServiceTags: nonNil(in.Tags), Type: c.Kind,
			Interval: c.Interval, Timeout: c.Timeout, CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex,
			Definition: checkDefinition{HTTP: c.HTTP, TCP: c.TCP, Interval: c.Interval, Timeout: c.Timeout,
				DeregisterCriticalServiceAfter: in.DeregisterCriticalAfter}}
		if c.Kind == registry.CheckTTL {
			hc.Interval, hc.Definition.Interval = "", ""
		}
		out = append(out, hc)
	}
	if m := in.Maintenance; m != nil {
		out = append(out, maintenanceCheck(in, m))
	}
	return out
}

// maintenanceCheck is the critical check Consul shows for maintenance:
// _node_maintenance (a node check) or _service_maintenance:<id>, with the
// reason as its notes and output.
func maintenanceCheck(in *registry.Instance, m *registry.InstanceMaintenance) healthCheck {
	reason := m.Reason
	if reason == "" {
		reason = "Maintenance mode is enabled; no reason was given."
	}
	hc := healthCheck{Node: in.Node, Status: registry.StatusCritical, Notes: reason, Output: reason, Type: "maintenance",
		ServiceTags: []string{}, CreateIndex: in.CreateIndex, ModifyIndex: in.ModifyIndex}
	if m.Scope == registry.MaintNode {
		hc.CheckID, hc.Name = "_node_maintenance", "Node Maintenance Mode"
		return hc
	}
	hc.CheckID, hc.Name = "_service_maintenance:"+in.ID, "Service Maintenance Mode"
	hc.ServiceID, hc.ServiceName, hc.ServiceTags = in.ID, in.Service, nonNil(in.Tags)
	return hc
}

// passing reports whether every check of an instance passes (Consul's
// ?passing).
func passing(in *registry.Instance) bool {
	if in.Status != registry.StatusPassing {
		return false
	}
	for i := range in.Checks {
		if in.Checks[i].Status != registry.StatusPassing {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
