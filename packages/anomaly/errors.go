package anomaly

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"

	"aigrid"
)

// The package cannot import api; these few lines write the same
// OpenAI-shaped errors that api does.

// codeMethodNotAllowed is the code the api package uses for a 405.
const codeMethodNotAllowed = "method_not_allowed"

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
	case aigrid.ETooLarge:
		return http.StatusRequestEntityTooLarge, "invalid_request_error"
	case aigrid.EUnsupportedType:
		return http.StatusUnsupportedMediaType, "invalid_request_error"
	case codeMethodNotAllowed:
		return http.StatusMethodNotAllowed, "invalid_request_error"
	}
	return http.StatusInternalServerError, "server_error"
}

// writeError writes err as an OpenAI-shaped error. Errors that are not
// *aigrid.Error are logged and reach the client only as "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *aigrid.Error
	if !errors.As(err, &e) {
		slog.ErrorContext(r.Context(), "anomaly: internal error", "error", err.Error(), "path", r.URL.Path)
		e = aigrid.Errorf(aigrid.EInternal, "Internal error.")
	}
	status, typ := statusOf(e.Code)
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

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		slog.Error("anomaly: encode response", "error", err.Error())
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"Internal error.","type":"server_error","param":null,"code":"internal"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// maxBody bounds a request body: maxPoints points in either format fit.
const maxBody = 8 << 20

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, aigrid.Errorf(aigrid.ETooLarge, "The request body is larger than %d MiB: send the points in several requests.", maxBody>>20)
		}
		return nil, aigrid.Errorf(aigrid.EInvalid, "The request body could not be read: %v.", err)
	}
	return body, nil
}

// jsonProblem says what is wrong with a JSON body in words a client can act on.
func jsonProblem(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return syntax.Error() + " at byte " + strconv.FormatInt(syntax.Offset, 10)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "it ends too early"
	case errors.As(err, &typ) && typ.Field != "":
		return typ.Field + " must be " + kind(typ.Type.Kind()) + ", not " + typ.Value
	case errors.As(err, &typ):
		return "expected " + kind(typ.Type.Kind()) + ", got " + typ.Value
	}
	return err.Error()
}

func kind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map, reflect.Pointer:
		return "an object"
	case reflect.Bool:
		return "true or false"
	}
	return "a number"
}
