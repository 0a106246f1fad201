package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/valyala/fasthttp"

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

// statusOfCode maps a business error code to its HTTP status.
func statusOfCode(code string) int {
	switch code {
	case registry.CodeNotFound:
		return fasthttp.StatusNotFound
	case registry.CodeCASConflict, registry.CodeTypeConflict, registry.CodeConflict, registry.CodeTxnConflict:
		return fasthttp.StatusConflict
	case registry.CodeInvalid:
		return fasthttp.StatusBadRequest
	case registry.CodeAuditBacklogFull:
		return fasthttp.StatusServiceUnavailable
	case CodeUnauthenticated:
		return fasthttp.StatusUnauthorized
	case CodePermissionDenied, registry.CodeACLBootstrapped:
		return fasthttp.StatusForbidden
	}
	return fasthttp.StatusInternalServerError
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

func formatIndex(i uint64) string { return strconv.FormatUint(i, 10) }
