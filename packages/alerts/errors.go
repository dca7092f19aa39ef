package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"aigrid"
)

// maxBody bounds a request body: a CAP message or a week of case counts
// for a country is far smaller.
const maxBody = 4 << 20

// readBody reads the request body up to maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, aigrid.Errorf(aigrid.ETooLarge, "The request body is larger than %d MiB.", maxBody>>20)
		}
		return nil, aigrid.Errorf(aigrid.EInvalid, "The request body could not be read: %v.", err)
	}
	return body, nil
}

// decodeJSON decodes a JSON object into v with messages that name the field
// at fault. strict rejects unknown fields, so that a misspelt CAP element
// is not silently dropped from an alert.
func decodeJSON(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return aigrid.Errorf(aigrid.EInvalid, "The request body is empty: send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("extra data after the JSON object")
	}
	if err == nil {
		if _, tokErr := dec.Token(); tokErr != io.EOF {
			err = errors.New("extra data after the JSON object")
		}
	}
	if err == nil {
		return nil
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return aigrid.Errorf(aigrid.EInvalid, "The body is not valid JSON: %v (at byte %d).", syntax, syntax.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return aigrid.Errorf(aigrid.EInvalid, "The body is not valid JSON: it ends too early.")
	case errors.As(err, &typ) && typ.Field == "":
		return aigrid.Errorf(aigrid.EInvalid, "The body must be a JSON object, not %s.", typ.Value)
	case errors.As(err, &typ):
		// alertRequest embeds Alert, whose Go name the path carries.
		field := strings.TrimPrefix(typ.Field, "Alert.")
		return aigrid.ParamErrorf(field, "%s has the wrong type: expected %s, got %s.", field, kind(typ.Type.Kind().String()), typ.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return aigrid.ParamErrorf(field, "Unknown field %q: CAP's element names are case-sensitive (msgType, areaDesc, ...).", field)
	}
	return aigrid.Errorf(aigrid.EInvalid, "Invalid request body: %v.", err)
}

func kind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "float32", "float64", "int", "int64":
		return "a number"
	}
	return goKind
}

// writeError writes err as an OpenAI-shaped error. Errors that are not
// *aigrid.Error are logged and reach the client only as "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *aigrid.Error
	if !errors.As(err, &e) {
		slog.ErrorContext(r.Context(), "alerts: internal error", "error", err.Error(), "path", r.URL.Path)
		e = aigrid.Errorf(aigrid.EInternal, "Internal error.")
	}
	status, typ := http.StatusInternalServerError, "server_error"
	switch e.Code {
	case aigrid.EInvalid:
		status, typ = http.StatusBadRequest, "invalid_request_error"
	case aigrid.EUnauthenticated:
		status, typ = http.StatusUnauthorized, "invalid_request_error"
	case aigrid.EForbidden:
		status, typ = http.StatusForbidden, "permission_error"
	case aigrid.ENotFound:
		status, typ = http.StatusNotFound, "invalid_request_error"
	case aigrid.EConflict:
		status, typ = http.StatusConflict, "invalid_request_error"
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
		slog.Error("alerts: encode response", "error", err.Error())
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"Internal error.","type":"server_error","param":null,"code":"internal"}}`)
	}
	write(w, status, "application/json", append(b, '\n'))
}

func write(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}
