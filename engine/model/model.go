// Package model runs the forward pass of decoder-only transformers stored in GGUF
// files: the llama architecture (Llama 3.x, SmolLM2, TinyLlama), qwen2 (Qwen2.5,
// with query/key/value biases) and qwen3 (with per-head RMS norms of queries and
// keys), computing as llama.cpp does.
//
// # Weights, sequences, workers
//
// Load maps a file and keeps the weights in the mapping (nothing is copied but
// the norm vectors and biases). A Model is read-only and safe for concurrent use.
//
// A Seq is one sequence's key/value cache: float32, one slice per layer, grown
// (doubling) as tokens are added, up to Config.Context, in memory mapped
// outside the Go heap (see Seq). Seq.Len is the number of positions cached
// and Seq.Tokens their tokens; Seq.Truncate drops the tail (to reuse a shared
// prefix, or to undo); Seq.Free returns the memory at once (a client that went
// away; a Seq dropped without Free keeps it until the collector finds it). For admission control, KVBytesPerToken is the
// memory of one cached token and Seq.Bytes what a sequence holds now. A Seq
// is not safe for concurrent use; it may move between workers between calls.
//
// A Worker holds the scratch memory of forward passes and computes on a
// tensor.Pool; it is used by one goroutine at a time (workers sharing a pool
// take turns at each product). Worker.Forward runs one step over a batch of
// sequences, each step with any number of new tokens:
//
//	logits, err := w.Forward([]model.Step{
//		{Seq: a, Tokens: promptChunk},             // prefill: logits of the last token
//		{Seq: b, Tokens: []int32{next}},          // decode
//		{Seq: c, Tokens: toks, Logits: model.All}, // scoring: logits of every token
//	})
//
// All tokens of all steps go through each weight matrix together, as one
// matrix-matrix product (tensor.Pool.MatMul), so decoding N sequences in one
// step reads the weights once: this is what continuous batching is built on.
// Attention runs per sequence, parallel over (token, head) pairs. logits[i]
// holds the rows of step i (Config.Vocab values each) and stays valid until
// the next call. A bad batch (an empty step, a token outside the vocabulary,
// a sequence twice, a sequence that would exceed the context: ErrContext)
// fails the whole call before anything is computed, leaving every sequence
// unchanged. A scheduler chunks long prompts itself (a few hundred tokens per
// step keep the scratch memory small and decoding sequences responsive).
//
// Worker.Embed returns the mean over a text's tokens of the final hidden
// states (after the output norm), L2-normalised, as llama.cpp's mean pooling.
package model

import (
	"errors"
	"fmt"

	"aigrid/engine/gguf"
	"aigrid/engine/tensor"
	"aigrid/engine/tokenizer"
)

// Model is a loaded model: configuration, tokenizer and weights.
type Model struct {
	Config
	Tok  *tokenizer.Tokenizer
	File *gguf.File

	embd      tensor.Matrix // token_embd: Vocab rows of Dim
	output    tensor.Matrix // output, or token_embd when tied
	outNorm   []float32
	ropeFreqs []float32 // rope_freqs: divisors of each pair's frequency, or nil
	layers    []layer
}

type layer struct {
	attnNorm, ffnNorm   []float32
	q, k, v, o          tensor.Matrix
	qBias, kBias, vBias []float32 // qwen2
	qNorm, kNorm        []float32 // qwen3, HeadDim each
	gate, up, down      tensor.Matrix
}

// Load opens the GGUF file at path and prepares its model. Close releases it.
func Load(path string) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := New(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// Close releases the file; the model must not be used afterwards.
func (m *Model) Close() error { return m.File.Close() }

// New prepares the model of an open file, which must stay open while it is used.
func New(f *gguf.File) (*Model, error) {
	c, err := readConfig(f)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: c, Tok: tok, File: f}
	m.Vocab = tok.Len()
	l := loader{f: f}
	m.embd = l.matrix("token_embd.weight", m.Vocab, c.Dim)
	m.outNorm = l.vector("output_norm.weight", c.Dim)
	m.output = m.embd
	if _, err := f.Tensor("output.weight"); err == nil {
		m.output = l.matrix("output.weight", m.Vocab, c.Dim)
	}
	if _, err := f.Tensor("rope_freqs.weight"); err == nil {
		m.ropeFreqs = l.vector("rope_freqs.weight", c.RopeDim/2)
	}
	m.layers = make([]layer, c.Layers)
	for i := range m.layers {
		b := fmt.Sprintf("blk.%d.", i)
		ly := &m.layers[i]
		ly.attnNorm = l.vector(b+"attn_norm.weight", c.Dim)
		ly.q = l.matrix(b+"attn_q.weight", c.QDim(), c.Dim)
		ly.k = l.matrix(b+"attn_k.weight", c.KVDim(), c.Dim)
		ly.v = l.matrix(b+"attn_v.weight", c.KVDim(), c.Dim)
		ly.o = l.matrix(b+"attn_output.weight", c.Dim, c.QDim())
		ly.ffnNorm = l.vector(b+"ffn_norm.weight", c.Dim)
		ly.gate = l.matrix(b+"ffn_gate.weight", c.FFN, c.Dim)
		ly.up = l.matrix(b+"ffn_up.weight", c.FFN, c.Dim)
		ly.down = l.matrix(b+"ffn_down.weight", c.Dim, c.FFN)
		switch c.Arch {
		case "qwen2":
			ly.qBias = l.vector(b+"attn_q.bias", c.QDim())
			ly.kBias = l.vector(b+"attn_k.bias", c.KVDim())
			ly.vBias = l.vector(b+"attn_v.bias", c.KVDim())
		case "qwen3":
			ly.qNorm = l.vector(b+"attn_q_norm.weight", c.HeadDim)
			ly.kNorm = l.vector(b+"attn_k_norm.weight", c.HeadDim)
		}
	}
	if l.err != nil {
		return nil, l.err
	}
	return m, nil
}

// loader reads tensors, keeping the first error.
type loader struct {
	f   *gguf.File
	err error
}

func (l *loader) tensor(name string, want ...int) (gguf.Tensor, bool) {
	if l.err != nil {
		return gguf.Tensor{}, false
	}
	t, err := l.f.Tensor(name)
	if err != nil {
		l.err = fmt.Errorf("model: %w", err)
		return t, false
	}
	ok := len(t.Dims) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = t.Dims[i] == uint64(want[i])
	}
	if !ok {
		l.err = fmt.Errorf("model: tensor %s has shape %v, want %v", name, t.Dims, want)
		return t, false
	}
	return t, true
}

// matrix returns a weight of rows×cols (ggml dims [cols, rows]), left in the mapping.
func (l *loader) matrix(name string, rows, cols int) tensor.Matrix {
	t, ok := l.tensor(name, cols, rows)
	if !ok {
		return tensor.Matrix{}
	}
	mx := tensor.Matrix{Type: tensor.Type(t.Type), Rows: rows, Cols: cols, Data: t.Data}
	if err := mx.Check(); err != nil {
		l.err = fmt.Errorf("model: tensor %s: %w", name, err)
	}
	return mx
}

// vector returns a small tensor of n values as float32 (a copy).
func (l *loader) vector(name string, n int) []float32 {
	t, ok := l.tensor(name, n)
	if !ok {
		return nil
	}
	v := make([]float32, n)
	if err := tensor.Dequantize(tensor.Type(t.Type), v, t.Data); err != nil || !tensor.Type(t.Type).Valid() {
		l.err = fmt.Errorf("model: tensor %s: cannot read %v values", name, t.Type)
	}
	return v
}

// KVBytesPerToken is the key/value cache memory of one cached token.
func (m *Model) KVBytesPerToken() int { return 2 * 4 * m.Layers * m.KVDim() }

// ErrContext is wrapped by Forward's error when a sequence would grow past the
// model's context length.
var ErrContext = errors.New("context length exceeded")
