//go:build amd64

package tensor

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The VNNI tiles must agree with the portable four-by-four tile on the same
// rows and vectors, including extreme quants and a batch short of eight.
func TestQ8_0tVNNI(t *testing.T) {
	if !hasVNNI {
		t.Skip("CPU without AVX512-VNNI and AVX512VL")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for _, cols := range []int{32, 256, 896, 4864} {
		for _, c := range []struct{ width, batch int }{{8, 2}, {8, 5}, {8, 8}, {16, 5}, {16, 13}, {16, 16}} {
			width, batch := c.width, c.batch
			for k := range 3 {
				const rows = 8
				m, _ := randMatrix(t, r, Q8_0, rows, cols)
				if k == 1 {
					for i := range rows {
						extremes(Q8_0, m.Data[i*Q8_0.RowBytes(cols):])
					}
				}
				xs := randVec(r, 16*cols)
				var a acts
				a.quantize(xs, cols, 16, QK, QK)
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
				var o vgroup
				o.pack(a.qs, a.d, cols, nb, 0, batch, width)
				// Results land in a larger output at out[at+k·outRows+r·lane];
				// everything else must stay untouched.
				const at, outRows, lane = 3, 70, 17
				out := make([]float32, at+16*outRows)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				dotQ8_0tVNNI(m.Data, stride, ws, corr, &o, out[at:], outRows, lane, batch)
				var got [4][16]float32
				for i := range 4 {
					for v := range batch {
						got[i][v] = out[at+v*outRows+i*lane]
						out[at+v*outRows+i*lane] = float32(math.NaN())
					}
				}
				for i, x := range out {
					if !math.IsNaN(float64(x)) {
						t.Fatalf("cols %d batch %d case %d: out[%d] written", cols, batch, k, i)
					}
				}
				for g := range a.quads {
					var want [4][4]float32
					dotQ8_0t4Generic(m.Data, stride, ws, &a.quads[g], &want)
					for i := range 4 {
						for v := range min(4, batch-4*g) {
							x, y := float64(got[i][4*g+v]), float64(want[i][v])
							if math.Abs(x-y) > 1e-6*magnitude(m.Data[i*stride:], ws, i, a.qs[(4*g+v)*cols:][:cols], a.d[(4*g+v)*nb:][:nb]) {
								t.Errorf("cols %d batch %d case %d: row %d vector %d: VNNI %v, portable %v", cols, batch, k, i, 4*g+v, x, y)
							}
						}
					}
				}
			}
		}
	}
}

// magnitude is the sum of the absolute products of row r (of four, its scales
// in ws as rowScales4 makes them) and one vector, the scale of the float
// rounding in their dot product.
func magnitude(row []byte, ws []float32, r int, qs []int8, d []float32) float64 {
	m := 0.0
	for i, dx := range d {
		for j, v := range row[34*i+2 : 34*i+34] {
			m += math.Abs(float64(int8(v)) * float64(qs[32*i+j]) * float64(ws[4*i+r]) * float64(dx))
		}
	}
	return m
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
// data: the tile kernel in use (two four-by-four calls) against the VNNI ones.
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
		var o vgroup
		o.pack(a.qs, a.d, cols, nb, 0, 8, 8)
		out := make([]float32, 64)
		b.SetBytes(int64(4 * Q8_0.RowBytes(cols)))
		for b.Loop() {
			dotQ8_0tVNNI(m.Data, stride, ws, corr, &o, out, 1, 16, o.width)
		}
	})
	// Twice the vectors: its bytes per second are comparable with the
	// others' at twice the figure.
	b.Run("vnni4x16", func(b *testing.B) {
		if !hasVNNI {
			b.Skip("CPU without AVX512-VNNI and AVX512VL")
		}
		xs := randVec(r, 16*cols)
		var a16 acts
		a16.quantize(xs, cols, 16, QK, QK)
		var o vgroup
		o.pack(a16.qs, a16.d, cols, nb, 0, 16, 16)
		out := make([]float32, 64)
		b.SetBytes(int64(4 * Q8_0.RowBytes(cols)))
		for b.Loop() {
			dotQ8_0tVNNI(m.Data, stride, ws, corr, &o, out, 1, 16, o.width)
		}
	})
}
