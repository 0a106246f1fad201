package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"syscall"

	"github.com/nexus/nexus/internal/jepsen/history"
)

// Client-side error classes (Result.Code when there is no API error code).
const (
	CodeConnect = "connect" // the request never reached the node (refused, no route, dial timeout)
	CodeTimeout = "timeout" // no answer within the client timeout
	CodeNetwork = "network" // the connection broke after the request was sent
	CodeHTTP    = "http"    // an answer without the API's error shape
)

// API error codes the harness reacts to (design/api.md).
const (
	CodeNoLeader       = "no_leader"
	CodeOutcomeUnknown = "outcome_unknown"
	CodeCASConflict    = "cas_conflict"
	CodeNotFound       = "not_found"
)

// Result is one answer (or failure) and its classification.
type Result struct {
	Type   history.Type
	Status int    // HTTP status; 0 when none
	Code   string // API error code or one of the Code* classes
	Err    string // error message
	Body   []byte // the body of the answer (a 2xx's value, or the error: a txn_conflict names its op)

	RequestID string // X-Request-ID sent (the nodes log it)
}

// Kind says what an operation may have changed, which decides how a lost
// answer is classified.
type Kind int

// Kinds.
const (
	Read  Kind = iota // no effect: every failure is a Fail
	Write             // may have taken effect: a lost answer is Info
)

// classify maps a transport error or an HTTP answer to an outcome
// (design/api.md, "Write outcomes").
func classify(kind Kind, status int, body []byte, err error) Result {
	if err != nil {
		r := Result{Type: history.Fail, Err: err.Error()}
		switch {
		case isDialError(err):
			r.Code = CodeConnect // nothing was sent
		case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
			r.Code = CodeTimeout
			if kind == Write {
				r.Type = history.Info
			}
		default:
			r.Code = CodeNetwork
			if kind == Write {
				r.Type = history.Info
			}
		}
		return r
	}
	r := Result{Status: status, Body: body}
	if status >= 200 && status < 300 {
		r.Type = history.OK
		return r
	}
	r.Code, r.Err = apiError(body)
	switch {
	case status == http.StatusNotFound && kind == Read:
		r.Type = history.OK // the key or service does not exist: a definite answer
	case status == http.StatusGatewayTimeout, status >= 500 && status != http.StatusServiceUnavailable:
		// 504 outcome_unknown; any other 5xx is also treated as unknown.
		r.Type = history.Info
		if kind == Read {
			r.Type = history.Fail
		}
	default:
		// 503 no_leader (not applied), 409 cas_conflict, other 4xx.
		r.Type = history.Fail
	}
	return r
}

// apiError extracts {"error":{"code","message"}}.
func apiError(body []byte) (code, msg string) {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		s := string(body)
		if len(s) > 200 {
			s = s[:200]
		}
		return CodeHTTP, s
	}
	return e.Error.Code, e.Error.Message
}

func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
