package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/valyala/fasthttp"

	"github.com/nexus/nexus/fsm/command"
	"github.com/nexus/nexus/registry"
)

// Error codes of the API beyond registry's.
const (
	CodeInvalidJSON      = "invalid_json"
	CodeBodyTooLarge     = "body_too_large"
	CodeNoLeader         = "no_leader"
	CodeOutcomeUnknown   = "outcome_unknown"
	CodeNotReady         = "not_ready"
	CodeForbidden        = "forbidden"
	CodeMethodNotAllowed = "method_not_allowed"
	// CodeKeyringUnavailable: a keyring operation failed for another reason.
	CodeKeyringUnavailable = "keyring_unavailable"
)

const contentTypeJSON = "application/json"

// apiError is an error answer: {"error":{"code","message","field"?}}.
type apiError struct {
	status     int
	code       string
	message    string
	field      string
	retryAfter bool
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeError(ctx *fasthttp.RequestCtx, e *apiError) {
	if e.retryAfter {
		ctx.Response.Header.Set("Retry-After", "1")
	}
	b, _ := json.Marshal(errorBody{Error: errorDetail{Code: e.code, Message: e.message, Field: e.field}})
	ctx.SetStatusCode(e.status)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(b)
}

// writeJSON answers v as JSON with status.
func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, errInternal("cannot encode the answer: "+err.Error()))
		return
	}
	writeRaw(ctx, status, b)
}

func writeRaw(ctx *fasthttp.RequestCtx, status int, b []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentTypeJSON)
	ctx.SetBody(b)
}

func errInternal(msg string) *apiError {
	return &apiError{status: fasthttp.StatusInternalServerError, code: registry.CodeInternal, message: msg}
}

func errNotFound(msg string) *apiError {
	return &apiError{status: fasthttp.StatusNotFound, code: registry.CodeNotFound, message: msg}
}

func errNoLeader(msg string) *apiError {
	return &apiError{status: fasthttp.StatusServiceUnavailable, code: CodeNoLeader, message: msg, retryAfter: true}
}

func errOutcomeUnknown(msg string) *apiError {
	return &apiError{status: fasthttp.StatusGatewayTimeout, code: CodeOutcomeUnknown, message: msg}
}

func errBodyTooLarge(limit int) *apiError {
	return &apiError{status: fasthttp.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
		message: fmt.Sprintf("request body exceeds %d bytes", limit)}
}

// errInvalid is a 400 naming field; message is prefixed with the field.
func errInvalid(field, format string, args ...any) *apiError {
	msg := fmt.Sprintf(format, args...)
	if field != "" {
		msg = field + ": " + msg
	}
	return &apiError{status: fasthttp.StatusBadRequest, code: registry.CodeInvalid, message: msg, field: field}
}

// fromRegistry turns a validation error of registry into a 400.
func fromRegistry(e *registry.Error) *apiError {
	status := statusOfCode(e.Code)
	return &apiError{status: status, code: e.Code, message: e.Message, field: e.Field}
}

// statusOfCode is the one table from error codes (the domain's, the
// cluster's and health's through fsm/command, the API's own) to HTTP
// statuses. A code it does not know is a 500.
func statusOfCode(code string) int {
	switch code {
	case registry.CodeNotFound:
		return fasthttp.StatusNotFound
	case registry.CodeCASConflict, registry.CodeTypeConflict, registry.CodeConflict, registry.CodeTxnConflict, command.CodeFeatureUnavailable,
		command.CodeMemberAlive, command.CodeKeyringOff:
		return fasthttp.StatusConflict
	case registry.CodeInvalid, CodeInvalidJSON, command.CodeInvalidSnapshot:
		return fasthttp.StatusBadRequest
	case registry.CodeAuditBacklogFull, CodeNoLeader, CodeNotReady, command.CodeOwnerUnavailable,
		CodeKeyringUnavailable, CodeArchiveUnavailable:
		return fasthttp.StatusServiceUnavailable
	case CodeOutcomeUnknown:
		return fasthttp.StatusGatewayTimeout
	case CodeUnauthenticated:
		return fasthttp.StatusUnauthorized
	case CodePermissionDenied, registry.CodeACLBootstrapped, CodeForbidden:
		return fasthttp.StatusForbidden
	case CodeBodyTooLarge:
		return fasthttp.StatusRequestEntityTooLarge
	case CodeMethodNotAllowed:
		return fasthttp.StatusMethodNotAllowed
	}
	return fasthttp.StatusInternalServerError
}

// errorOf is the answer to an error of a lower layer (the writer, the
// cluster, the health duties), in one place. what names the operation in
// the outcome messages ("the write").
//   - Another node's answer passed through (a request relayed to the
//     leader, peerproto.Error): its status and code.
//   - An error that carries a code (ErrorCode(), or a *command.Error):
//     that code, its status from statusOfCode.
//   - The write outcomes: command.ErrNoLeader is 503 no_leader (surely not
//     carried out: retry); ErrOutcomeUnknown, ErrNotApplied and a deadline
//     are 504 outcome_unknown (maybe carried out).
//   - Anything else: 500 internal (ok is false: log it).
func errorOf(what string, err error) (e *apiError, ok bool) {
	var answer interface {
		StatusCode() int
		ErrorCode() string
	}
	var coded interface{ ErrorCode() string }
	var ce *command.Error
	switch {
	case errors.As(err, &answer):
		e = &apiError{status: answer.StatusCode(), code: answer.ErrorCode(), message: err.Error()}
		if e.status < 400 || e.status > 599 {
			e.status = fasthttp.StatusInternalServerError
		}
	case errors.As(err, &coded):
		e = &apiError{status: statusOfCode(coded.ErrorCode()), code: coded.ErrorCode(), message: err.Error()}
	case errors.As(err, &ce):
		e = &apiError{status: statusOfCode(ce.Code), code: ce.Code, message: ce.Message}
	case errors.Is(err, command.ErrNoLeader):
		return errNoLeader("no leader: " + what + " was not carried out; retry: " + err.Error()), true
	case errors.Is(err, command.ErrOutcomeUnknown), errors.Is(err, command.ErrNotApplied),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return errOutcomeUnknown(what + " may or may not have been carried out: " + err.Error()), true
	default:
		return errInternal(what + " failed: " + err.Error()), false
	}
	e.retryAfter = e.status == fasthttp.StatusServiceUnavailable
	return e, true
}

// decodeJSON decodes a request body whatever its Content-Type. Unknown
// fields are allowed. Errors name the field when the JSON has the wrong type.
func decodeJSON(body []byte, v any) *apiError {
	if len(body) == 0 {
		return &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON, message: "request body is empty; a JSON object is expected"}
	}
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON,
				message: fmt.Sprintf("request body: expected %s, got a JSON %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)}
		}
		return errInvalid(typeErr.Field, "expected %s, got a JSON %s", jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON,
			message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())}
	}
	return &apiError{status: fasthttp.StatusBadRequest, code: CodeInvalidJSON, message: "malformed JSON: " + err.Error()}
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(k string) string {
	switch k {
	case "int", "int8", "int16", "int32", "int64":
		return "an integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "a non-negative integer"
	case "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "a " + k
}
