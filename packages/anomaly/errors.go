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
	"aigrid/internal/openaierr"
)

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

// writeError writes err as the api does (OpenAI's error shape); an error
// that is not an *aigrid.Error is logged and reaches the client only as
// "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	openaierr.Write(w, err, slog.Default().With("package", "anomaly", "path", r.URL.Path))
}

// codeMethodNotAllowed is the code of a 405, as the api writes it.
const codeMethodNotAllowed = openaierr.MethodNotAllowed

func writeJSON(w http.ResponseWriter, status int, v any) { openaierr.WriteJSON(w, status, v) }
