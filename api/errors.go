package api

import (
	"net/http"

	"aigrid"
	"aigrid/internal/openaierr"
)

// writeError writes err as an OpenAI error response, logging internal ones
// with the request's logger.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	openaierr.Write(w, err, logger(w))
}

func writeErrorStatus(w http.ResponseWriter, status int, typ string, e *aigrid.Error) {
	openaierr.WriteStatus(w, status, typ, e)
}

// writeJSON writes v as the JSON body of a response.
func writeJSON(w http.ResponseWriter, status int, v any) { openaierr.WriteJSON(w, status, v) }
