//go:build amd64

package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The VNNI tile must agree with the portable four-by-four tile on the same
// rows and vectors, including extreme quants and a batch short of eight.
func TestQ8_0t8VNNI(t *testing.T) {
	if !hasVNNI {
		t.Skip("CPU without AVX512-VNNI and AVX512VL")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, cols := range []int{32, 256, 896, 4864} {
		for _, batch := range []int{2, 5, 8} {
			for k := range 3 {
				const rows = 8
				m, _ := randMatrix(t, r, Q8_0, rows, cols)
				if k == 1 {
					for i := range rows {
						extremes(Q8_0, m.Data[i*Q8_0.RowBytes(cols):])
					}
				}
				xs := randVec(r, 8*cols)
				var a acts
				a.quantize(xs, cols, 8, QK, QK)
				if k == 2 {
					for i := range a.qs {
						a.qs[i] = -127
					}
				}
				a.group(cols, batch, QK)
				nb, stride := cols/QK, 2*Q8_0.RowBytes(cols)
				ws, corr := make([]float32, 4*nb), make([]int32, 4*nb)
				rowScales4Generic(m.Data, stride, nb, 34, ws)
				rowCorr4(m.Data, stride, nb, corr)
				asm := make([]int32, 4*nb)
				rowCorr4VNNI(m.Data, stride, nb, asm)
				if !slices.Equal(asm, corr) {
					t.Fatalf("cols %d case %d: corrections %v, want %v", cols, k, asm, corr)
				}
				var o octet
				o.pack(a.qs, a.d, cols, nb, 0, batch)
				var got [4][8]float32
				dotQ8_0t8VNNI(m.Data, stride, ws, corr, &o, &got)
				for g := range a.quads {
					var want [4][4]float32
					dotQ8_0t4Generic(m.Data, stride, ws, &a.quads[g], &want)
					for i := range 4 {
						for v := range min(4, batch-4*g) {
							x, y := float64(got[i][4*g+v]), float64(want[i][v])
							if math.Abs(x-y) > 1e-5*(1+math.Abs(y)) {
								t.Errorf("cols %d batch %d case %d: row %d vector %d: VNNI %v, portable %v", cols, batch, k, i, 4*g+v, x, y)
							}
						}
					}
				}
				for i := range 4 {
					for v := batch; v < 8; v++ {
						if got[i][v] != 0 {
							t.Errorf("cols %d batch %d: padding vector %d of row %d is %v", cols, batch, v, i, got[i][v])
						}
					}
				}
			}
		}
	}
}

// rowCorr4 is the reference for rowCorr4VNNI: −128 times the sum of each
// Q8_0 block's quants of four rows, stride apart from w, in corr[4i+r].
func rowCorr4(w []byte, stride, nb int, corr []int32) {
	corr = corr[:4*nb]
	for r := range 4 {
		row := w[r*stride : r*stride+nb*34]
		for i := range nb {
			s := int32(0)
			for _, v := range row[i*34+2 : i*34+34] {
				s += int32(int8(v))
			}
			corr[4*i+r] = -128 * s
		}
	}
}

// BenchmarkTileQ8_0 times four rows by eight vectors of 4864 columns on cached
// data: the tile kernel in use (two four-by-four calls) against the VNNI one.
func BenchmarkTileQ8_0(b *testing.B) {
	const cols, rows = 4864, 16
	r := rand.New(rand.NewPCG(4, 4))
	m, _ := randMatrix(b, r, Q8_0, rows, cols)
	xs := randVec(r, 8*cols)
	var a acts
	a.quantize(xs, cols, 8, QK, QK)
	a.group(cols, 8, QK)
	nb, stride := cols/QK, 4*Q8_0.RowBytes(cols)
	ws, corr := make([]float32, 4*nb), make([]int32, 4*nb)
	kern.scales4(m.Data, stride, nb, 34, ws)
	rowCorr4(m.Data, stride, nb, corr)
	b.Run("tile4x4", func(b *testing.B) {
		var out [4][4]float32
		b.SetBytes(int64(4 * Q8_0.RowBytes(cols)))
		for b.Loop() {
			kern.q8_0t4(m.Data, stride, ws, &a.quads[0], &out)
			kern.q8_0t4(m.Data, stride, ws, &a.quads[1], &out)
		}
	})
	b.Run("vnni4x8", func(b *testing.B) {
		if !hasVNNI {
			b.Skip("CPU without AVX512-VNNI and AVX512VL")
		}
		var o octet
		o.pack(a.qs, a.d, cols, nb, 0, 8)
		var out [4][8]float32
		b.SetBytes(int64(4 * Q8_0.RowBytes(cols)))
		for b.Loop() {
			dotQ8_0t8VNNI(m.Data, stride, ws, corr, &o, &out)
		}
	})
}
