package command

import "github.com/nexus/nexus/registry"

// Session, lock and transaction command types (appended; never renumbered).
const (
	TypeSessionCreate     Type = 20
	TypeSessionRenew      Type = 21
	TypeSessionInvalidate Type = 22
	TypeConfigLock        Type = 23
	TypeTxn               Type = 24
	TypeLockDelayEnd      Type = 25
)

// SessionCreate stores a new session; the proposer generated its id,
// picked its node and validated it (Apply validates again).
type SessionCreate struct {
	Meta    Meta             `msgpack:"meta"`
	Session registry.Session `msgpack:"session"`
}

// SessionRenew moves a session's renew index to this entry. It writes no
// audit record and passes a full audit backlog: a keep-alive must not end
// sessions because the audit archive is behind.
type SessionRenew struct {
	Meta Meta   `msgpack:"meta"`
	ID   string `msgpack:"id"`
}

// SessionInvalidate ends a session and releases or deletes every key it
// holds, in one entry. Reason is registry.ReasonDestroy for a user's
// destroy, else the leader's (ttl, node_failed, node_left). A TTL
// invalidation carries the RenewIndex the leader timed: Apply ignores it
// when the session was renewed since.
type SessionInvalidate struct {
	Meta       Meta    `msgpack:"meta"`
	ID         string  `msgpack:"id"`
	Reason     string  `msgpack:"reason"`
	RenewIndex *uint64 `msgpack:"renew_index"`
}

// ConfigLock acquires (PUT /config/{key}?acquire=SESSION) or releases
// (Release) a key for a session, setting its value unless Value is nil.
type ConfigLock struct {
	Meta    Meta   `msgpack:"meta"`
	Key     string `msgpack:"key"`
	Session string `msgpack:"session"`
	Value   []byte `msgpack:"value"`
	Release bool   `msgpack:"release"`
}

// Txn runs up to registry.MaxTxnOps ops all or nothing (POST /txn).
type Txn struct {
	Meta Meta             `msgpack:"meta"`
	Ops  []registry.TxnOp `msgpack:"ops"`
}

// LockDelayEnd ends the lock delays the leader timed; each names the
// invalidation index that started it (registry.LockDelay Key and Index).
type LockDelayEnd struct {
	Meta   Meta                 `msgpack:"meta"`
	Delays []registry.LockDelay `msgpack:"delays"`
}

func sessionTypeString(t Type) (string, bool) {
	switch t {
	case TypeSessionCreate:
		return "session_create", true
	case TypeSessionRenew:
		return "session_renew", true
	case TypeSessionInvalidate:
		return "session_invalidate", true
	case TypeConfigLock:
		return "config_lock", true
	case TypeTxn:
		return "txn", true
	case TypeLockDelayEnd:
		return "lock_delay_end", true
	}
	return "", false
}

func newSessionMessage(t Type) any {
	switch t {
	case TypeSessionCreate:
		return &SessionCreate{}
	case TypeSessionRenew:
		return &SessionRenew{}
	case TypeSessionInvalidate:
		return &SessionInvalidate{}
	case TypeConfigLock:
		return &ConfigLock{}
	case TypeTxn:
		return &Txn{}
	case TypeLockDelayEnd:
		return &LockDelayEnd{}
	}
	return nil
}

// SessionMeta returns the Meta of a session, lock or txn command.
func SessionMeta(msg any) (Meta, bool) {
	switch m := msg.(type) {
	case *SessionCreate:
		return m.Meta, true
	case *SessionRenew:
		return m.Meta, true
	case *SessionInvalidate:
		return m.Meta, true
	case *ConfigLock:
		return m.Meta, true
	case *Txn:
		return m.Meta, true
	case *LockDelayEnd:
		return m.Meta, true
	}
	return Meta{}, false
}
