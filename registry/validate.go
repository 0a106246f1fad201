package registry

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits of user input.
const (
	MaxConfigKeyLen   = 512
	MaxConfigValueLen = 512 << 10
	MaxTags           = 64
	MaxMetadata       = 64
	maxRetries        = 10
)

var (
	namePattern    = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$`)
	keyPattern     = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,512}$`)
	hostPattern    = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*(:[0-9]{1,5})?$`)
	methodPattern  = regexp.MustCompile(`^[A-Z]{1,20}$`)
	headerNameRule = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]{1,128}$`)
)

// ValidName reports whether s is a valid service name or type.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// CheckRequest is the check of a registration as the API takes it.
type CheckRequest struct {
	TTL      string `json:"ttl"`
	HTTP     string `json:"http"`
	TCP      string `json:"tcp"`
	Interval string `json:"interval"`
	Timeout  string `json:"timeout"`
}

// RegisterRequest is the body of POST /services/register.
type RegisterRequest struct {
	Name                    string            `json:"name"`
	Type                    string            `json:"type"`
	Address                 string            `json:"address"`
	Port                    int               `json:"port"`
	ID                      string            `json:"id"`
	Tags                    []string          `json:"tags"`
	Metadata                map[string]string `json:"metadata"`
	DependsOn               []string          `json:"depends_on"`
	Check                   *CheckRequest     `json:"check"`
	DeregisterCriticalAfter string            `json:"deregister_critical_after"`
}

// Instance validates the request and returns the instance to register, owned
// by node. The error names the first offending field.
func (r *RegisterRequest) Instance(node string) (Instance, *Error) {
	var zero Instance
	if r.Name == "" {
		return zero, invalid("name", "is required")
	}
	if !namePattern.MatchString(r.Name) {
		return zero, invalid("name", "%q must match [a-z0-9][a-z0-9._-]{0,62}", r.Name)
	}
	if r.Type == "" {
		return zero, invalid("type", "is required")
	}
	if !namePattern.MatchString(r.Type) {
		return zero, invalid("type", "%q must match [a-z0-9][a-z0-9._-]{0,62}", r.Type)
	}
	if r.Address == "" {
		return zero, invalid("address", "is required")
	}
	if !validAddress(r.Address) {
		return zero, invalid("address", "%q is not an IP address or host name", r.Address)
	}
	if r.Port < 1 || r.Port > 65535 {
		return zero, invalid("port", "%d is out of range 1..65535", r.Port)
	}
	id := r.ID
	if id == "" {
		id = fmt.Sprintf("%s-%s-%d", r.Name, r.Address, r.Port)
	}
	if !idPattern.MatchString(id) {
		return zero, invalid("id", "%q must match [A-Za-z0-9][A-Za-z0-9._:-]{0,255}", id)
	}
	if len(r.Tags) > MaxTags {
		return zero, invalid("tags", "at most %d tags", MaxTags)
	}
	for _, t := range r.Tags {
		if t == "" || len(t) > 128 {
			return zero, invalid("tags", "tag %q must be 1..128 bytes", t)
		}
	}
	if len(r.Metadata) > MaxMetadata {
		return zero, invalid("metadata", "at most %d keys", MaxMetadata)
	}
	for k, v := range r.Metadata {
		if k == "" || len(k) > 128 || len(v) > 1024 {
			return zero, invalid("metadata", "key %q: keys 1..128 bytes, values up to 1024 bytes", k)
		}
	}
	for _, d := range r.DependsOn {
		if !namePattern.MatchString(d) {
			return zero, invalid("depends_on", "%q is not a valid service name", d)
		}
	}
	in := Instance{
		ID: id, Service: r.Name, Type: r.Type, Address: r.Address, Port: r.Port,
		Tags: sortedCopy(r.Tags), Metadata: r.Metadata, Node: node, Status: StatusPassing,
		DependsOn: sortedCopy(r.DependsOn), Checks: []Check{},
	}
	if in.Tags == nil {
		in.Tags = []string{}
	}
	if in.DependsOn == nil {
		in.DependsOn = []string{}
	}
	if in.Metadata == nil {
		in.Metadata = map[string]string{}
	}
	if r.DeregisterCriticalAfter != "" {
		if _, e := positiveDuration("deregister_critical_after", r.DeregisterCriticalAfter); e != nil {
			return zero, e
		}
		in.DeregisterCriticalAfter = r.DeregisterCriticalAfter
	}
	if r.Check != nil {
		c, e := r.Check.check()
		if e != nil {
			return zero, e
		}
		// As in Consul, an instance with a check is critical until its check
		// first passes (a TTL check: until the first heartbeat), so that no
		// traffic goes to an instance nobody has looked at yet.
		c.Status = StatusCritical
		c.Output = "awaiting the first check result"
		in.Checks = []Check{c}
		in.Status = StatusCritical
	}
	return in, nil
}

func (c *CheckRequest) check() (Check, *Error) {
	kinds := 0
	for _, s := range []string{c.TTL, c.HTTP, c.TCP} {
		if s != "" {
			kinds++
		}
	}
	if kinds != 1 {
		return Check{}, invalid("check", "exactly one of ttl, http, tcp is required")
	}
	switch {
	case c.TTL != "":
		if _, e := positiveDuration("check.ttl", c.TTL); e != nil {
			return Check{}, e
		}
		return Check{Kind: CheckTTL, TTL: c.TTL}, nil
	case c.HTTP != "":
		u, err := url.Parse(c.HTTP)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Check{}, invalid("check.http", "%q is not an http(s) URL", c.HTTP)
		}
	case c.TCP != "":
		host, port, err := net.SplitHostPort(c.TCP)
		p, perr := strconv.Atoi(port)
		if err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
			return Check{}, invalid("check.tcp", "%q is not host:port", c.TCP)
		}
	}
	out := Check{Kind: CheckHTTP, HTTP: c.HTTP, TCP: c.TCP, Interval: c.Interval, Timeout: c.Timeout}
	if c.TCP != "" {
		out.Kind = CheckTCP
	}
	if out.Interval == "" {
		out.Interval = "10s"
	}
	if out.Timeout == "" {
		out.Timeout = "5s"
	}
	if _, e := positiveDuration("check.interval", out.Interval); e != nil {
		return Check{}, e
	}
	if _, e := positiveDuration("check.timeout", out.Timeout); e != nil {
		return Check{}, e
	}
	return out, nil
}

func validAddress(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	return len(s) <= 253 && hostPattern.MatchString(s) && !strings.HasPrefix(s, "*.") && !strings.Contains(s, ":")
}

func positiveDuration(field, s string) (time.Duration, *Error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid(field, "%q is not a duration like 10s or 1m", s)
	}
	if d <= 0 {
		return 0, invalid(field, "%q must be positive", s)
	}
	return d, nil
}

func sortedCopy(in []string) []string {
	if in == nil {
		return nil
	}
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

// ValidateConfigKey checks a configuration key.
func ValidateConfigKey(field, key string) *Error {
	if key == "" {
		return invalid(field, "is required")
	}
	if len(key) > MaxConfigKeyLen {
		return invalid(field, "is %d bytes, at most %d", len(key), MaxConfigKeyLen)
	}
	if !keyPattern.MatchString(key) || strings.HasPrefix(key, "/") {
		return invalid(field, "%q must be [A-Za-z0-9._/-] without a leading /", key)
	}
	return nil
}

// ValidateConfigValue checks a configuration value (already valid JSON).
func ValidateConfigValue(field string, v json.RawMessage) *Error {
	if len(v) == 0 {
		return invalid(field, "is required")
	}
	if len(v) > MaxConfigValueLen {
		return invalid(field, "is %d bytes, at most %d", len(v), MaxConfigValueLen)
	}
	if !json.Valid(v) {
		return invalid(field, "is not valid JSON")
	}
	return nil
}

// ValidateConfigRawValue checks an opaque (raw) configuration value: any
// bytes, empty included, up to MaxConfigValueLen.
func ValidateConfigRawValue(field string, v []byte) *Error {
	if len(v) > MaxConfigValueLen {
		return invalid(field, "is %d bytes, at most %d", len(v), MaxConfigValueLen)
	}
	return nil
}

// Route defaults.
const (
	DefaultRouteTimeout = "30s"
	DefaultRetries      = 1
)

// NormalizeRoute validates a route and fills its defaults.
func NormalizeRoute(r Route) (Route, *Error) {
	if r.ID == "" {
		return r, invalid("id", "is required")
	}
	if !idPattern.MatchString(r.ID) {
		return r, invalid("id", "%q must match [A-Za-z0-9][A-Za-z0-9._:-]{0,255}", r.ID)
	}
	if r.Service == "" {
		return r, invalid("service", "is required")
	}
	if !namePattern.MatchString(r.Service) {
		return r, invalid("service", "%q is not a valid service name", r.Service)
	}
	if r.Hosts == nil {
		r.Hosts = []string{}
	}
	for _, h := range r.Hosts {
		if len(h) > 253 || !hostPattern.MatchString(h) {
			return r, invalid("hosts", "%q is not a host name or *.wildcard", h)
		}
	}
	if len(r.Paths) == 0 {
		r.Paths = []string{"/"}
	}
	for _, p := range r.Paths {
		if !strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " ?#\x00") {
			return r, invalid("paths", "%q must start with / and hold no spaces, ? or #", p)
		}
	}
	switch r.Match {
	case "":
		r.Match = "prefix"
	case "prefix", "exact":
	default:
		return r, invalid("match", "%q must be prefix or exact", r.Match)
	}
	if r.Methods == nil {
		r.Methods = []string{}
	}
	for i, m := range r.Methods {
		m = strings.ToUpper(m)
		if !methodPattern.MatchString(m) {
			return r, invalid("methods", "%q is not an HTTP method", r.Methods[i])
		}
		r.Methods[i] = m
	}
	switch r.LoadBalancer {
	case "":
		r.LoadBalancer = "round_robin"
	case "round_robin", "least_conn", "random", "consistent_hash":
	default:
		return r, invalid("load_balancer", "%q must be round_robin, least_conn, random or consistent_hash", r.LoadBalancer)
	}
	if r.HashOn != "" {
		if r.LoadBalancer != "consistent_hash" {
			return r, invalid("hash_on", "needs load_balancer consistent_hash")
		}
		if !validKeySpec(r.HashOn, "ip", "header:", "cookie:") {
			return r, invalid("hash_on", "%q must be ip, header:NAME or cookie:NAME", r.HashOn)
		}
	} else if r.LoadBalancer == "consistent_hash" {
		r.HashOn = "ip"
	}
	if r.Timeout == "" {
		r.Timeout = DefaultRouteTimeout
	}
	if _, e := positiveDuration("timeout", r.Timeout); e != nil {
		return r, e
	}
	if r.Retries == nil {
		n := DefaultRetries
		r.Retries = &n
	} else if *r.Retries < 0 || *r.Retries > maxRetries {
		return r, invalid("retries", "%d is out of range 0..%d", *r.Retries, maxRetries)
	}
	if rl := r.RateLimit; rl != nil {
		if rl.RPS <= 0 {
			return r, invalid("rate_limit.rps", "must be positive")
		}
		if rl.Burst < 0 {
			return r, invalid("rate_limit.burst", "must not be negative")
		}
		if rl.Burst == 0 {
			rl.Burst = int(rl.RPS + 0.999)
		}
		if rl.Key == "" {
			rl.Key = "ip"
		}
		if !validKeySpec(rl.Key, "ip", "header:", "jwt:") {
			return r, invalid("rate_limit.key", "%q must be ip, header:NAME or jwt:CLAIM", rl.Key)
		}
		switch rl.Scope {
		case "":
			rl.Scope = "node"
		case "node", "cluster":
		default:
			return r, invalid("rate_limit.scope", "%q must be node or cluster", rl.Scope)
		}
	}
	if cb := r.CircuitBreaker; cb != nil {
		if cb.ConsecutiveFailures < 1 {
			return r, invalid("circuit_breaker.consecutive_failures", "must be at least 1")
		}
		if cb.OpenFor == "" {
			cb.OpenFor = "30s"
		}
		if _, e := positiveDuration("circuit_breaker.open_for", cb.OpenFor); e != nil {
			return r, e
		}
	}
	if c := r.Cache; c != nil {
		if _, e := positiveDuration("cache.ttl", c.TTL); e != nil {
			return r, e
		}
	}
	if c := r.CORS; c != nil {
		if len(c.Origins) == 0 {
			return r, invalid("cors.origins", "at least one origin is required")
		}
		if c.MaxAge != "" {
			if _, e := positiveDuration("cors.max_age", c.MaxAge); e != nil {
				return r, e
			}
		}
	}
	if a := r.Auth; a != nil {
		if a.Type != "jwt" && a.Type != "key" {
			return r, invalid("auth.type", "%q must be jwt or key", a.Type)
		}
	}
	return r, nil
}

func validKeySpec(s, plain string, prefixes ...string) bool {
	if s == plain {
		return true
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) && headerNameRule.MatchString(s[len(p):]) {
			return true
		}
	}
	return false
}
