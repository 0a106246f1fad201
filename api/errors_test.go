package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nexus/nexus/cluster/peerproto"
	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// codeErr carries a code only, as the domain's errors do.
type codeErr string

func (c codeErr) Error() string     { return "refused: " + string(c) }
func (c codeErr) ErrorCode() string { return string(c) }

// Every kind of error a lower layer returns becomes its answer in one
// place.
func TestErrorOf(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		code   string
		logged bool // a 500 the caller logs
	}{
		{"no leader", fmt.Errorf("forwarding: %w", command.ErrNoLeader), 503, CodeNoLeader, false},
		{"outcome unknown", fmt.Errorf("%w: lost", command.ErrOutcomeUnknown), 504, CodeOutcomeUnknown, false},
		{"not applied", command.ErrNotApplied, 504, CodeOutcomeUnknown, false},
		{"deadline", context.DeadlineExceeded, 504, CodeOutcomeUnknown, false},
		{"member alive", codeErr(command.CodeMemberAlive), 409, command.CodeMemberAlive, false},
		{"keyring off", codeErr(command.CodeKeyringOff), 409, command.CodeKeyringOff, false},
		{"invalid snapshot", codeErr(command.CodeInvalidSnapshot), 400, command.CodeInvalidSnapshot, false},
		{"owner unavailable", fmt.Errorf("%w: n2", codeErr(command.CodeOwnerUnavailable)), 503, command.CodeOwnerUnavailable, false},
		{"not found", codeErr(registry.CodeNotFound), 404, registry.CodeNotFound, false},
		{"invalid", codeErr(registry.CodeInvalid), 400, registry.CodeInvalid, false},
		{"business error", &command.Error{Code: registry.CodeCASConflict, Message: "cas"}, 409, registry.CodeCASConflict, false},
		{"the leader's answer", &peerproto.Error{Status: 429, Code: "rate_limited", Message: "slow down"}, 429, "rate_limited", false},
		{"a nonsense status", &peerproto.Error{Status: 200, Code: "odd", Message: "?"}, 500, "odd", false},
		{"unknown code", codeErr("brand_new"), 500, "brand_new", false},
		{"anything else", errors.New("disk on fire"), 500, registry.CodeInternal, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := errorOf("the write", tc.err)
			if e.status != tc.status || e.code != tc.code || ok == tc.logged {
				t.Fatalf("errorOf = %d %s (ok %v), want %d %s", e.status, e.code, ok, tc.status, tc.code)
			}
			if e.retryAfter != (e.status == 503) {
				t.Fatalf("Retry-After %v on %d", e.retryAfter, e.status)
			}
		})
	}
}
