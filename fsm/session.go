package fsm

import (
	"github.com/nexus/nexus/acl"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Answers of the session, lock and transaction commands.
type (
	// SessionEnded answers an invalidation (DELETE /sessions/{id} and the
	// leader's TTL and node duties). Invalidated is false when the session
	// was already gone, or (Renewed) renewed since the TTL the leader timed.
	SessionEnded struct {
		ID          string   `json:"id"`
		Invalidated bool     `json:"invalidated"`
		Reason      string   `json:"reason"`
		Renewed     bool     `json:"renewed,omitempty"`
		Released    []string `json:"released,omitempty"`
		Deleted     []string `json:"deleted,omitempty"`
		ModifyIndex uint64   `json:"modify_index"`
	}
	// LockAnswer answers PUT /config/{key}?acquire= or ?release=: whether
	// the session holds (acquired) or gave up (released) the key, why not
	// (held, lock_delay, not_holder), and the key as it is now.
	LockAnswer struct {
		Key         string `json:"key"`
		Acquired    *bool  `json:"acquired,omitempty"`
		Released    *bool  `json:"released,omitempty"`
		Reason      string `json:"reason,omitempty"`
		Session     string `json:"session,omitempty"`
		LockIndex   uint64 `json:"lock_index"`
		ModifyIndex uint64 `json:"modify_index"`
	}
	// TxnAnswer answers a transaction that applied: one result per op.
	TxnAnswer struct {
		Results []registry.TxnResult `json:"results"`
		Index   uint64               `json:"index"`
	}
	// TxnConflicts is the Value of a transaction refused with
	// txn_conflict (Result.Err set): which op failed and why.
	TxnConflicts struct {
		Errors []registry.TxnConflict `json:"errors"`
	}
	// LockDelaysEnded answers the leader's end of lock delays.
	LockDelaysEnded struct {
		Ended []string `json:"ended"`
	}
)

// sessionEndDoc is the audit "after" of an ended session: the session is
// gone, the record says why.
type sessionEndDoc struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// sessionNeeds lists what a session command writes that its message
// names; renew and destroy name a session whose name only the state knows
// (checked in dispatchSession), and transactions are checked key by key.
func sessionNeeds(msg any) []need {
	switch m := msg.(type) {
	case *command.SessionCreate:
		return []need{{registry.ACLResourceSession, m.Session.Name}}
	case *command.ConfigLock:
		return []need{{registry.ACLResourceConfig, m.Key}}
	}
	return nil
}

// isSessionSystem reports the session commands a full audit backlog lets
// through: renews and lock delay ends write no record.
func isSessionSystem(t command.Type) bool {
	return t == command.TypeSessionRenew || t == command.TypeLockDelayEnd
}

// checkSessionWrite checks the caller's write right on the stored
// session id (nothing to check when it does not exist: the command then
// answers that).
func checkSessionWrite(tx *registry.Tx, m command.Meta, id string) *command.Error {
	s := tx.Session(nil, id)
	if s == nil || m.Auth == nil || !m.Auth.Enforce {
		return nil
	}
	a, ident, e := caller(tx, m)
	if e != nil {
		return e
	}
	if !a.Allowed(registry.ACLResourceSession, s.Name, acl.Write) {
		return deniedErr(acl.Denied(ident, registry.ACLResourceSession, s.Name, acl.Write))
	}
	return nil
}

// txnCheck is a transaction's ACL check: read on the keys it reads,
// write on those it writes (every key a delete-tree removes included).
func txnCheck(tx *registry.Tx, m command.Meta) (registry.TxnCheck, *command.Error) {
	if m.Auth == nil || !m.Auth.Enforce {
		return nil, nil
	}
	a, ident, e := caller(tx, m)
	if e != nil {
		return nil, e
	}
	return func(key string, write bool) *registry.Error {
		level := acl.Read
		if write {
			level = acl.Write
		}
		if a.Allowed(registry.ACLResourceConfig, key, level) {
			return nil
		}
		ce := deniedErr(acl.Denied(ident, registry.ACLResourceConfig, key, level))
		return &registry.Error{Code: ce.Code, Message: ce.Message}
	}, nil
}

// dispatchSession applies the session, lock and transaction commands;
// it reports whether msg was one.
func dispatchSession(tx *registry.Tx, idx uint64, msg any, res *command.Result, au *entryAudit) bool {
	switch m := msg.(type) {
	case *command.SessionCreate:
		in := m.Session
		in.CreateTime = m.Meta.Time
		s, e := tx.CreateSession(in)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Created, res.Value = true, *s
		au.add(registry.ActionCreate, registry.AuditSession, s.ID, nil, *s)
	case *command.SessionRenew:
		if e := checkSessionWrite(tx, m.Meta, m.ID); e != nil {
			res.Err = e
			return true
		}
		s, e := tx.RenewSession(m.ID)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		res.Value = *s
	case *command.SessionInvalidate:
		applyInvalidate(tx, idx, m, res, au)
	case *command.ConfigLock:
		applyLock(tx, m, res, au)
	case *command.Txn:
		check, ce := txnCheck(tx, m.Meta)
		if ce != nil {
			res.Err = ce
			return true
		}
		results, changes, conflict, e := tx.Txn(m.Ops, check)
		switch {
		case e != nil:
			res.Err = toErr(e)
		case conflict != nil:
			res.Err = &command.Error{Code: registry.CodeTxnConflict, Message: conflict.Message}
			res.Value = TxnConflicts{Errors: []registry.TxnConflict{*conflict}}
		default:
			res.Value = TxnAnswer{Results: results, Index: idx}
			for _, c := range changes {
				au.add(c.Action, registry.AuditConfig, c.Key, c.Before, c.After)
			}
		}
	case *command.LockDelayEnd:
		keys, e := tx.EndLockDelays(m.Delays)
		if e != nil {
			res.Err = toErr(e)
			return true
		}
		if keys == nil {
			keys = []string{}
		}
		res.Value = LockDelaysEnded{Ended: keys}
	default:
		return false
	}
	return true
}

func applyInvalidate(tx *registry.Tx, idx uint64, m *command.SessionInvalidate, res *command.Result, au *entryAudit) {
	if m.Reason == registry.ReasonDestroy {
		if e := checkSessionWrite(tx, m.Meta, m.ID); e != nil {
			res.Err = e
			return
		}
	}
	out := SessionEnded{ID: m.ID, Reason: m.Reason, ModifyIndex: idx}
	inv, e := tx.InvalidateSession(m.ID, m.RenewIndex)
	switch {
	case e != nil && e.Code == registry.CodeNotFound:
		// Gone already: a destroy answers 200 anyway, a duty moves on.
		res.Value = out
		return
	case e != nil:
		res.Err = toErr(e)
		return
	case inv == nil:
		out.Renewed = true
		res.Value = out
		return
	}
	out.Invalidated = true
	action := registry.ActionInvalidate
	if m.Reason == registry.ReasonDestroy {
		action = registry.ActionDestroy
	}
	au.add(action, registry.AuditSession, m.ID, inv.Session, sessionEndDoc{ID: m.ID, Reason: m.Reason})
	for _, c := range inv.Released {
		out.Released = append(out.Released, c.After.Key)
		au.add(registry.ActionRelease, registry.AuditConfig, c.After.Key, c.Before, c.After)
	}
	for i := range inv.Deleted {
		out.Deleted = append(out.Deleted, inv.Deleted[i].Key)
		au.add(registry.ActionDelete, registry.AuditConfig, inv.Deleted[i].Key, &inv.Deleted[i], nil)
	}
	res.Value = out
}

func applyLock(tx *registry.Tx, m *command.ConfigLock, res *command.Result, au *entryAudit) {
	var out registry.LockOutcome
	var e *registry.Error
	if m.Release {
		out, e = tx.LockRelease(m.Key, m.Value, m.Session)
	} else {
		out, e = tx.LockAcquire(m.Key, m.Value, m.Session)
	}
	if e != nil {
		res.Err = toErr(e)
		return
	}
	ok := out.OK
	a := LockAnswer{Key: m.Key, Reason: out.Reason}
	if m.Release {
		a.Released = &ok
	} else {
		a.Acquired = &ok
	}
	if out.Entry != nil {
		a.Session, a.LockIndex, a.ModifyIndex = out.Entry.Session, out.Entry.LockIndex, out.Entry.ModifyIndex
	}
	res.Value = a
	if !ok {
		return
	}
	action := registry.ActionAcquire
	if m.Release {
		action = registry.ActionRelease
	}
	au.add(action, registry.AuditConfig, m.Key, out.Prev, out.Entry)
}
