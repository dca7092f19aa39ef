package aigrid

import (
	"bytes"
	"encoding/json"
	"errors"
)

// EmbeddingRequest is the canonical embeddings request (OpenAI's JSON form).
type EmbeddingRequest struct {
	Model          string         `json:"model"`
	Input          EmbeddingInput `json:"input"`
	EncodingFormat string         `json:"encoding_format,omitempty"`
	Dimensions     *int           `json:"dimensions,omitempty"`
	User           string         `json:"user,omitempty"`
}

// EmbeddingInput is a string, an array of strings, an array of token ids, or an
// array of arrays of token ids. Exactly one of Texts and Tokens is set.
type EmbeddingInput struct {
	Texts  []string
	Tokens [][]int64
	// single remembers that the JSON held one string or one token array, to write it back the same way.
	single bool
}

// Len returns the number of inputs.
func (in EmbeddingInput) Len() int { return len(in.Texts) + len(in.Tokens) }

func (in EmbeddingInput) MarshalJSON() ([]byte, error) {
	switch {
	case in.Texts != nil && in.single && len(in.Texts) == 1:
		return json.Marshal(in.Texts[0])
	case in.Texts != nil:
		return json.Marshal(in.Texts)
	case in.single && len(in.Tokens) == 1:
		return json.Marshal(in.Tokens[0])
	default:
		return json.Marshal(in.Tokens)
	}
}

var errEmbeddingInput = errors.New("input must be a string, an array of strings, an array of token ids or an array of arrays of token ids")

func (in *EmbeddingInput) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errEmbeddingInput
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return errEmbeddingInput
		}
		*in = EmbeddingInput{Texts: []string{s}, single: true}
		return nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(b, &items); err != nil || len(items) == 0 {
		return errEmbeddingInput
	}
	first := bytes.TrimSpace(items[0])
	switch {
	case len(first) > 0 && first[0] == '"':
		var texts []string
		if err := json.Unmarshal(b, &texts); err != nil {
			return errEmbeddingInput
		}
		*in = EmbeddingInput{Texts: texts}
	case len(first) > 0 && first[0] == '[':
		var tokens [][]int64
		if err := json.Unmarshal(b, &tokens); err != nil {
			return errEmbeddingInput
		}
		*in = EmbeddingInput{Tokens: tokens}
	default:
		var tokens []int64
		if err := json.Unmarshal(b, &tokens); err != nil {
			return errEmbeddingInput
		}
		*in = EmbeddingInput{Tokens: [][]int64{tokens}, single: true}
	}
	return nil
}

// Validate checks a request as OpenAI's API would.
func (r *EmbeddingRequest) Validate() error {
	if r.Model == "" {
		return ParamErrorf("model", "you must provide a model parameter")
	}
	n := r.Input.Len()
	if n == 0 {
		return ParamErrorf("input", "input must not be empty")
	}
	if n > 2048 {
		return ParamErrorf("input", "input may hold at most 2048 items, got %d", n)
	}
	for _, t := range r.Input.Texts {
		if t == "" {
			return ParamErrorf("input", "input strings must not be empty")
		}
	}
	for _, t := range r.Input.Tokens {
		if len(t) == 0 {
			return ParamErrorf("input", "input token arrays must not be empty")
		}
	}
	switch r.EncodingFormat {
	case "", "float", "base64":
	default:
		return ParamErrorf("encoding_format", "encoding_format must be float or base64, got %q", r.EncodingFormat)
	}
	if r.Dimensions != nil && *r.Dimensions < 1 {
		return ParamErrorf("dimensions", "dimensions must be at least 1, got %d", *r.Dimensions)
	}
	return nil
}

// EstimateTokens guesses the input's size in tokens before any tokenizer has
// seen it: about four characters a token, or the token arrays' lengths.
func (r *EmbeddingRequest) EstimateTokens() int {
	n := 0
	for _, t := range r.Input.Texts {
		n += (len(t) + 3) / 4
	}
	for _, t := range r.Input.Tokens {
		n += len(t)
	}
	return n
}

// EmbeddingResponse is the answer to an embeddings request.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  Usage       `json:"usage"`
}

// Embedding is one vector: a JSON array of floats, or a base64 string of
// little-endian float32s when the request asked for base64. It is kept as raw
// JSON so that a proxied vector is never decoded and encoded again.
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}
