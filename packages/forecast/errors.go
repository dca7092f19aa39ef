package forecast

import (
	"log/slog"
	"net/http"

	"aigrid/internal/openaierr"
)

// writeError writes err as the api does (OpenAI's error shape); an error
// that is not an *aigrid.Error is logged and reaches the client only as
// "Internal error.".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	openaierr.Write(w, err, slog.Default().With("package", "forecast", "path", r.URL.Path))
}

// codeMethodNotAllowed is the code of a 405, as the api writes it.
const codeMethodNotAllowed = openaierr.MethodNotAllowed

func writeJSON(w http.ResponseWriter, status int, v any) { openaierr.WriteJSON(w, status, v) }
