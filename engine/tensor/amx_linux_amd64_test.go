package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The AMX kernel must agree with the portable four-by-four tile on the same
// rows and vectors: tiles of 1 to 16 rows, one to three groups with a short
// last one, extreme weights and activations; and leave the rest of the output
// alone.
func TestQ8_0AMX(t *testing.T) {
	if !hasAMX {
		t.Skip("CPU without AMX-INT8, or the OS does not allow it")
	}
	r := rand.New(rand.NewPCG(13, 14))
	var s amxScratch
	for _, cols := range []int{32, 896, 4864} {
		for _, c := range []struct{ m, batch int }{{16, 16}, {16, 12}, {5, 16}, {1, 33}, {16, 40}, {13, 48}} {
			m, batch := c.m, c.batch
			for k := range 3 {
				const rows = 19 // the output's stride: more than the tile
				w, _ := randMatrix(t, r, Q8_0, 16, cols)
				if k == 1 {
					for i := range 16 {
						extremes(Q8_0, w.Data[i*Q8_0.RowBytes(cols):])
					}
				}
				xs := randVec(r, batch*cols)
				var a acts
				a.quantize(xs, cols, batch, QK, QK)
				if k == 2 {
					for i := range a.qs {
						a.qs[i] = -127
					}
				}
				a.group(cols, batch, QK)
				var b amxBatch
				b.packBlocks(a.qs, a.d, cols, batch, 0, b.resize(cols, batch))
				const at = 2
				out := make([]float32, at+batch*rows)
				for i := range out {
					out[i] = float32(math.NaN())
				}
				rb, nb := Q8_0.RowBytes(cols), cols/QK
				dotQ8_0AMX(w.Data, rb, m, &b, out[at:], rows, &s)
				for q := 0; q < m; q += 4 {
					// The portable tile takes four adjacent rows (the
					// matrix has 16), of which those from m on are not
					// checked.
					stride := rb
					ws := make([]float32, 4*nb)
					base := w.Data[q*rb:]
					rowScales4Generic(base, stride, nb, 34, ws)
					for g := range a.quads {
						var want [4][4]float32
						dotQ8_0t4Generic(base, stride, ws, &a.quads[g], &want)
						for i := range 4 {
							row := q + i
							if row >= m {
								continue
							}
							for v := range min(4, batch-4*g) {
								vec := 4*g + v
								x, y := float64(out[at+vec*rows+row]), float64(want[i][v])
								if math.Abs(x-y) > 1e-6*magnitude(base[i*stride:], ws, i, a.qs[vec*cols:][:cols], a.d[vec*nb:][:nb]) {
									t.Fatalf("cols %d m %d batch %d case %d: row %d vector %d: AMX %v, portable %v", cols, m, batch, k, row, vec, x, y)
								}
								out[at+vec*rows+row] = float32(math.NaN())
							}
						}
					}
				}
				for i, x := range out {
					if !math.IsNaN(float64(x)) {
						t.Fatalf("cols %d m %d batch %d case %d: out[%d] = %v written outside the results", cols, m, batch, k, i, x)
					}
				}
			}
		}
	}
}

// BenchmarkQ8_0AMX times 16 rows of 896 columns against 128 vectors (a
// prefill's q projection tile) on cached data: 16×128×896 multiply-adds.
func BenchmarkQ8_0AMX(b *testing.B) {
	if !hasAMX {
		b.Skip("CPU without AMX-INT8, or the OS does not allow it")
	}
	const cols, batch = 896, 128
	r := rand.New(rand.NewPCG(4, 4))
	w, _ := randMatrix(b, r, Q8_0, 16, cols)
	var a acts
	a.quantize(randVec(r, batch*cols), cols, batch, QK, QK)
	var ab amxBatch
	ab.packBlocks(a.qs, a.d, cols, batch, 0, ab.resize(cols, batch))
	out := make([]float32, 16*batch)
	var s amxScratch
	for b.Loop() {
		dotQ8_0AMX(w.Data, Q8_0.RowBytes(cols), 16, &ab, out, 16, &s)
	}
	b.ReportMetric(float64(16*batch*cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}

// Where AMX runs the batches, the VNNI and archsimd tiles that replace it on
// other CPUs must still give the float64 product.
func TestMatMulWithoutAMX(t *testing.T) {
	if !hasAMX {
		t.Skip("AMX not in use: TestMatMul covers the other kernels")
	}
	defer func(k func([]byte, int, int, *amxBatch, []float32, int, *amxScratch)) { kern.q8_0amx = k }(kern.q8_0amx)
	kern.q8_0amx = nil
	r := rand.New(rand.NewPCG(15, 16))
	p := NewPool(2)
	defer p.Close()
	for _, shape := range [][2]int{{37, 768}, {300, 256}} {
		rows, cols := shape[0], shape[1]
		m, w := randMatrix(t, r, Q8_0, rows, cols)
		for _, batch := range []int{2, 8, 13, 16, 40} {
			xs := randVec(r, batch*cols)
			out := make([]float32, batch*rows)
			p.MatMul(out, m, xs, batch)
			if p.acts.amx.nb != 0 {
				t.Fatal("AMX used with its kernel off")
			}
			checkProduct(t, Q8_0, out, w, xs, rows, cols, batch)
			checkAlone(t, p, m, w, xs, out, batch)
		}
	}
}
