package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

var productTypes = []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K}

func randMatrix(t testing.TB, r *rand.Rand, typ Type, rows, cols int) (Matrix, []float32) {
	x := randVec(r, rows*cols)
	data := make([]byte, rows*typ.RowBytes(cols))
	if err := Quantize(typ, data, x); err != nil {
		t.Fatal(err)
	}
	if err := Dequantize(typ, x, data); err != nil {
		t.Fatal(err)
	}
	return Matrix{Type: typ, Rows: rows, Cols: cols, Data: data}, x
}

// checkProduct compares out with a float64 product of the dequantized weights.
// The tolerance is the worst case of the activations' rounding (half a step of
// each block's scale times |w|), plus float32 accumulation error.
func checkProduct(t *testing.T, typ Type, out, w, xs []float32, rows, cols, batch int) {
	t.Helper()
	bs := actBlock(typ)
	for b := range batch {
		x := xs[b*cols : (b+1)*cols]
		step := make([]float64, cols)
		if bs > 0 {
			for i := 0; i < cols; i += bs {
				amax, _ := absMax(x[i : i+bs])
				for j := i; j < i+bs; j++ {
					step[j] = float64(amax) / 127 / 2 * 1.001
				}
			}
		}
		for r := range rows {
			var want, mag, tol float64
			for c, wv := range w[r*cols : (r+1)*cols] {
				want += float64(wv) * float64(x[c])
				mag += math.Abs(float64(wv) * float64(x[c]))
				tol += math.Abs(float64(wv)) * step[c]
			}
			tol += 1e-5 * mag
			if got := float64(out[b*rows+r]); math.Abs(got-want) > tol {
				t.Fatalf("%v batch %d/%d row %d: got %v, want %v ± %v", typ, b, batch, r, got, want, tol)
			}
		}
	}
}

func TestMatMul(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, threads := range []int{1, 2, 3} {
		p := NewPool(threads)
		defer p.Close()
		for _, typ := range productTypes {
			for _, shape := range [][2]int{{1, 256}, {37, 768}, {131, 512}, {300, 256}} {
				rows, cols := shape[0], shape[1]
				m, w := randMatrix(t, r, typ, rows, cols)
				for _, batch := range []int{1, 2, 3, 8, 13, 16, 40} {
					if batch == 40 && typ != Q8_0 {
						continue // three groups of the AMX kernel: Q8_0 only
					}
					t.Run(fmt.Sprintf("%v/%dx%d/t%d/b%d", typ, rows, cols, threads, batch), func(t *testing.T) {
						xs := randVec(r, batch*cols)
						out := make([]float32, batch*rows)
						p.MatMul(out, m, xs, batch)
						checkProduct(t, typ, out, w, xs, rows, cols, batch)
						checkAlone(t, p, m, w, xs, out, batch)
					})
				}
			}
		}
	}
}

// checkAlone checks that the batch changes no vector's result beyond the order
// of float sums: activations are quantized per vector, so every block's integer
// sum is the same in a batch and alone.
func checkAlone(t *testing.T, p *Pool, m Matrix, w, xs, out []float32, batch int) {
	t.Helper()
	rows, cols := m.Rows, m.Cols
	// Σ|w|·max|x| bounds Σ|w·x| in time for -race.
	wabs := make([]float64, rows)
	for i := range wabs {
		for _, wv := range w[i*cols : (i+1)*cols] {
			wabs[i] += math.Abs(float64(wv))
		}
	}
	one := make([]float32, rows)
	for b := range batch {
		x := xs[b*cols : (b+1)*cols]
		xmax, _ := absMax(x)
		p.MatVec(one, m, x)
		for i, v := range one {
			if got := out[b*rows+i]; math.Abs(float64(got-v)) > 1e-6*wabs[i]*float64(xmax) {
				t.Fatalf("%v batch %d/%d row %d: %v alone, %v in the batch", m.Type, b, batch, i, v, got)
			}
		}
	}
}

// Every batch size from 1 to 9 (groups of four, a padded group of two or
// three, a single vector left over) and an odd number of rows.
func TestMatMulBatchSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range productTypes {
		m, w := randMatrix(t, r, typ, 33, 512)
		for batch := 1; batch <= 9; batch++ {
			xs := randVec(r, batch*m.Cols)
			out := make([]float32, batch*m.Rows)
			p.MatMul(out, m, xs, batch)
			checkProduct(t, typ, out, w, xs, m.Rows, m.Cols, batch)
			checkAlone(t, p, m, w, xs, out, batch)
		}
	}
}

// MatMuls computes each product as MatMul does, whether the products run as
// one (the same activation blocks) or one after another.
func TestMatMuls(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	p := NewPool(2)
	defer p.Close()
	for _, types := range [][]Type{{Q4_0, Q8_0, Q4_0}, {Q4_K, Q6_K}, {Q8_0, Q4_K}, {F16, F32}} {
		for _, batch := range []int{1, 3, 8} {
			const cols = 512
			xs := randVec(r, batch*cols)
			var ps []Product
			var ws [][]float32
			for i, typ := range types {
				m, w := randMatrix(t, r, typ, 37+64*i, cols)
				ps = append(ps, Product{Out: make([]float32, batch*m.Rows), W: m})
				ws = append(ws, w)
			}
			p.MatMuls(xs, batch, ps...)
			for i, q := range ps {
				checkProduct(t, q.W.Type, q.Out, ws[i], xs, q.W.Rows, cols, batch)
				checkAlone(t, p, q.W, ws[i], xs, q.Out, batch)
			}
		}
	}
}

// Sizes that are a whole number of small blocks but not of super-blocks.
func TestMatVecSmallBlocks(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0} {
		for _, cols := range []int{32, 96, 160, 2080} {
			m, w := randMatrix(t, r, typ, 45, cols)
			x := randVec(r, cols)
			out := make([]float32, 45)
			p.MatVec(out, m, x)
			checkProduct(t, typ, out, w, x, 45, cols, 1)
		}
	}
	// Float weights take any length.
	m, w := randMatrix(t, r, F16, 9, 13)
	x := randVec(r, 13)
	out := make([]float32, 9)
	p.MatVec(out, m, x)
	checkProduct(t, F16, out, w, x, 9, 13, 1)
}

func TestMatrixCheck(t *testing.T) {
	for _, m := range []Matrix{
		{Type: Q8_K, Rows: 1, Cols: 256, Data: make([]byte, 292)},
		{Type: Q4_K, Rows: 1, Cols: 128, Data: make([]byte, 72)},
		{Type: Q8_0, Rows: 2, Cols: 32, Data: make([]byte, 34)},
	} {
		if m.Check() == nil {
			t.Errorf("%v %dx%d with %d bytes passes Check", m.Type, m.Rows, m.Cols, len(m.Data))
		}
	}
	p := NewPool(1)
	defer p.Close()
	defer func() {
		if recover() == nil {
			t.Error("MatVec with a short output did not panic")
		}
	}()
	p.MatVec(make([]float32, 1), Matrix{Type: F32, Rows: 2, Cols: 1, Data: make([]byte, 8)}, []float32{1})
}

func TestMatVecEmpty(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	p.MatVec(nil, Matrix{Type: Q8_0, Rows: 0, Cols: 32}, make([]float32, 32))
	// Batches of no rows, or of rows of no columns (zero products).
	p.MatMul(nil, Matrix{Type: Q8_0, Rows: 0, Cols: 32}, make([]float32, 16*32), 16)
	out := []float32{1, 2, 3, 4, 5, 6}
	p.MatMul(out, Matrix{Type: Q8_0, Rows: 3, Cols: 0}, nil, 2)
	for i, v := range out {
		if v != 0 {
			t.Errorf("out[%d] = %v, want 0", i, v)
		}
	}
}
