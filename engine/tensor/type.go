// Package tensor holds the compute kernels of aigrid's embedded inference engine:
// the GGML block formats (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K, Q8_K), their
// quantizers and dequantizers, and matrix-vector and matrix-matrix products that
// multiply quantized weights by float32 activations the way llama.cpp does, with
// SIMD kernels (GOEXPERIMENT=simd, amd64) and a portable fallback.
package tensor

import "fmt"

// Type is a GGML tensor type; the values are GGML's type ids as stored in GGUF files.
type Type uint32

// The GGML types this package computes with.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q8_0 Type = 8
	Q4_K Type = 12
	Q6_K Type = 14
	Q8_K Type = 15
	BF16 Type = 30
)

// QK is the block size of Q4_0 and Q8_0; QKK is the super-block size of the K-quants.
const (
	QK  = 32
	QKK = 256
)

type typeInfo struct {
	name       string
	blockSize  int
	blockBytes int
}

var types = map[Type]typeInfo{
	F32:  {"F32", 1, 4},
	F16:  {"F16", 1, 2},
	BF16: {"BF16", 1, 2},
	Q4_0: {"Q4_0", QK, 2 + QK/2},
	Q8_0: {"Q8_0", QK, 2 + QK},
	Q4_K: {"Q4_K", QKK, 2 + 2 + 12 + QKK/2},
	Q6_K: {"Q6_K", QKK, QKK/2 + QKK/4 + QKK/16 + 2},
	Q8_K: {"Q8_K", QKK, 4 + QKK + 2*QKK/16},
}

// Valid reports whether the package knows t.
func (t Type) Valid() bool {
	_, ok := types[t]
	return ok
}

func (t Type) String() string {
	if i, ok := types[t]; ok {
		return i.name
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// BlockSize is the number of values in one block of t (1 for the float types).
func (t Type) BlockSize() int { return types[t].blockSize }

// BytesPerBlock is the encoded size of one block of t.
func (t Type) BytesPerBlock() int { return types[t].blockBytes }

// RowBytes is the encoded size of n values of t, or -1 when t is unknown or n
// is not a whole number of blocks.
func (t Type) RowBytes(n int) int {
	i, ok := types[t]
	if !ok || n < 0 || n%i.blockSize != 0 {
		return -1
	}
	return n / i.blockSize * i.blockBytes
}
