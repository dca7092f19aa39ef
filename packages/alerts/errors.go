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
	"aigrid/internal/openaierr"
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

func write(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// writeError writes err as the api does (OpenAI's error shape); an error
// that is not an *aigrid.Error is logged and reaches the client only as
// "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	openaierr.Write(w, err, slog.Default().With("package", "alerts", "path", r.URL.Path))
}

// codeMethodNotAllowed is the code of a 405, as the api writes it.
const codeMethodNotAllowed = openaierr.MethodNotAllowed

func writeJSON(w http.ResponseWriter, status int, v any) { openaierr.WriteJSON(w, status, v) }
