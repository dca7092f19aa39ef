package aigrid

import (
	"errors"
	"fmt"
	"time"
)

// Error codes. The api package maps each to one HTTP status and OpenAI error type.
const (
	EInvalid         = "invalid"
	EUnauthenticated = "unauthenticated"
	EForbidden       = "forbidden"
	ENotFound        = "not_found"
	EConflict        = "conflict"
	ERateLimited     = "rate_limited"
	EQuotaExhausted  = "quota_exhausted"
	ETooLarge        = "too_large"
	EUnsupportedType = "unsupported_media_type"
	EUpstream        = "upstream"
	EUnavailable     = "unavailable"
	EInternal        = "internal"
)

// Error is an application error: a code, a message a person can act on, and
// optionally the request parameter at fault and how long to wait before retrying.
// Anything that is not an *Error reaches a client only as "Internal error.".
type Error struct {
	Code       string
	Message    string
	Param      string
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParamErrorf returns an EInvalid *Error that names the offending parameter.
func ParamErrorf(param, format string, args ...any) *Error {
	return &Error{Code: EInvalid, Param: param, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an application error, or EInternal for any other error.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of an application error, or "Internal error."
// for any other error, so that internal details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
