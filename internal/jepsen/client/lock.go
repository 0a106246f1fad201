package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Codes of the sessions, locks and transactions API (docs/sessions.md).
const (
	CodeTxnConflict = "txn_conflict"
	LockHeld        = "held"       // acquire refused: another session holds the key
	LockDelayed     = "lock_delay" // acquire refused: the key is in its lock delay
)

// SessionResult is the outcome of creating or renewing a session.
type SessionResult struct {
	Result
	ID string // the session id (create, after an acknowledged answer)
}

// CreateSession creates a session (POST /sessions) owned by the node that
// takes the request, with the given TTL and lock delay.
func (c *Client) CreateSession(ctx context.Context, addr, name, ttl, lockDelay string) SessionResult {
	body, _ := json.Marshal(map[string]string{"name": name, "ttl": ttl, "lock_delay": lockDelay, "behavior": "release"})
	r := SessionResult{Result: c.Do(ctx, Write, http.MethodPost, addr, "/sessions", body)}
	if r.Type == history.OK {
		var s struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(r.Body, &s); err != nil || s.ID == "" {
			// Created even so (2xx), but the id is unknown: nobody can
			// renew it, and it ends with its TTL.
			r.Code, r.Err = CodeHTTP, fmt.Sprintf("malformed session %q", r.Body)
		}
		r.ID = s.ID
	}
	return r
}

// RenewSession renews session id (PUT /sessions/{id}/renew); a 404 (Fail,
// not_found) says that the session has ended.
func (c *Client) RenewSession(ctx context.Context, addr, id string) Result {
	return c.Do(ctx, Write, http.MethodPut, addr, "/sessions/"+url.PathEscape(id)+"/renew", nil)
}

// LockResult is the outcome of PUT /config/{key}?acquire= or ?release=.
type LockResult struct {
	Result
	Done        bool   // acquired, or released
	Reason      string // why not: held, lock_delay, not_holder
	Session     string // the holder after the call ("" when free)
	LockIndex   uint64
	ModifyIndex uint64 // the key's modify_index after the call (the Raft index of an acquire or release that happened)
}

// Acquire asks that session hold key, writing value.
func (c *Client) Acquire(ctx context.Context, addr, key, session string, value int64) LockResult {
	return c.lock(ctx, addr, key, "acquire", session, value)
}

// Release gives key up if session holds it, writing value.
func (c *Client) Release(ctx context.Context, addr, key, session string, value int64) LockResult {
	return c.lock(ctx, addr, key, "release", session, value)
}

func (c *Client) lock(ctx context.Context, addr, key, verb, session string, value int64) LockResult {
	r := LockResult{Result: c.Do(ctx, Write, http.MethodPut, addr, keyPath(key)+"?"+verb+"="+url.QueryEscape(session),
		[]byte(strconv.FormatInt(value, 10)))}
	if r.Type != history.OK {
		return r
	}
	var a struct {
		lockedEntry        // the key as it is after the call
		Acquired    *bool  `json:"acquired"`
		Released    *bool  `json:"released"`
		Reason      string `json:"reason"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil || (a.Acquired == nil && a.Released == nil) {
		// Answered 2xx, so it happened or was refused; which is unknown.
		r.Type, r.Code, r.Err = history.Info, CodeHTTP, fmt.Sprintf("malformed lock answer %q", r.Body)
		return r
	}
	r.Done = (a.Acquired != nil && *a.Acquired) || (a.Released != nil && *a.Released)
	r.Reason, r.Session, r.LockIndex, r.ModifyIndex = a.Reason, a.Session, a.LockIndex, a.ModifyIndex
	return r
}

// lockedEntry is a config entry with its lock fields.
type lockedEntry struct {
	Entry
	Session   string `json:"session"`
	LockIndex uint64 `json:"lock_index"`
}

// WaitKey blocks until key's modify_index passes index or wait passes
// (GET /config/{key}?index=N&wait=D); only how long it took matters.
func (c *Client) WaitKey(ctx context.Context, addr, key string, index uint64, wait string) Result {
	return c.Do(ctx, Read, http.MethodGet, addr, keyPath(key)+"?index="+strconv.FormatUint(index, 10)+"&wait="+wait, nil)
}

// IncrementResult is the outcome of a fenced (or unfenced) increment.
type IncrementResult struct {
	Result
	Index     uint64 // the transaction's Raft index
	Holder    string // the lock key's session as the transaction saw it
	LockIndex uint64 // the lock key's lock_index as the transaction saw it
	Counter   Entry  // the counter after the transaction
	FailedOp  string // a txn_conflict: the op that failed (check-session, cas)
}

type txnOp struct {
	Op      string  `json:"op"`
	Key     string  `json:"key"`
	Value   *int64  `json:"value,omitempty"`
	Index   *uint64 `json:"index,omitempty"`
	Session string  `json:"session,omitempty"`
}

// Increment sets counter to value in one transaction (POST /txn) that
// also reads the lock key (a get: who held it when the transaction
// applied). fenced: the transaction first checks that session holds the
// lock key (check-session) and sets the counter with a cas on expect
// (its modify_index; 0: the counter must not exist); otherwise it is a
// plain set, whoever holds the lock (the unsafe mode).
func (c *Client) Increment(ctx context.Context, addr, lockKey, counterKey, session string, value int64, expect uint64, fenced bool) IncrementResult {
	var ops []txnOp
	if fenced {
		ops = append(ops, txnOp{Op: "check-session", Key: lockKey, Session: session})
	}
	ops = append(ops, txnOp{Op: "get", Key: lockKey})
	if fenced {
		ops = append(ops, txnOp{Op: "cas", Key: counterKey, Value: &value, Index: &expect})
	} else {
		ops = append(ops, txnOp{Op: "set", Key: counterKey, Value: &value})
	}
	body, _ := json.Marshal(map[string]any{"ops": ops})
	r := IncrementResult{Result: c.Do(ctx, Write, http.MethodPost, addr, "/txn", body)}
	switch {
	case r.Type == history.OK:
		var a struct {
			Results []struct {
				Op    string       `json:"op"`
				Entry *lockedEntry `json:"entry"`
			} `json:"results"`
			Index uint64 `json:"index"`
		}
		err := json.Unmarshal(r.Body, &a)
		if err != nil || len(a.Results) != len(ops) || a.Results[len(ops)-2].Entry == nil || a.Results[len(ops)-1].Entry == nil {
			// Applied (2xx), but what it saw is unknown: the checker
			// cannot use it.
			r.Type, r.Code, r.Err = history.Info, CodeHTTP, fmt.Sprintf("malformed txn answer %q", r.Body)
			return r
		}
		lock, counter := a.Results[len(ops)-2].Entry, a.Results[len(ops)-1].Entry
		r.Index, r.Holder, r.LockIndex, r.Counter = a.Index, lock.Session, lock.LockIndex, counter.Entry
	case r.Status == http.StatusConflict && r.Code == CodeTxnConflict:
		r.FailedOp = conflictOp(r.Body)
	}
	return r
}

// conflictOp returns the op a txn_conflict names
// ({"errors":[{"op_index","op",...}]}), "" when the body does not say.
func conflictOp(body []byte) string {
	var a struct {
		Errors []struct {
			Op string `json:"op"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &a) != nil || len(a.Errors) == 0 {
		return ""
	}
	return a.Errors[0].Op
}

// SessionEnd looks up why session id ended in the audit trail
// (GET /audit?resource_type=session&resource=ID&consistent): the
// invalidation's reason (ttl, node_failed, node_left, destroy) and the
// Raft index of that record; found is false when no record names it (yet).
func (c *Client) SessionEnd(ctx context.Context, addr, id string) (r Result, reason string, index uint64, found bool) {
	r = c.Do(ctx, Read, http.MethodGet, addr, "/audit?resource_type=session&resource="+url.QueryEscape(id)+"&consistent", nil)
	if r.Type != history.OK || r.Status != http.StatusOK {
		return r, "", 0, false
	}
	var recs []struct {
		RaftIndex uint64 `json:"raft_index"`
		Action    string `json:"action"`
		After     struct {
			Reason string `json:"reason"`
		} `json:"after"`
	}
	if err := json.Unmarshal(r.Body, &recs); err != nil {
		r.Type, r.Code, r.Err = history.Fail, CodeHTTP, "malformed audit records: "+err.Error()
		return r, "", 0, false
	}
	for _, rec := range recs {
		if (rec.Action == "invalidate" || rec.Action == "destroy") && rec.After.Reason != "" {
			return r, rec.After.Reason, rec.RaftIndex, true
		}
	}
	return r, "", 0, false
}
