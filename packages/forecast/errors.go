package forecast

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"aigrid"
)

// writeError writes err in OpenAI's error shape, as the api package does (a
// package cannot import it). Errors that are not *aigrid.Error are logged
// and reach the client only as "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *aigrid.Error
	if !errors.As(err, &e) {
		slog.ErrorContext(r.Context(), "forecast: internal error", "error", err.Error(), "path", r.URL.Path)
		e = aigrid.Errorf(aigrid.EInternal, "Internal error.")
	}
	status, typ := http.StatusInternalServerError, "server_error"
	switch e.Code {
	case aigrid.EInvalid:
		status, typ = http.StatusBadRequest, "invalid_request_error"
	case aigrid.ENotFound:
		status, typ = http.StatusNotFound, "invalid_request_error"
	case aigrid.ETooLarge:
		status, typ = http.StatusRequestEntityTooLarge, "invalid_request_error"
	case aigrid.EUnsupportedType:
		status, typ = http.StatusUnsupportedMediaType, "invalid_request_error"
	case codeMethodNotAllowed:
		status, typ = http.StatusMethodNotAllowed, "invalid_request_error"
	}
	type detail struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    string  `json:"code"`
	}
	d := detail{Message: e.Message, Type: typ, Code: e.Code}
	if e.Param != "" {
		d.Param = &e.Param
	}
	writeJSON(w, status, map[string]detail{"error": d})
}

// codeMethodNotAllowed is the code the api package uses for a 405.
const codeMethodNotAllowed = "method_not_allowed"

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("forecast: encode response", "error", err.Error())
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
