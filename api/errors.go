package api

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"aigrid"
)

// errorBody is OpenAI's error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// statusOf maps an error code to its HTTP status and OpenAI error type.
func statusOf(code string) (int, string) {
	switch code {
	case aigrid.EInvalid:
		return http.StatusBadRequest, "invalid_request_error"
	case aigrid.EUnauthenticated:
		return http.StatusUnauthorized, "invalid_request_error"
	case aigrid.EForbidden:
		return http.StatusForbidden, "permission_error"
	case aigrid.ENotFound:
		return http.StatusNotFound, "invalid_request_error"
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

// errorCode is the machine-readable code a client sees; it follows OpenAI's
// names where a client library may look for them.
func errorCode(e *aigrid.Error) string {
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

// toError turns any error into the application error a client may see.
// Anything else is logged and reported as an internal error.
func toError(err error) *aigrid.Error {
	if e, ok := err.(*aigrid.Error); ok {
		return e
	}
	return &aigrid.Error{Code: aigrid.ErrorCode(err), Message: aigrid.ErrorMessage(err)}
}

// writeError writes err as an OpenAI error response.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := toError(err)
	status, typ := statusOf(e.Code)
	if status == http.StatusInternalServerError {
		logger(r).Error("internal error", "error", err.Error())
	}
	writeErrorStatus(w, status, typ, e)
}

func writeErrorStatus(w http.ResponseWriter, status int, typ string, e *aigrid.Error) {
	body := errorBody{Error: errorDetail{Message: e.Message, Type: typ, Code: errorCode(e)}}
	if e.Param != "" {
		body.Error.Param = &e.Param
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + 999_999_999) / 1_000_000_000)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	writeJSON(w, status, body)
}

// writeJSON writes v as the JSON body of a response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("encode response", "error", err.Error())
		http.Error(w, `{"error":{"message":"Internal error.","type":"server_error","code":"internal"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
