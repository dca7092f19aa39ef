package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"

	"aigrid/engine/gguf"
	"aigrid/engine/tensor"
)

// Spec describes a model of random weights for WriteRandom: the shapes, the
// tensor types and the vocabulary. The same Spec gives the same file.
type Spec struct {
	Arch                                      string // llama, qwen2 or qwen3
	Dim, Layers, FFN, Heads, KVHeads, Context int
	HeadDim                                   int // 0: Dim/Heads
	Vocab                                     int // 0: the vocabulary's size
	// Quant is the file type: F32, F16, BF16, Q8_0, Q4_0 (all matrices of that
	// type) or Q4_K_M (llama.cpp's mix: Q4_K, with Q6_K for the output and for
	// attn_v and ffn_down in some layers). A matrix whose rows are not a whole
	// number of K-quant blocks falls back to Q4_0 for Q4_K (llama.cpp would use
	// Q5_0, which this engine lacks) and to Q8_0 for Q6_K, as llama.cpp does.
	Quant string
	Tied  bool // no output.weight: the output is token_embd
	// LogitScale is the standard deviation of the logits of a unit hidden
	// state (default 3): large enough that the top two tokens differ clearly.
	LogitScale float32
	RopeBase   float32 // 0: 10000
	// RopeScaling and RopeFactor set rope.scaling.type and .factor, with
	// RopeOrigCtx as rope.scaling.original_context_length.
	RopeScaling string
	RopeFactor  float32
	RopeOrigCtx int
	Seed        uint64
	Vocabulary  *Vocabulary // nil: SyntheticVocabulary(Vocab)
}

var fileTypes = map[string]uint32{"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q4_K_M": 15, "BF16": 32}

// WriteRandom writes a GGUF model of random weights made to spec to path.
func WriteRandom(path string, spec Spec) error {
	w, err := RandomWriter(spec)
	if err != nil {
		return err
	}
	return w.WriteFile(path)
}

// RandomWriter builds the GGUF model of WriteRandom in memory.
func RandomWriter(spec Spec) (*gguf.Writer, error) {
	s := spec
	ft, ok := fileTypes[s.Quant]
	if !ok {
		return nil, fmt.Errorf("model: no file type %q (F32, F16, BF16, Q8_0, Q4_0, Q4_K_M)", s.Quant)
	}
	if _, ok := ropeNeox[s.Arch]; !ok {
		return nil, fmt.Errorf("model: architecture %q is not supported", s.Arch)
	}
	if s.Dim <= 0 || s.Layers <= 0 || s.FFN <= 0 || s.Heads <= 0 || s.KVHeads <= 0 || s.Heads%s.KVHeads != 0 {
		return nil, fmt.Errorf("model: bad shape %+v", s)
	}
	if s.HeadDim == 0 {
		s.HeadDim = s.Dim / s.Heads
	}
	if s.Context == 0 {
		s.Context = 4096
	}
	if s.LogitScale == 0 {
		s.LogitScale = 3
	}
	if s.RopeBase == 0 {
		s.RopeBase = 10000
	}
	v := s.Vocabulary
	if v == nil {
		v = SyntheticVocabulary(s.Vocab)
	}
	if s.Vocab < len(v.Tokens) {
		s.Vocab = len(v.Tokens)
	}

	w := gguf.NewWriter()
	a := s.Arch + "."
	w.Set("general.architecture", s.Arch)
	w.Set("general.name", fmt.Sprintf("aigrid random %s %s", s.Arch, s.Quant))
	w.Set("general.file_type", ft)
	w.Set(a+"context_length", uint32(s.Context))
	w.Set(a+"embedding_length", uint32(s.Dim))
	w.Set(a+"block_count", uint32(s.Layers))
	w.Set(a+"feed_forward_length", uint32(s.FFN))
	w.Set(a+"attention.head_count", uint32(s.Heads))
	w.Set(a+"attention.head_count_kv", uint32(s.KVHeads))
	w.Set(a+"attention.key_length", uint32(s.HeadDim))
	w.Set(a+"attention.value_length", uint32(s.HeadDim))
	w.Set(a+"rope.dimension_count", uint32(s.HeadDim))
	w.Set(a+"rope.freq_base", s.RopeBase)
	w.Set(a+"attention.layer_norm_rms_epsilon", float32(1e-6))
	if s.RopeScaling != "" {
		w.Set(a+"rope.scaling.type", s.RopeScaling)
		w.Set(a+"rope.scaling.factor", s.RopeFactor)
		w.Set(a+"rope.scaling.original_context_length", uint32(s.RopeOrigCtx))
	}
	v.set(w, s.Vocab)

	g := &randGen{spec: &s, w: w}
	qd, kvd := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	// Embeddings of norm about LogitScale: with tied weights they are the output.
	embStd := s.LogitScale / float32(math.Sqrt(float64(s.Dim)))
	g.matrix("token_embd.weight", s.Vocab, s.Dim, embStd, g.typeOf("token_embd", 0))
	g.vector("output_norm.weight", s.Dim, 1, 0.1)
	if !s.Tied {
		g.matrix("output.weight", s.Vocab, s.Dim, embStd, g.typeOf("output", 0))
	}
	for l := range s.Layers {
		b := fmt.Sprintf("blk.%d.", l)
		g.vector(b+"attn_norm.weight", s.Dim, 1, 0.1)
		// Queries and keys twice the usual scale make attention selective.
		g.matrix(b+"attn_q.weight", qd, s.Dim, 2, g.typeOf("attn_q", l))
		g.matrix(b+"attn_k.weight", kvd, s.Dim, 2, g.typeOf("attn_k", l))
		g.matrix(b+"attn_v.weight", kvd, s.Dim, 1, g.typeOf("attn_v", l))
		switch s.Arch {
		case "qwen2":
			g.vector(b+"attn_q.bias", qd, 0, 0.5)
			g.vector(b+"attn_k.bias", kvd, 0, 0.5)
			g.vector(b+"attn_v.bias", kvd, 0, 0.5)
		case "qwen3":
			g.vector(b+"attn_q_norm.weight", s.HeadDim, 1, 0.2)
			g.vector(b+"attn_k_norm.weight", s.HeadDim, 1, 0.2)
		}
		g.matrix(b+"attn_output.weight", s.Dim, qd, 1, g.typeOf("attn_output", l))
		g.vector(b+"ffn_norm.weight", s.Dim, 1, 0.1)
		g.matrix(b+"ffn_gate.weight", s.FFN, s.Dim, 1, g.typeOf("ffn_gate", l))
		g.matrix(b+"ffn_up.weight", s.FFN, s.Dim, 1, g.typeOf("ffn_up", l))
		g.matrix(b+"ffn_down.weight", s.Dim, s.FFN, 1, g.typeOf("ffn_down", l))
	}
	return w, nil
}

type randGen struct {
	spec *Spec
	w    *gguf.Writer
	n    uint64 // tensors made, to seed each one apart
}

func (g *randGen) rng() *rand.Rand {
	g.n++
	return rand.New(rand.NewPCG(g.spec.Seed, g.n))
}

// typeOf picks a matrix's type as llama.cpp's quantizer does for the file type
// (for Q4_K_M: more bits for the output and for attn_v and ffn_down in the
// first and last eighths of the layers and every third layer between).
func (g *randGen) typeOf(kind string, layer int) tensor.Type {
	switch g.spec.Quant {
	case "F32":
		return tensor.F32
	case "F16":
		return tensor.F16
	case "BF16":
		return tensor.BF16
	case "Q8_0":
		return tensor.Q8_0
	case "Q4_0":
		return tensor.Q4_0
	}
	n := g.spec.Layers
	moreBits := layer < n/8 || layer >= 7*n/8 || (layer-n/8)%3 == 2
	switch {
	case kind == "output" || kind == "token_embd" && g.spec.Tied:
		return tensor.Q6_K
	case (kind == "attn_v" || kind == "ffn_down") && moreBits:
		return tensor.Q6_K
	}
	return tensor.Q4_K
}

// matrix adds rows×cols of normal values of standard deviation scale/√cols
// (so that a product keeps its input's scale), quantized in parallel.
func (g *randGen) matrix(name string, rows, cols int, scale float32, t tensor.Type) {
	if cols%tensor.QKK != 0 {
		switch t {
		case tensor.Q4_K:
			t = tensor.Q4_0
		case tensor.Q6_K:
			t = tensor.Q8_0
		}
	}
	std := scale / float32(math.Sqrt(float64(cols)))
	rb := t.RowBytes(cols)
	if rb < 0 {
		g.w.AddTensor(name, gguf.GGMLType(t), []uint64{uint64(cols), uint64(rows)}, nil) // reports the shape error
		return
	}
	data := make([]byte, rows*rb)
	seed := g.rng().Uint64()
	// Each chunk of rows has its own stream, so the values do not depend on
	// how many goroutines make them.
	const chunk = 64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			x := make([]float32, cols)
			for {
				c := int(next.Add(1) - 1)
				if c*chunk >= rows {
					return
				}
				r := rand.New(rand.NewPCG(seed, uint64(c)))
				for row := c * chunk; row < min(rows, (c+1)*chunk); row++ {
					for i := range x {
						x[i] = float32(r.NormFloat64()) * std
					}
					tensor.Quantize(t, data[row*rb:(row+1)*rb], x)
				}
			}
		})
	}
	wg.Wait()
	g.w.AddTensor(name, gguf.GGMLType(t), []uint64{uint64(cols), uint64(rows)}, data)
}

// vector adds n float32 values, mean plus normal noise of standard deviation std.
func (g *randGen) vector(name string, n int, mean, std float32) {
	r := g.rng()
	data := make([]byte, 4*n)
	x := make([]float32, n)
	for i := range x {
		x[i] = mean + float32(r.NormFloat64())*std
	}
	tensor.Quantize(tensor.F32, data, x)
	g.w.AddTensor(name, gguf.F32, []uint64{uint64(n)}, data)
}
