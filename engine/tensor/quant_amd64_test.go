//go:build amd64

package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The assembly quantizer must give the portable one's quants, scales and sums
// bit for bit: on random blocks, blocks of zeros (and of negative zeros),
// blocks of one value, and blocks whose quants fall on halves.
func TestQuant32Asm(t *testing.T) {
	if !hasAVX512 {
		t.Skip("CPU without AVX-512")
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, nb := range []int{1, 2, 7, 28, 152} {
		for k := range 5 {
			xs := randVec(r, nb*QK)
			for i := range nb {
				b := xs[i*QK : (i+1)*QK]
				switch (i + k) % 5 {
				case 1:
					clear(b)
				case 2:
					for j := range b {
						b[j] = float32(math.Copysign(0, -1))
					}
				case 3:
					// Quants on halves: amax 127 gives id 1.
					for j := range b {
						b[j] = float32(r.IntN(254)-127) + 0.5
					}
					b[r.IntN(QK)] = 127
				case 4:
					for j := range b {
						b[j] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(20)-10)))
					}
				}
			}
			qs, d, sums := make([]int8, nb*QK), make([]float32, nb), make([]int16, nb)
			wq, wd, ws := make([]int8, nb*QK), make([]float32, nb), make([]int16, nb)
			quant32Asm(xs, qs, d, sums)
			quant32Generic(xs, wq, wd, ws)
			if !slices.Equal(qs, wq) || !slices.Equal(sums, ws) || !slices.Equal(d, wd) {
				t.Fatalf("%d blocks, case %d: assembly and portable quantizers differ:\nqs %v\nwant %v\nd %v, want %v\nsums %v, want %v", nb, k, qs, wq, d, wd, sums, ws)
			}
		}
	}
}
