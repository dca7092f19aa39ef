package model

import (
	"errors"
	"fmt"
	"math"

	"aigrid/engine/gguf"
)

// Config holds a model's hyperparameters, read from the GGUF metadata keys
// ARCH.embedding_length, ARCH.block_count and so on.
type Config struct {
	Arch    string // llama, qwen2 or qwen3
	Dim     int    // embedding length
	Layers  int
	FFN     int // feed-forward length
	Heads   int
	KVHeads int
	HeadDim int // attention.key_length (Dim/Heads when absent)
	Vocab   int
	Context int // context_length: the longest sequence

	Eps float32 // RMSNorm epsilon

	RopeDim  int     // dimensions rotated per head (rope.dimension_count)
	RopeBase float32 // rope.freq_base
	RopeNeox bool    // rotate pairs (i, i+RopeDim/2) rather than (2i, 2i+1)
	// Scaling (rope.scaling.*): FreqScale multiplies every angle (1/factor);
	// YaRN mixes interpolation and extrapolation per dimension.
	RopeScaling   string // none, linear or yarn
	FreqScale     float32
	YarnOrigCtx   int
	YarnBetaFast  float32
	YarnBetaSlow  float32
	YarnExtFactor float32
}

// Limits on hyperparameters, far above any model this engine can run on a CPU,
// so that a hostile file cannot make a huge allocation.
const (
	maxDim     = 1 << 16
	maxLayers  = 1 << 10
	maxHeads   = 1 << 10
	maxContext = 1 << 22
)

// ropeNeox says which RoPE layout llama.cpp uses for each architecture.
var ropeNeox = map[string]bool{"llama": false, "qwen2": true, "qwen3": true}

func readConfig(f *gguf.File) (Config, error) {
	var c Config
	var err error
	if c.Arch, err = f.String("general.architecture"); err != nil {
		return c, err
	}
	neox, ok := ropeNeox[c.Arch]
	if !ok {
		return c, fmt.Errorf("model: architecture %q is not supported (llama, qwen2, qwen3)", c.Arch)
	}
	c.RopeNeox = neox
	p := c.Arch + "."
	ints := []struct {
		key      string
		dst      *int
		def, max int // def < 0: required
	}{
		{"embedding_length", &c.Dim, -1, maxDim},
		{"block_count", &c.Layers, -1, maxLayers},
		{"feed_forward_length", &c.FFN, -1, 1 << 20},
		{"attention.head_count", &c.Heads, -1, maxHeads},
		{"attention.head_count_kv", &c.KVHeads, 0, maxHeads},
		{"attention.key_length", &c.HeadDim, 0, maxDim},
		{"context_length", &c.Context, 2048, maxContext},
		{"rope.dimension_count", &c.RopeDim, 0, maxDim},
		{"rope.scaling.original_context_length", &c.YarnOrigCtx, 0, maxContext},
	}
	for _, k := range ints {
		v, err := f.Int64(p + k.key)
		switch {
		case errors.Is(err, gguf.ErrMissing) && k.def >= 0:
			*k.dst = k.def
		case err != nil:
			return c, fmt.Errorf("model: %w", err)
		case v < 1 || v > int64(k.max):
			return c, fmt.Errorf("model: %s%s = %d is out of range (1 to %d)", p, k.key, v, k.max)
		default:
			*k.dst = int(v)
		}
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 {
		if c.Dim%c.Heads != 0 {
			return c, fmt.Errorf("model: embedding length %d is not a multiple of %d heads", c.Dim, c.Heads)
		}
		c.HeadDim = c.Dim / c.Heads
	}
	if v, err := f.Int64(p + "attention.value_length"); err == nil && v != int64(c.HeadDim) {
		return c, fmt.Errorf("model: value length %d differs from key length %d", v, c.HeadDim)
	}
	if c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("model: %d heads do not share %d key/value heads evenly", c.Heads, c.KVHeads)
	}
	if c.RopeDim == 0 {
		c.RopeDim = c.HeadDim
	}
	if c.RopeDim > c.HeadDim || c.RopeDim%2 != 0 {
		return c, fmt.Errorf("model: rope dimension %d does not fit head dimension %d", c.RopeDim, c.HeadDim)
	}

	floats := []struct {
		key string
		dst *float32
		def float32 // NaN: required
	}{
		{"attention.layer_norm_rms_epsilon", &c.Eps, float32(math.NaN())},
		{"rope.freq_base", &c.RopeBase, 10000},
		{"rope.scaling.factor", &c.FreqScale, 0},
		{"rope.scaling.yarn_beta_fast", &c.YarnBetaFast, 32},
		{"rope.scaling.yarn_beta_slow", &c.YarnBetaSlow, 1},
	}
	for _, k := range floats {
		v, err := f.Float32(p + k.key)
		switch {
		case errors.Is(err, gguf.ErrMissing) && !math.IsNaN(float64(k.def)):
			*k.dst = k.def
		case err != nil:
			return c, fmt.Errorf("model: %w", err)
		case math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < 0:
			return c, fmt.Errorf("model: %s%s = %v is not a usable number", p, k.key, v)
		default:
			*k.dst = v
		}
	}
	if c.RopeBase <= 0 {
		return c, fmt.Errorf("model: rope.freq_base must be positive")
	}
	c.RopeScaling = "none"
	if s, err := f.String(p + "rope.scaling.type"); err == nil {
		c.RopeScaling = s
	} else if !errors.Is(err, gguf.ErrMissing) {
		return c, fmt.Errorf("model: %w", err)
	}
	factor := c.FreqScale
	c.FreqScale = 1
	switch c.RopeScaling {
	case "none":
	case "linear", "yarn":
		if factor != 0 {
			c.FreqScale = 1 / factor
		}
		if c.YarnOrigCtx == 0 {
			c.YarnOrigCtx = c.Context
		}
		if c.RopeScaling == "yarn" {
			c.YarnExtFactor = 1 // llama.cpp's default for YaRN models
		}
	default:
		return c, fmt.Errorf("model: rope scaling %q is not supported (none, linear, yarn)", c.RopeScaling)
	}
	return c, nil
}

// QDim is the width of the queries (and of the attention output).
func (c *Config) QDim() int { return c.Heads * c.HeadDim }

// KVDim is the width of the keys and of the values of one position.
func (c *Config) KVDim() int { return c.KVHeads * c.HeadDim }
