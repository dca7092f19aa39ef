package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"aigrid"
	"aigrid/internal/offstack"
)

// readBody reads a JSON request body up to limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, aigrid.Errorf(aigrid.EUnsupportedType, "Content-Type %q is not supported: send the body as JSON with Content-Type: application/json.", ct)
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, aigrid.Errorf(aigrid.ETooLarge, "The request body is larger than this grid's limit of %s.", formatBytes(limit))
		}
		return nil, aigrid.Errorf(aigrid.EInvalid, "The request body could not be read: %v.", err)
	}
	return body, nil
}

// decodeJSON decodes a request body into v, turning decoder errors into
// messages that name the parameter at fault.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return aigrid.Errorf(aigrid.EInvalid, "The request body is empty: send a JSON object.")
	}
	return jsonError(json.Unmarshal(body, v))
}

// decodeStrictJSON is decodeJSON refusing a field that v does not have: in
// the admin API a misspelt max_concurrency or price would otherwise be
// dropped, and the provider or tenant stored without it.
func decodeStrictJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return aigrid.Errorf(aigrid.EInvalid, "The request body is empty: send a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// A decoder stops after one value; Unmarshal refuses what follows it.
	if at := dec.InputOffset(); len(bytes.TrimSpace(body[at:])) > 0 {
		return aigrid.Errorf(aigrid.EInvalid, "We could not parse the JSON body of your request: more follows the object (at byte %d).", at)
	}
	return nil
}

// jsonError turns a decoder's error into a message that names the parameter
// at fault; nil stays nil.
func jsonError(err error) error {
	if err == nil {
		return nil
	}
	// encoding/json has no error type for an unknown field, only this text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return aigrid.ParamErrorf(name, "Unknown field %q in the request body: check its spelling. Nothing was changed.", name)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return aigrid.Errorf(aigrid.EInvalid, "We could not parse the JSON body of your request: %v (at byte %d).", syntax, syntax.Offset)
	case errors.As(err, &typ) && typ.Field == "":
		return aigrid.Errorf(aigrid.EInvalid, "The request body must be a JSON object, not %s.", typ.Value)
	case errors.As(err, &typ):
		return aigrid.ParamErrorf(typ.Field, "Invalid type for '%s': expected %s, got %s.", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return aigrid.Errorf(aigrid.EInvalid, "We could not parse the JSON body of your request: it ends too early.")
	}
	// Errors from the custom decoders (content, stop, input) are written for people already.
	return aigrid.Errorf(aigrid.EInvalid, "Invalid request body: %v.", err)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	case "float32", "float64":
		return "a number"
	}
	if strings.Contains(goKind, "int") {
		return "an integer"
	}
	return goKind
}

// decodeChatRequest reads and checks a chat completion request body. It runs
// off the handler's stack (see package offstack): encoding/json recurses
// through about a KiB of stack for each level of nesting (message, content
// part, tool call), which on a stream's handler would double its stack to
// 16 KiB for the stream's whole life, where 8 KiB hold it.
func decodeChatRequest(body []byte) (req *aigrid.ChatRequest, err error) {
	offstack.Compute(func() { req, err = checkChatRequest(body) })
	return req, err
}

func checkChatRequest(body []byte) (*aigrid.ChatRequest, error) {
	var req aigrid.ChatRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

// decodeEmbeddingRequest reads and checks an embeddings request body.
func decodeEmbeddingRequest(body []byte) (*aigrid.EmbeddingRequest, error) {
	var req aigrid.EmbeddingRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return &req, nil
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
