// Package registry is the domain of Nexus: the types of the service catalog, the
// configuration store and gateway routes, their validation, and the in-memory
// state store (go-memdb) that the Raft FSM mutates and every reader queries.
//
// It needs only the standard library, go-memdb and internal/jsonenc: no
// network, no Raft, no clock.
package registry

import (
	"encoding/base64"
	"encoding/json"

	"github.com/nexus/nexus/internal/jsonenc"
)

// Health statuses of an instance or a check, from best to worst.
const (
	StatusPassing  = "passing"
	StatusWarning  = "warning"
	StatusCritical = "critical"
)

// Check kinds.
const (
	CheckTTL  = "ttl"
	CheckHTTP = "http"
	CheckTCP  = "tcp"
)

// Instance is one registered instance of a service. The node that received the
// registration owns it and runs its checks.
type Instance struct {
	ID                      string            `json:"id" msgpack:"id"`
	Service                 string            `json:"service" msgpack:"service"`
	Type                    string            `json:"type" msgpack:"type"`
	Address                 string            `json:"address" msgpack:"address"`
	Port                    int               `json:"port" msgpack:"port"`
	Tags                    []string          `json:"tags" msgpack:"tags"`
	Metadata                map[string]string `json:"metadata" msgpack:"metadata"`
	Node                    string            `json:"node" msgpack:"node"`
	Status                  string            `json:"status" msgpack:"status"`
	Checks                  []Check           `json:"checks" msgpack:"checks"`
	DependsOn               []string          `json:"depends_on" msgpack:"depends_on"`
	DeregisterCriticalAfter string            `json:"deregister_critical_after,omitempty" msgpack:"dca"`
	CreateIndex             uint64            `json:"create_index" msgpack:"ci"`
	ModifyIndex             uint64            `json:"modify_index" msgpack:"mi"`
	// Weights are the instance's relative weights while passing and while
	// warning (Consul's service weights); nil is 1 and 1.
	Weights *Weights `json:"weights,omitempty" msgpack:"weights,omitempty"`
	// Maintenance is set while a maintenance record covers the instance
	// (registry/maintenance.go): Status is then critical.
	Maintenance *InstanceMaintenance `json:"maintenance,omitempty" msgpack:"maint,omitempty"`
}

// Weights of an instance for load sharing, by health status.
type Weights struct {
	Passing int `json:"passing" msgpack:"passing"`
	Warning int `json:"warning" msgpack:"warning"`
}

// Check is a health check definition plus its last observed result.
type Check struct {
	Kind     string `json:"kind" msgpack:"kind"`
	TTL      string `json:"ttl,omitempty" msgpack:"ttl"`
	HTTP     string `json:"http,omitempty" msgpack:"http"`
	TCP      string `json:"tcp,omitempty" msgpack:"tcp"`
	Interval string `json:"interval,omitempty" msgpack:"interval"`
	Timeout  string `json:"timeout,omitempty" msgpack:"timeout"`
	Status   string `json:"status" msgpack:"status"`
	Output   string `json:"output" msgpack:"output"`
	// Name is the check's display name (Consul's check Name).
	Name string `json:"name,omitempty" msgpack:"name,omitempty"`
}

// Service is the catalog record of a service name: its single type and the
// indexes of the last change to any of its instances (deletions included).
type Service struct {
	Name        string `json:"name" msgpack:"name"`
	Type        string `json:"type" msgpack:"type"`
	CreateIndex uint64 `json:"create_index" msgpack:"ci"`
	ModifyIndex uint64 `json:"modify_index" msgpack:"mi"`
}

// ConfigEntry is one key of the configuration store. Value is any JSON value,
// kept as the compacted bytes the client sent, or, when Raw is set, opaque
// bytes (a Consul KV value that is not JSON). A key held as a lock names
// its Session; LockIndex counts the times it changed hands (a fencing
// token, docs/sessions.md).
type ConfigEntry struct {
	Key         string          `json:"key" msgpack:"key"`
	Value       json.RawMessage `json:"value" msgpack:"value"`
	CreateIndex uint64          `json:"-" msgpack:"ci"`
	ModifyIndex uint64          `json:"modify_index" msgpack:"mi"`
	Session     string          `json:"session,omitempty" msgpack:"session,omitempty"`
	LockIndex   uint64          `json:"lock_index,omitempty" msgpack:"li,omitempty"`
	// Raw marks Value as opaque bytes rather than JSON; JSON answers show
	// it as {"raw_base64":"..."} (JSONValue).
	Raw bool `json:"raw,omitempty" msgpack:"raw,omitempty"`
	// Flags is a number clients keep with the key (Consul KV flags);
	// Nexus gives it no meaning.
	Flags uint64 `json:"flags,omitempty" msgpack:"flags,omitempty"`
}

// RawValue is how a JSON answer shows a value that is not JSON.
type RawValue struct {
	RawBase64 string `json:"raw_base64"`
}

// JSONValue returns the value as JSON: the value itself, or for a raw
// value {"raw_base64":"..."}.
func (e *ConfigEntry) JSONValue() json.RawMessage {
	if !e.Raw {
		return e.Value
	}
	b, _ := json.Marshal(RawValue{RawBase64: base64.StdEncoding.EncodeToString(e.Value)})
	return b
}

// MarshalJSON shows a raw value as JSON (JSONValue); every other field as
// its tag says.
func (e ConfigEntry) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil) }

// AppendJSON appends e's JSON, byte for byte MarshalJSON's, without
// reflection and without encoding/json compacting the value twice (once
// in the entry, once more around a Marshaler's output): a config write's
// answer is this document, on the leader and again in a forwarded write's
// answer. Anything the fast paths do not prove takes encoding/json's path.
func (e ConfigEntry) AppendJSON(dst []byte) ([]byte, error) {
	if out, ok := e.appendDoc(dst, false); ok {
		return out, nil
	}
	b, err := e.marshalReflect()
	return append(dst, b...), err
}

// AppendRecordJSON appends e's JSON with its create_index after the value,
// the document an audit record keeps of an entry, byte for byte what
// encoding/json gives for it; ok is false, and dst unchanged, where
// encoding/json would fail (a value that is not JSON).
func (e *ConfigEntry) AppendRecordJSON(dst []byte) ([]byte, bool) { return e.appendDoc(dst, true) }

// appendDoc appends e's JSON by hand (internal/jsonenc), with create_index
// if asked.
func (e *ConfigEntry) appendDoc(dst []byte, createIndex bool) ([]byte, bool) {
	start := len(dst)
	dst = append(dst, `{"key":`...)
	dst = jsonenc.AppendString(dst, e.Key)
	dst = append(dst, `,"value":`...)
	if e.Raw {
		dst = append(dst, `{"raw_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, e.Value)
		dst = append(dst, `"}`...)
	} else {
		var ok bool
		if dst, ok = jsonenc.AppendRaw(dst, e.Value); !ok {
			return dst[:start], false
		}
	}
	if createIndex {
		dst = append(dst, `,"create_index":`...)
		dst = jsonenc.AppendUint(dst, e.CreateIndex)
	}
	dst = append(dst, `,"modify_index":`...)
	dst = jsonenc.AppendUint(dst, e.ModifyIndex)
	if e.Session != "" {
		dst = append(dst, `,"session":`...)
		dst = jsonenc.AppendString(dst, e.Session)
	}
	if e.LockIndex != 0 {
		dst = append(dst, `,"lock_index":`...)
		dst = jsonenc.AppendUint(dst, e.LockIndex)
	}
	if e.Raw {
		dst = append(dst, `,"raw":true`...)
	}
	if e.Flags != 0 {
		dst = append(dst, `,"flags":`...)
		dst = jsonenc.AppendUint(dst, e.Flags)
	}
	return append(dst, '}'), true
}

// marshalReflect is MarshalJSON through encoding/json's reflection: the
// fallback of AppendJSON and what its tests hold it to.
func (e ConfigEntry) marshalReflect() ([]byte, error) {
	type plain ConfigEntry // the same fields without the methods
	p := plain(e)
	p.Value = e.JSONValue()
	return json.Marshal(p)
}

// Route is a gateway route. Durations are kept as the strings the user gave
// (validated on write) so that what is read back is what was written.
type Route struct {
	ID             string            `json:"id" msgpack:"id"`
	Hosts          []string          `json:"hosts" msgpack:"hosts"`
	Paths          []string          `json:"paths" msgpack:"paths"`
	Match          string            `json:"match" msgpack:"match"`
	Methods        []string          `json:"methods" msgpack:"methods"`
	Service        string            `json:"service" msgpack:"service"`
	StripPath      bool              `json:"strip_path" msgpack:"strip_path"`
	PreserveHost   bool              `json:"preserve_host" msgpack:"preserve_host"`
	Priority       int               `json:"priority" msgpack:"priority"`
	LoadBalancer   string            `json:"load_balancer" msgpack:"lb"`
	HashOn         string            `json:"hash_on,omitempty" msgpack:"hash_on"`
	Timeout        string            `json:"timeout" msgpack:"timeout"`
	Retries        *int              `json:"retries" msgpack:"retries"`
	RateLimit      *RateLimit        `json:"rate_limit,omitempty" msgpack:"rate_limit"`
	CircuitBreaker *CircuitBreaker   `json:"circuit_breaker,omitempty" msgpack:"cb"`
	Cache          *CachePolicy      `json:"cache,omitempty" msgpack:"cache"`
	CORS           *CORSPolicy       `json:"cors,omitempty" msgpack:"cors"`
	Auth           *AuthPolicy       `json:"auth,omitempty" msgpack:"auth"`
	Compression    *Compression      `json:"compression,omitempty" msgpack:"compression"`
	Metadata       map[string]string `json:"metadata,omitempty" msgpack:"metadata"`
	CreateIndex    uint64            `json:"create_index" msgpack:"ci"`
	ModifyIndex    uint64            `json:"modify_index" msgpack:"mi"`
}

// RateLimit is a token bucket per key.
type RateLimit struct {
	RPS   float64 `json:"rps" msgpack:"rps"`
	Burst int     `json:"burst" msgpack:"burst"`
	Key   string  `json:"key" msgpack:"key"`
	Scope string  `json:"scope" msgpack:"scope"`
}

// CircuitBreaker opens per instance after consecutive failures.
type CircuitBreaker struct {
	ConsecutiveFailures int    `json:"consecutive_failures" msgpack:"cf"`
	OpenFor             string `json:"open_for" msgpack:"open_for"`
}

// CachePolicy enables the response cache of a route.
type CachePolicy struct {
	TTL string `json:"ttl" msgpack:"ttl"`
}

// CORSPolicy configures CORS answers of a route.
type CORSPolicy struct {
	Origins       []string `json:"origins" msgpack:"origins"`
	Methods       []string `json:"methods,omitempty" msgpack:"methods"`
	Headers       []string `json:"headers,omitempty" msgpack:"headers"`
	Credentials   bool     `json:"credentials,omitempty" msgpack:"credentials"`
	MaxAge        string   `json:"max_age,omitempty" msgpack:"max_age"`
	ExposeHeaders []string `json:"expose_headers,omitempty" msgpack:"expose"`
}

// AuthPolicy selects the authentication plugin of a route.
type AuthPolicy struct {
	Type          string   `json:"type" msgpack:"type"` // jwt | key
	ForwardClaims []string `json:"forward_claims,omitempty" msgpack:"fc"`
}

// Compression enables response compression of a route.
type Compression struct {
	Enabled bool `json:"enabled" msgpack:"enabled"`
}
