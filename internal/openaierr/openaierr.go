// Package openaierr writes the grid's errors as OpenAI's API does: the HTTP
// status, and the body {"error": {"message", "type", "param", "code"}}. The
// api and the packages share it, so that every endpoint fails alike.
package openaierr

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"aigrid"
)

// MethodNotAllowed is the code of a 405.
const MethodNotAllowed = "method_not_allowed"

// Body is OpenAI's error shape.
type Body struct {
	Error Detail `json:"error"`
}

// Detail is the inside of Body.
type Detail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// Status maps an error code to its HTTP status and OpenAI error type.
func Status(code string) (int, string) {
	switch code {
	case aigrid.EInvalid:
		return http.StatusBadRequest, "invalid_request_error"
	case aigrid.EUnauthenticated:
		return http.StatusUnauthorized, "invalid_request_error"
	case aigrid.EForbidden:
		return http.StatusForbidden, "permission_error"
	case aigrid.ENotFound:
		return http.StatusNotFound, "invalid_request_error"
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed, "invalid_request_error"
	case aigrid.EConflict:
		return http.StatusConflict, "invalid_request_error"
	case aigrid.ERateLimited:
		return http.StatusTooManyRequests, "rate_limit_error"
	case aigrid.EQuotaExhausted:
		return http.StatusPaymentRequired, "insufficient_quota"
	case aigrid.ETooLarge:
		return http.StatusRequestEntityTooLarge, "invalid_request_error"
	case aigrid.EUnsupportedType:
		return http.StatusUnsupportedMediaType, "invalid_request_error"
	case aigrid.EUpstream:
		return http.StatusBadGateway, "upstream_error"
	case aigrid.EUnavailable:
		return http.StatusServiceUnavailable, "service_unavailable"
	}
	return http.StatusInternalServerError, "server_error"
}

// Code is the machine-readable code a client sees; it follows OpenAI's
// names where a client library may look for them.
func Code(e *aigrid.Error) string {
	switch {
	case e.Code == aigrid.EUnauthenticated:
		return "invalid_api_key"
	case e.Code == aigrid.ENotFound && e.Param == "model":
		return "model_not_found"
	case e.Code == aigrid.ERateLimited:
		return "rate_limit_exceeded"
	}
	return e.Code
}

// From turns any error into the application error a client may see: one
// that is not an *aigrid.Error is an internal error, whose details stay out.
func From(err error) *aigrid.Error {
	var e *aigrid.Error
	if errors.As(err, &e) {
		return e
	}
	return &aigrid.Error{Code: aigrid.EInternal, Message: aigrid.ErrorMessage(err)}
}

// Detailed is the body of e, whose OpenAI type is typ.
func Detailed(e *aigrid.Error, typ string) Body {
	b := Body{Error: Detail{Message: e.Message, Type: typ, Code: Code(e)}}
	if e.Param != "" {
		b.Error.Param = &e.Param
	}
	return b
}

// Write writes err as an OpenAI error response; log receives what an
// internal error really was.
func Write(w http.ResponseWriter, err error, log *slog.Logger) {
	e := From(err)
	status, typ := Status(e.Code)
	if status == http.StatusInternalServerError {
		log.Error("internal error", "error", err.Error())
	}
	WriteStatus(w, status, typ, e)
}

// WriteStatus writes e with the given status and type, and its Retry-After.
func WriteStatus(w http.ResponseWriter, status int, typ string, e *aigrid.Error) {
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + 999_999_999) / 1_000_000_000)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	WriteJSON(w, status, Detailed(e, typ))
}

// WriteJSON writes v as the JSON body of a response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "error", err.Error())
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"Internal error.","type":"server_error","param":null,"code":"internal"}}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
