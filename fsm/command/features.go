package command

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Feature gating for rolling upgrades (docs/operations.md, "The rule for
// new command types"). A replica that meets a command type it cannot
// decode stops (fsm: skipping could let replicas diverge), so a node must
// not propose a new type while any Raft server runs a build without it.
// Every node gossips the set of types it decodes (KnownTypes); a gated
// type is refused with ErrFeatureUnavailable until every server of the
// Raft configuration gossips it.

// Gates maps every command type added after the first release to the
// feature it belongs to: the types a node refuses to propose until every
// Raft server knows them. THE RULE: a new non-skippable command type gets
// its line here in the change that adds it (TestEveryNewTypeIsGated fails
// otherwise).
func Gates() map[Type]string {
	g := map[Type]string{
		// Sessions, locks and transactions (docs/sessions.md): an older
		// voter would stop on these entries.
		TypeSessionCreate: "sessions", TypeSessionRenew: "sessions", TypeSessionInvalidate: "sessions",
		TypeConfigLock: "sessions", TypeTxn: "sessions", TypeLockDelayEnd: "sessions",
		// Maintenance mode (docs/operations.md).
		TypeMaintenance: "maintenance",
		// Consul KV values that are not JSON, and KV flags.
		TypeConfigSetRaw: "kv_raw",
	}
	for t, f := range fixtureGates() {
		g[t] = f
	}
	return g
}

// FirstReleaseTypes are the command types of the first release (commit
// 3cd8fea), which every Nexus build decodes, including builds that gossip
// no type set. They are never gated.
func FirstReleaseTypes() []Type {
	return []Type{
		TypeRegisterInstance, TypeDeregisterInstance, TypeDeregisterService, TypeSetStatus,
		TypeConfigSet, TypeConfigDelete, TypeRouteUpsert, TypeRouteDelete, TypeClusterInit,
		TypeAuditSettings, TypeAuditWatermark,
		TypeACLBootstrap, TypeACLPolicyUpsert, TypeACLPolicyDelete, TypeACLRoleUpsert,
		TypeACLRoleDelete, TypeACLTokenCreate, TypeACLTokenUpdate, TypeACLTokenDelete,
		TypeNoop,
	}
}

// CodeFeatureUnavailable is the API error code of a gated write refused
// while some Raft server lacks the feature (409).
const CodeFeatureUnavailable = "feature_unavailable"

// ErrFeatureUnavailable is matched (errors.Is) by every *FeatureError.
var ErrFeatureUnavailable = errors.New("feature unavailable")

// FeatureError is a write of a gated type refused because some Raft
// servers do not gossip that they know the type.
type FeatureError struct {
	Feature string
	Type    Type
	// Missing names each server that lacks it, with what it runs
	// ("n2 (version 0.1.0)").
	Missing []string
}

func (e *FeatureError) Error() string {
	return fmt.Sprintf("feature %q (command %s) is not available until every Raft server runs a version that knows it; missing on: %s",
		e.Feature, e.Type, strings.Join(e.Missing, ", "))
}

// ErrorCode is the API error code of the refusal (409 feature_unavailable).
func (e *FeatureError) ErrorCode() string { return CodeFeatureUnavailable }

// Is makes errors.Is(err, ErrFeatureUnavailable) true.
func (e *FeatureError) Is(target error) bool { return target == ErrFeatureUnavailable }

// TypeSet is a set of command types.
type TypeSet [4]uint64

// KnownTypes is the set of types this build decodes.
func KnownTypes() TypeSet {
	var s TypeSet
	for t := 0; t < 256; t++ {
		if Type(t).Known() {
			s.Add(Type(t))
		}
	}
	return s
}

// Add adds t.
func (s *TypeSet) Add(t Type) { s[t/64] |= 1 << (t % 64) }

// Has reports whether t is in the set.
func (s TypeSet) Has(t Type) bool { return s[t/64]&(1<<(t%64)) != 0 }

// String is the compact form gossiped in member metadata: sorted ranges,
// "1-19,129".
func (s TypeSet) String() string {
	var b strings.Builder
	for t := 0; t < 256; t++ {
		if !s.Has(Type(t)) {
			continue
		}
		end := t
		for end+1 < 256 && s.Has(Type(end+1)) {
			end++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(t))
		if end > t {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(end))
		}
		t = end
	}
	return b.String()
}

// ParseTypeSet reads the String form.
func ParseTypeSet(v string) (TypeSet, error) {
	var s TypeSet
	if v == "" {
		return s, nil
	}
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 8)
		if err != nil {
			return s, fmt.Errorf("command types %q: %q is not a type", v, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 8); err != nil || b < a {
				return s, fmt.Errorf("command types %q: %q is not a range", v, part)
			}
		}
		for t := a; t <= b; t++ {
			s.Add(Type(t))
		}
	}
	return s, nil
}
