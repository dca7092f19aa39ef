package local

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"

	"aigrid"
)

// Embed returns, for each input, the mean of the model's final hidden states
// over its tokens, L2-normalised (llama.cpp's mean pooling).
func (p *Provider) Embed(ctx context.Context, offer *aigrid.Offer, req *aigrid.EmbeddingRequest) (*aigrid.EmbeddingResponse, error) {
	s, err := p.begin(offer)
	if err != nil {
		return nil, err
	}
	defer p.inflight.Done()
	if d := req.Dimensions; d != nil && *d != s.m.Dim {
		return nil, aigrid.ParamErrorf("dimensions", "This model's embeddings have %d dimensions; it cannot shorten them to %d.", s.m.Dim, *d)
	}
	inputs := make([][]int32, 0, req.Input.Len())
	for _, t := range req.Input.Texts {
		inputs = append(inputs, s.m.Tok.Encode(t, true, false))
	}
	for _, ids := range req.Input.Tokens {
		in := make([]int32, len(ids))
		for i, id := range ids {
			if id < 0 || id >= int64(s.m.Vocab) {
				return nil, aigrid.ParamErrorf("input", "Token %d is not in the model's vocabulary of %d.", id, s.m.Vocab)
			}
			in[i] = int32(id)
		}
		inputs = append(inputs, in)
	}
	resp := &aigrid.EmbeddingResponse{Object: "list", Model: offer.Model, Data: make([]aigrid.Embedding, len(inputs))}
	for i, in := range inputs {
		vec, err := s.sched.Embed(ctx, in)
		if err != nil {
			return nil, err
		}
		raw, err := encode(vec, req.EncodingFormat == "base64")
		if err != nil {
			return nil, err
		}
		resp.Data[i] = aigrid.Embedding{Object: "embedding", Index: i, Embedding: raw}
		resp.Usage.PromptTokens += len(in)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	return resp, nil
}

// encode writes a vector as a JSON array, or as a base64 string of
// little-endian float32s.
func encode(vec []float32, b64 bool) (json.RawMessage, error) {
	if !b64 {
		return json.Marshal(vec)
	}
	b := make([]byte, 4*len(vec))
	for i, v := range vec {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}
