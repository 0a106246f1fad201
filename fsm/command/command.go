// Package command owns the wire format of Raft log entries: one byte of type,
// one byte of version, then a msgpack payload. The api encodes, the fsm decodes,
// the cluster package only ever sees []byte.
//
// Every command carries what Apply needs, including the proposer's clock
// (Meta.Time): Apply never reads the clock, the network or the disk.
package command

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-msgpack/v2/codec"

	"github.com/nexus/nexus/registry"
	"strings"
)

// Type identifies a command. Values are never renumbered; new types are
// appended. Types with the high bit set (SkippableFlag) may be ignored by
// replicas that do not know them; any other unknown type stops the node.
type Type uint8

// SkippableFlag marks a type that an older replica may skip safely.
const SkippableFlag Type = 128

// Command types.
const (
	TypeRegisterInstance   Type = 1
	TypeDeregisterInstance Type = 2
	TypeDeregisterService  Type = 3
	TypeSetStatus          Type = 4
	TypeConfigSet          Type = 5
	TypeConfigDelete       Type = 6
	TypeRouteUpsert        Type = 7
	TypeRouteDelete        Type = 8
	TypeClusterInit        Type = 9
	// TypeAuditSettings changes the replicated audit backlog settings.
	TypeAuditSettings Type = 10
	// TypeAuditWatermark records how far the archive holds the audit
	// stream; it trims the backlog and is not itself audited.
	TypeAuditWatermark Type = 11
	// TypeNoop is a skippable entry used as a barrier of the leader's own term.
	TypeNoop Type = SkippableFlag | 1
)

// Version is the payload version written by this build. The fsm keeps a
// decoder for every version still present in logs or snapshots.
const Version uint8 = 1

func (t Type) String() string {
	switch t {
	case TypeRegisterInstance:
		return "register_instance"
	case TypeDeregisterInstance:
		return "deregister_instance"
	case TypeDeregisterService:
		return "deregister_service"
	case TypeSetStatus:
		return "set_status"
	case TypeConfigSet:
		return "config_set"
	case TypeConfigDelete:
		return "config_delete"
	case TypeRouteUpsert:
		return "route_upsert"
	case TypeRouteDelete:
		return "route_delete"
	case TypeClusterInit:
		return "cluster_init"
	case TypeAuditSettings:
		return "audit_settings"
	case TypeAuditWatermark:
		return "audit_watermark"
	case TypeNoop:
		return "noop"
	}
	if s, ok := aclTypeString(t); ok {
		return s
	}
	if s, ok := sessionTypeString(t); ok {
		return s
	}
	if s, ok := maintenanceTypeString(t); ok {
		return s
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Known reports whether this build can decode type t.
func (t Type) Known() bool {
	switch t {
	case TypeRegisterInstance, TypeDeregisterInstance, TypeDeregisterService, TypeSetStatus,
		TypeConfigSet, TypeConfigDelete, TypeRouteUpsert, TypeRouteDelete, TypeClusterInit,
		TypeAuditSettings, TypeAuditWatermark, TypeNoop:
		return true
	}
	if _, ok := aclTypeString(t); ok {
		return true
	}
	if _, ok := sessionTypeString(t); ok {
		return true
	}
	_, ok := maintenanceTypeString(t)
	return ok
}

// ActorSystem is the audit actor of writes a node makes on its own
// (health marking, reaping, leaving, the archive watermark). Writes by
// this actor, or by one of its duties ("system:..."), are system writes:
// a full audit backlog never refuses them (IsSystemActor).
const ActorSystem = "system"

// The actors of a node's own duties.
const (
	// ActorHealth: the owner's health checks commit a status change.
	ActorHealth = ActorSystem + ":health"
	// ActorLeader: the leader's health duties (failed nodes, reaping).
	ActorLeader = ActorSystem + ":leader"
)

// IsSystemActor reports whether actor is a node acting on its own:
// ActorSystem or one of its duties ("system:...").
func IsSystemActor(actor string) bool {
	return actor == ActorSystem || strings.HasPrefix(actor, ActorSystem+":")
}

// Meta is what the proposer knows about a write; it feeds the audit trail.
type Meta struct {
	Actor     string `msgpack:"actor"`
	RequestID string `msgpack:"rid"`
	Node      string `msgpack:"node"`
	// Time is the proposer's clock in Unix nanoseconds.
	Time int64 `msgpack:"time"`
	// Auth is the caller, checked again on apply (nil: not checked).
	Auth *Auth `msgpack:"auth,omitempty"`
}

// RegisterInstance registers or updates an instance. The instance is validated
// and defaulted by the proposer; Node names the owner.
type RegisterInstance struct {
	Meta     Meta              `msgpack:"meta"`
	Instance registry.Instance `msgpack:"instance"`
}

// DeregisterInstance removes one instance.
type DeregisterInstance struct {
	Meta    Meta   `msgpack:"meta"`
	Service string `msgpack:"service"`
	ID      string `msgpack:"id"`
}

// DeregisterService removes every instance of a service and the service.
type DeregisterService struct {
	Meta    Meta   `msgpack:"meta"`
	Service string `msgpack:"service"`
}

// SetStatus changes the health status of an instance (and of its check).
type SetStatus struct {
	Meta    Meta   `msgpack:"meta"`
	Service string `msgpack:"service"`
	ID      string `msgpack:"id"`
	Status  string `msgpack:"status"`
	Output  string `msgpack:"output"`
}

// ConfigOp is one key written by ConfigSet. CAS nil means unconditional,
// 0 means create only, N means only if the key's modify_index is N. Raw
// marks Value as opaque bytes (not JSON); Flags is kept with the key.
type ConfigOp struct {
	Key   string  `msgpack:"key"`
	Value []byte  `msgpack:"value"`
	CAS   *uint64 `msgpack:"cas"`
	Raw   bool    `msgpack:"raw,omitempty"`
	Flags uint64  `msgpack:"flags,omitempty"`
}

// ConfigSet writes one or several keys atomically: all or none.
type ConfigSet struct {
	Meta    Meta       `msgpack:"meta"`
	Entries []ConfigOp `msgpack:"entries"`
	// Batch asks for the {"entries":[...]} answer shape.
	Batch bool `msgpack:"batch"`
}

// ConfigDelete deletes a key, optionally only if its modify_index is CAS.
// With Prefix it deletes every key that starts with Key ("" is every key)
// and CAS must be nil; deleting none is not an error.
type ConfigDelete struct {
	Meta   Meta    `msgpack:"meta"`
	Key    string  `msgpack:"key"`
	CAS    *uint64 `msgpack:"cas"`
	Prefix bool    `msgpack:"prefix,omitempty"`
}

// RouteUpsert creates or replaces a gateway route. CreateOnly refuses to
// replace an existing route (POST).
type RouteUpsert struct {
	Meta       Meta           `msgpack:"meta"`
	Route      registry.Route `msgpack:"route"`
	CreateOnly bool           `msgpack:"create_only"`
}

// RouteDelete deletes a route.
type RouteDelete struct {
	Meta Meta   `msgpack:"meta"`
	ID   string `msgpack:"id"`
}

// ClusterInit is the first entry a bootstrapping leader writes: the identity
// of the cluster and the secret that authenticates leader forwarding.
type ClusterInit struct {
	Meta      Meta   `msgpack:"meta"`
	ClusterID string `msgpack:"cluster_id"`
	Secret    string `msgpack:"secret"`
}

// AuditSettings changes some of the audit backlog settings; nil fields
// keep their value. The proposer validates; Apply validates again.
type AuditSettings struct {
	Meta       Meta    `msgpack:"meta"`
	MaxRecords *int64  `msgpack:"max_records"`
	MaxBytes   *int64  `msgpack:"max_bytes"`
	OnFull     *string `msgpack:"on_full"`
	Archive    *string `msgpack:"archive"`
}

// AuditWatermark tells every replica that the archive holds every audit
// record up to (Index, Position): the backlog trims them. The watermark
// only moves forward. Attach marks that an archiver runs (the "auto"
// archive mode then keeps records until archived).
type AuditWatermark struct {
	Meta     Meta   `msgpack:"meta"`
	Index    uint64 `msgpack:"index"`
	Position uint32 `msgpack:"position"`
	Attach   bool   `msgpack:"attach"`
}

// Noop carries nothing; the leader commits one to learn that its own term's
// entries have applied (a barrier).
type Noop struct {
	Meta Meta `msgpack:"meta"`
}

// Errors of the codec.
var (
	// ErrShort is returned for an entry shorter than the two header bytes.
	ErrShort = errors.New("command: entry shorter than its header")
	// ErrUnknownType is returned for a type this build does not know.
	ErrUnknownType = errors.New("command: unknown type")
	// ErrUnknownVersion is returned for a payload version this build cannot read.
	ErrUnknownVersion = errors.New("command: unknown version")
)

// Codec encodes and decodes commands; it is safe for concurrent use.
type Codec struct {
	handle *codec.MsgpackHandle
	bufs   sync.Pool
}

// NewCodec returns a codec for the msgpack payloads.
func NewCodec() *Codec {
	h := &codec.MsgpackHandle{}
	h.TypeInfos = codec.NewTypeInfos([]string{"msgpack"})
	h.RawToString = true
	h.WriteExt = true
	// Canonical sorts map keys so that snapshots of equal states are equal bytes.
	h.Canonical = true
	return &Codec{handle: h, bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

// EncodeValue encodes a bare msgpack value (snapshots use it).
func (c *Codec) EncodeValue(w io.Writer, v any) error {
	return codec.NewEncoder(w, c.handle).Encode(v)
}

// DecodeValue decodes a bare msgpack value from r.
func (c *Codec) DecodeValue(r io.Reader, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("command: decode: %v", p)
		}
	}()
	return codec.NewDecoder(r, c.handle).Decode(v)
}

// Encode returns [type][version][payload] for msg.
func (c *Codec) Encode(t Type, msg any) ([]byte, error) {
	buf := c.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer c.bufs.Put(buf)
	buf.WriteByte(byte(t))
	buf.WriteByte(Version)
	if err := codec.NewEncoder(buf, c.handle).Encode(msg); err != nil {
		return nil, fmt.Errorf("command: encode %s: %w", t, err)
	}
	return bytes.Clone(buf.Bytes()), nil
}

// Header splits an entry into type, version and payload.
func Header(b []byte) (Type, uint8, []byte, error) {
	if len(b) < 2 {
		return 0, 0, nil, ErrShort
	}
	return Type(b[0]), b[1], b[2:], nil
}

// Decode decodes a whole entry into the command struct of its type. It returns
// an error, never panics, for malformed input (it is fuzzed).
func (c *Codec) Decode(b []byte) (Type, any, error) {
	t, v, payload, err := Header(b)
	if err != nil {
		return 0, nil, err
	}
	if !t.Known() {
		return t, nil, fmt.Errorf("%w %d", ErrUnknownType, uint8(t))
	}
	if v != Version {
		return t, nil, fmt.Errorf("%w %d for %s", ErrUnknownVersion, v, t)
	}
	msg := newMessage(t)
	if err := c.DecodePayload(payload, msg); err != nil {
		return t, nil, err
	}
	return t, msg, nil
}

// DecodePayload decodes a msgpack payload into out.
func (c *Codec) DecodePayload(payload []byte, out any) (err error) {
	// The codec recovers its own panics into errors, but guard anyway: a
	// decoder that panics on hostile bytes would crash the node.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("command: decode: %v", r)
		}
	}()
	if err := codec.NewDecoderBytes(payload, c.handle).Decode(out); err != nil {
		return fmt.Errorf("command: decode: %w", err)
	}
	return nil
}

func newMessage(t Type) any {
	switch t {
	case TypeRegisterInstance:
		return &RegisterInstance{}
	case TypeDeregisterInstance:
		return &DeregisterInstance{}
	case TypeDeregisterService:
		return &DeregisterService{}
	case TypeSetStatus:
		return &SetStatus{}
	case TypeConfigSet:
		return &ConfigSet{}
	case TypeConfigDelete:
		return &ConfigDelete{}
	case TypeRouteUpsert:
		return &RouteUpsert{}
	case TypeRouteDelete:
		return &RouteDelete{}
	case TypeClusterInit:
		return &ClusterInit{}
	case TypeAuditSettings:
		return &AuditSettings{}
	case TypeAuditWatermark:
		return &AuditWatermark{}
	case TypeNoop:
		return &Noop{}
	}
	if m := newACLMessage(t); m != nil {
		return m
	}
	if m := newSessionMessage(t); m != nil {
		return m
	}
	return newMaintenanceMessage(t)
}
