package command

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/nexus/nexus/registry"
)

// Result is what applying a command answered. A business error (CAS conflict,
// unknown service) is a Result with Err set, never a failed Apply: the entry is
// committed either way and every replica reaches the same answer.
type Result struct {
	// Index is the Raft index of the entry that carried the command.
	Index uint64 `json:"index"`
	// Created is true when the command created the object (201 vs 200).
	Created bool `json:"created,omitempty"`
	// Value is the answer body: an applied object, a list, or a count. After
	// forwarding it arrives as json.RawMessage.
	Value any `json:"value,omitempty"`
	// Err is a business error; the write changed nothing.
	Err *Error `json:"error,omitempty"`
}

// Error is a business error of a command, in the API error shape.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Business error codes that Apply can answer: the domain's
// (registry/errors.go), named here for the command's readers.
const (
	CodeNotFound     = registry.CodeNotFound
	CodeCASConflict  = registry.CodeCASConflict
	CodeTypeConflict = registry.CodeTypeConflict
	CodeConflict     = registry.CodeConflict
	CodeInvalid      = registry.CodeInvalid
)

// Write outcomes that are not business answers. They cross from cluster to api
// through this leaf package so that api never imports the cluster.
var (
	// ErrNoLeader means the write was surely not applied: safe to retry.
	ErrNoLeader = errors.New("no leader")
	// ErrOutcomeUnknown means the write was dispatched and its outcome was lost
	// (leadership lost, timeout): it may or may not have been applied.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrNotApplied means the leader committed the write but this node did not
	// apply it in time, so answering would break read-your-writes.
	ErrNotApplied = errors.New("committed but not applied on this node")
)

// RawValue returns the value as JSON bytes.
func (r *Result) RawValue() ([]byte, error) {
	if raw, ok := r.Value.(json.RawMessage); ok {
		return raw, nil
	}
	return r.appendValue(nil)
}

// appendValue appends the value's JSON to dst.
func (r *Result) appendValue(dst []byte) ([]byte, error) {
	switch v := r.Value.(type) {
	case json.RawMessage:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return append(dst, v...), nil
	case registry.ConfigEntry: // a config write's answer: appended by hand
		return v.AppendJSON(dst)
	case *registry.ConfigEntry:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return v.AppendJSON(dst)
	}
	b, err := json.Marshal(r.Value)
	if err != nil {
		return dst, err
	}
	if dst == nil {
		return b, nil
	}
	return append(dst, b...), nil
}

// AppendJSON appends the JSON of r, json.Marshal's document for it (a
// forwarded write's answer), without marshalling the value through
// reflection when it can append itself, nor compacting it again.
func (r *Result) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendUint(dst, r.Index, 10)
	if r.Created {
		dst = append(dst, `,"created":true`...)
	}
	if r.Value != nil {
		var err error
		dst = append(dst, `,"value":`...)
		if dst, err = r.appendValue(dst); err != nil {
			return dst, err
		}
	}
	if r.Err != nil {
		b, err := json.Marshal(r.Err)
		if err != nil {
			return dst, err
		}
		dst = append(dst, `,"error":`...)
		dst = append(dst, b...)
	}
	return append(dst, '}'), nil
}
