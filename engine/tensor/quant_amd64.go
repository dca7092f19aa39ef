//go:build amd64

package tensor

import "unsafe"

//go:noescape
func quant32AVX512(x *float32, nb int, qs *int8, d *float32, sums *int16)

func init() {
	if hasAVX512 {
		kern.quant32 = quant32Asm
	}
}

// quant32Asm is quant32Generic in AVX-512 assembly (quant_amd64.s): the
// same quants, scales and sums, bit for bit.
func quant32Asm(xs []float32, qs []int8, d []float32, sums []int16) {
	nb := len(d)
	if len(xs) < nb*QK || len(qs) < nb*QK || len(sums) < nb {
		panic("tensor: activations and quants disagree in length")
	}
	if nb == 0 {
		return
	}
	quant32AVX512(unsafe.SliceData(xs), nb, unsafe.SliceData(qs), unsafe.SliceData(d), unsafe.SliceData(sums))
}
