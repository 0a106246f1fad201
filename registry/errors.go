package registry

import "fmt"

// Error codes, shared with the API error shape.
const (
	CodeNotFound     = "not_found"
	CodeCASConflict  = "cas_conflict"
	CodeTypeConflict = "type_conflict"
	CodeConflict     = "conflict"
	CodeInvalid      = "invalid"
	CodeInternal     = "internal"
)

// Error is a business or validation error. Field names the offending input
// field for validation errors.
type Error struct {
	Code    string
	Field   string
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// invalid builds a validation error naming field.
func invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

func internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: err.Error()}
}
