//go:build amd64

package tensor

import (
	"math"
	"unsafe"
)

// The AVX512-VNNI kernels for Q8_0 batches, in Go assembly (vnni_amd64.s):
// simd/archsimd has no vpdpbusd. They take four rows by eight vectors (256-bit
// registers) or sixteen (512-bit) with the activations laid out so that no sum
// needs a horizontal reduction: each 32-bit lane is one vector, and each weight
// group of 4 bytes is broadcast to all lanes, so after a block's 8 groups a
// lane holds that vector's whole
// block sum. vpdpbusd multiplies unsigned by signed bytes: the activations are
// stored offset by 128, and each row block's sum starts at −128·Σw to cancel
// the offset.

func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func xgetbv0() uint32

//go:noescape
func rowCorr4AVX2(w *byte, stride, nb int, corr *int32)

//go:noescape
func q8_0t8VNNI(w *byte, stride, nb int, ws *float32, corr *int32, xu *byte, dx *float32, out *float32, rows, lane, n int)

//go:noescape
func q8_0t16VNNI(w *byte, stride, nb int, ws *float32, corr *int32, xu *byte, dx *float32, out *float32, rows, lane, n int)

func init() {
	if hasVNNI {
		kern.q8_0tv = dotQ8_0tVNNI
		kern.corr4 = rowCorr4VNNI
	}
}

// hasAVX512 is whether the CPU runs AVX-512F and the OS saves the AVX-512
// state.
var hasAVX512 = func() bool {
	if max, _, _, _ := cpuid(0, 0); max < 7 {
		return false
	}
	_, _, c1, _ := cpuid(1, 0)
	const osxsave = 1 << 27
	if c1&osxsave == 0 {
		return false
	}
	// XMM, YMM, opmask and both halves of the upper ZMM state.
	const state = 1<<1 | 1<<2 | 1<<5 | 1<<6 | 1<<7
	if xgetbv0()&state != state {
		return false
	}
	_, b7, _, _ := cpuid(7, 0)
	const avx512f = 1 << 16
	return b7&avx512f != 0
}()

// hasVNNI is whether the CPU also runs AVX512-VNNI on 256-bit registers
// (AVX512VL).
var hasVNNI = func() bool {
	if !hasAVX512 {
		return false
	}
	_, b7, c7, _ := cpuid(7, 0)
	const avx512vl, vnni = 1 << 31, 1 << 11
	return b7&avx512vl != 0 && c7&vnni != 0
}()

// dotQ8_0tVNNI is row r against vector k in out[k·rows+r·lane] for four rows,
// stride apart from w, and the n first vectors of o; ws and corr are the
// rows' block scales (as rowScales4 makes them) and corrections (as rowCorr4
// makes them).
func dotQ8_0tVNNI(w []byte, stride int, ws []float32, corr []int32, o *vgroup, out []float32, rows, lane, n int) {
	nb := len(o.d) / o.width
	if stride < nb*34 || len(w) < 3*stride+nb*34 || len(ws) < 4*nb || len(corr) < 4*nb || len(o.xu) < 32*o.width*nb {
		panic("tensor: rows and activations disagree in length")
	}
	if n < 1 || n > o.width || rows < 0 || lane < 0 || (n-1)*rows+3*lane >= len(out) || (o.width-1)*rows > math.MaxInt32 {
		panic("tensor: results outside the output")
	}
	k := q8_0t8VNNI
	if o.width == 16 {
		k = q8_0t16VNNI
	}
	k(unsafe.SliceData(w), stride, nb, unsafe.SliceData(ws), unsafe.SliceData(corr), unsafe.SliceData(o.xu), unsafe.SliceData(o.d), unsafe.SliceData(out), rows, lane, n)
}

// rowCorr4VNNI is rowCorr4 in assembly (AVX2, which every VNNI CPU has).
func rowCorr4VNNI(w []byte, stride, nb int, corr []int32) {
	if nb == 0 {
		return
	}
	if stride < nb*34 || len(w) < 3*stride+nb*34 || len(corr) < 4*nb {
		panic("tensor: rows and corrections disagree in length")
	}
	rowCorr4AVX2(unsafe.SliceData(w), stride, nb, unsafe.SliceData(corr))
}
