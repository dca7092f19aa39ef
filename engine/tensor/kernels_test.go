package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// quantize quantizes a whole batch on the calling thread, as Pool.quantize
// does across its threads.
func (a *acts) quantize(xs []float32, cols, batch, block, sumEvery int) {
	a.resize(cols*batch, block, sumEvery)
	a.quantizeBlocks(xs, 0, cols*batch/block, block, sumEvery)
}

// The kernels in use (SIMD where the build and CPU allow) must agree with the
// portable ones: every block's integer sum is exact in both, so only the order
// of float additions may differ.
func TestKernelsMatchPortable(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	quant := []struct {
		t         Type
		got, want func([]byte, []int8, []float32, []int16) float32
	}{
		{Q8_0, kern.q8_0, dotQ8_0Generic},
		{Q4_0, kern.q4_0, dotQ4_0Generic},
		{Q4_K, kern.q4_K, dotQ4_KGeneric},
		{Q6_K, kern.q6_K, dotQ6_KGeneric},
	}
	for _, c := range quant {
		for _, n := range []int{256, 512, 768, 4864} {
			w, _ := randMatrix(t, r, c.t, 1, n)
			x := randVec(r, n)
			var a acts
			if c.t == Q4_K || c.t == Q6_K {
				a.quantize(x, n, 1, QKK, 16)
			} else {
				a.quantize(x, n, 1, QK, QK)
			}
			// Extreme quants: all weights and activations at the ends of their range.
			for k := range 3 {
				extremeVariant(t, k, c.t, w.Data, nil, &a, 0)
				got, want := c.got(w.Data, a.qs, a.d, a.sums), c.want(w.Data, a.qs, a.d, a.sums)
				wf := make([]float32, n)
				if err := Dequantize(c.t, wf, w.Data); err != nil {
					t.Fatal(err)
				}
				bs := n / len(a.d)
				mag := 0.0
				for i, v := range wf {
					mag += math.Abs(float64(v) * float64(a.qs[i]) * float64(a.d[i/bs]))
				}
				if math.Abs(float64(got-want)) > 1e-6*mag {
					t.Errorf("%v n=%d case %d: kernel %v, portable %v", c.t, n, k, got, want)
				}
			}
		}
	}
	float := []struct {
		t         Type
		got, want func([]byte, []float32) float32
	}{
		{F16, kern.f16, dotF16Generic},
		{BF16, kern.bf16, dotBF16Generic},
		{F32, kern.f32, dotF32Generic},
	}
	for _, c := range float {
		for _, n := range []int{1, 7, 16, 33, 896} {
			w, wf := randMatrix(t, r, c.t, 1, n)
			x := randVec(r, n)
			mag := 0.0
			for i, v := range wf {
				mag += math.Abs(float64(v) * float64(x[i]))
			}
			if got, want := c.got(w.Data, x), c.want(w.Data, x); math.Abs(float64(got-want)) > 1e-6*mag {
				t.Errorf("%v n=%d: kernel %v, portable %v", c.t, n, got, want)
			}
		}
	}
}

// The four-vector kernels must give each vector what the single-vector kernel
// in use gives it, up to the order of float additions, and the portable one
// exactly what the portable single-vector kernel gives.
func TestQuadKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	cases := []struct {
		t             Type
		got, portable func([]byte, *quad, *[4]float32)
		one, oneGen   func([]byte, []int8, []float32, []int16) float32
	}{
		{Q8_0, kern.q8_0x4, dotQ8_0x4Generic, kern.q8_0, dotQ8_0Generic},
		{Q4_0, kern.q4_0x4, dotQ4_0x4Generic, kern.q4_0, dotQ4_0Generic},
		{Q4_K, kern.q4_Kx4, dotQ4_Kx4Generic, kern.q4_K, dotQ4_KGeneric},
		{Q6_K, kern.q6_Kx4, dotQ6_Kx4Generic, kern.q6_K, dotQ6_KGeneric},
	}
	for _, c := range cases {
		bs, every := actBlocks(c.t)
		for _, n := range []int{bs, 3 * bs, 4864 / bs * bs} {
			w, wf := randMatrix(t, r, c.t, 1, n)
			for batch := 2; batch <= 4; batch++ {
				var a acts
				a.quantize(randVec(r, batch*n), n, batch, bs, every)
				for k := range 3 {
					extremeVariant(t, k, c.t, w.Data, wf, &a, every)
					a.group(n, batch, bs)
					var got, portable [4]float32
					c.got(w.Data, &a.quads[0], &got)
					c.portable(w.Data, &a.quads[0], &portable)
					nb, ns := n/bs, n/every
					for v := range batch {
						qs, d, sums := a.qs[v*n:(v+1)*n], a.d[v*nb:(v+1)*nb], a.sums[v*ns:(v+1)*ns]
						one, oneGen := c.one(w.Data, qs, d, sums), c.oneGen(w.Data, qs, d, sums)
						if portable[v] != oneGen {
							t.Errorf("%v n=%d batch %d case %d vector %d: portable quad %v, portable single %v", c.t, n, batch, k, v, portable[v], oneGen)
						}
						mag := 0.0
						for i, x := range wf {
							mag += math.Abs(float64(x) * float64(qs[i]) * float64(d[i/bs]))
						}
						if math.Abs(float64(got[v]-one)) > 1e-6*mag {
							t.Errorf("%v n=%d batch %d case %d vector %d: quad %v, single %v", c.t, n, batch, k, v, got[v], one)
						}
					}
					// Padding vectors have no scale, so they add nothing.
					for v := batch; v < 4; v++ {
						if got[v] != 0 || portable[v] != 0 {
							t.Errorf("%v n=%d batch %d: padding vector %d gives %v, %v", c.t, n, batch, v, got[v], portable[v])
						}
					}
				}
			}
		}
	}
}

// The four-row kernels must give each row what the single-row kernel in use
// gives it, up to the order of float additions, and the portable ones exactly
// what the portable single-row kernels give.
func TestRows(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	rows := []struct {
		t             Type
		got, portable func([]byte, int, []int8, []float32, []int16, *[4]float32)
		one, oneGen   func([]byte, []int8, []float32, []int16) float32
	}{
		{Q8_0, kern.q8_0r4, dotQ8_0r4Generic, kern.q8_0, dotQ8_0Generic},
		{Q4_0, kern.q4_0r4, rows4(dotQ4_0Generic), kern.q4_0, dotQ4_0Generic},
		{Q4_K, kern.q4_Kr4, rows4(dotQ4_KGeneric), kern.q4_K, dotQ4_KGeneric},
		{Q6_K, kern.q6_Kr4, rows4(dotQ6_KGeneric), kern.q6_K, dotQ6_KGeneric},
	}
	for _, c := range rows {
		bs := actBlock(c.t)
		for _, n := range []int{QKK, 3 * QKK, 4864} {
			if n%c.t.BlockSize() != 0 {
				continue
			}
			w, wf := randMatrix(t, r, c.t, 4, n)
			rb := c.t.RowBytes(n)
			var a acts
			if bs == QKK {
				a.quantize(randVec(r, n), n, 1, QKK, 16)
			} else {
				a.quantize(randVec(r, n), n, 1, QK, QK)
			}
			for k := range 3 {
				extremeVariant(t, k, c.t, w.Data, wf, &a, 0)
				var got, portable [4]float32
				c.got(w.Data, rb, a.qs, a.d, a.sums, &got)
				c.portable(w.Data, rb, a.qs, a.d, a.sums, &portable)
				for v := range 4 {
					row := w.Data[v*rb : (v+1)*rb]
					one, oneGen := c.one(row, a.qs, a.d, a.sums), c.oneGen(row, a.qs, a.d, a.sums)
					if portable[v] != oneGen {
						t.Errorf("%v n=%d case %d row %d: portable four rows %v, portable single %v", c.t, n, k, v, portable[v], oneGen)
					}
					mag := 0.0
					for i, x := range wf[v*n : (v+1)*n] {
						mag += math.Abs(float64(x) * float64(a.qs[i]) * float64(a.d[i/bs]))
					}
					if math.Abs(float64(got[v]-one)) > 1e-6*mag {
						t.Errorf("%v n=%d case %d row %d: four rows %v, single %v", c.t, n, k, v, got[v], one)
					}
				}
			}
		}
	}
}

// The tile kernels must give each row and vector what the single-row
// kernel in use gives it, up to the order of float additions, and the portable
// one exactly what the portable single-row kernel gives; padding vectors give 0.
func TestTiles(t *testing.T) {
	r := rand.New(rand.NewPCG(19, 20))
	tiles := []struct {
		t             Type
		got, portable func([]byte, int, []float32, *quad, *[4][4]float32)
		one, oneGen   func([]byte, []int8, []float32, []int16) float32
	}{
		{Q8_0, kern.q8_0t4, dotQ8_0t4Generic, kern.q8_0, dotQ8_0Generic},
		{Q4_0, kern.q4_0t4, dotQ4_0t4Generic, kern.q4_0, dotQ4_0Generic},
		{Q4_K, kern.q4_Kt4, tiles4(dotQ4_Kx4Generic), kern.q4_K, dotQ4_KGeneric},
	}
	for _, c := range tiles {
		bs, every := actBlocks(c.t)
		for _, n := range []int{bs, 3 * bs, 4864} {
			w, wf := randMatrix(t, r, c.t, 4, n)
			rb := c.t.RowBytes(n)
			for batch := 2; batch <= 4; batch++ {
				var a acts
				a.quantize(randVec(r, batch*n), n, batch, bs, every)
				for k := range 3 {
					extremeVariant(t, k, c.t, w.Data, wf, &a, every)
					a.group(n, batch, bs)
					var got, portable [4][4]float32
					var ws []float32
					if bs == QK {
						ws = make([]float32, 4*n/QK)
						wsGen := make([]float32, 4*n/QK)
						kern.scales4(w.Data, rb, n/QK, c.t.BytesPerBlock(), ws)
						rowScales4Generic(w.Data, rb, n/QK, c.t.BytesPerBlock(), wsGen)
						if !slices.Equal(ws, wsGen) {
							t.Fatalf("%v n=%d: row scales %v, portable %v", c.t, n, ws, wsGen)
						}
					}
					c.got(w.Data, rb, ws, &a.quads[0], &got)
					c.portable(w.Data, rb, ws, &a.quads[0], &portable)
					nb, ns := n/bs, n/every
					for row := range 4 {
						wr := w.Data[row*rb : (row+1)*rb]
						for v := range 4 {
							if v >= batch {
								if got[row][v] != 0 || portable[row][v] != 0 {
									t.Errorf("%v n=%d batch %d: row %d padding vector %d gives %v, %v", c.t, n, batch, row, v, got[row][v], portable[row][v])
								}
								continue
							}
							qs, d, sums := a.qs[v*n:(v+1)*n], a.d[v*nb:(v+1)*nb], a.sums[v*ns:(v+1)*ns]
							one, oneGen := c.one(wr, qs, d, sums), c.oneGen(wr, qs, d, sums)
							if portable[row][v] != oneGen {
								t.Errorf("%v n=%d batch %d case %d row %d vector %d: portable tile %v, portable single %v", c.t, n, batch, k, row, v, portable[row][v], oneGen)
							}
							mag := 0.0
							for i, x := range wf[row*n : (row+1)*n] {
								mag += math.Abs(float64(x) * float64(qs[i]) * float64(d[i/bs]))
							}
							if math.Abs(float64(got[row][v]-one)) > 1e-6*mag {
								t.Errorf("%v n=%d batch %d case %d row %d vector %d: tile %v, single %v", c.t, n, batch, k, row, v, got[row][v], one)
							}
						}
					}
				}
			}
		}
	}
}

// extremeVariant turns case k of a kernel test into its extremes: at k 1
// every weight goes to the end of its range (and wf, when set, follows), at
// k 2 every activation too. With every set, the activations' sums follow,
// every quants to a sum, or the offsets and minimums are no longer those of
// the quants.
func extremeVariant(t *testing.T, k int, typ Type, w []byte, wf []float32, a *acts, every int) {
	t.Helper()
	switch k {
	case 1:
		extremes(typ, w)
		if wf != nil {
			if err := Dequantize(typ, wf, w); err != nil {
				t.Fatal(err)
			}
		}
	case 2:
		for i := range a.qs {
			a.qs[i] = -127
		}
		if every > 0 {
			for i := range a.sums {
				a.sums[i] = int16(-127 * every)
			}
		}
	}
}

// extremes sets every quant of a row, and the K-quants' sub-block scales, to
// the end of its range, keeping the f16 scales.
func extremes(t Type, b []byte) {
	type span struct {
		from, to int
		v        byte
	}
	var spans []span
	switch t {
	case Q8_0:
		spans = []span{{2, 34, 0x81}}
	case Q4_0:
		spans = []span{{2, 18, 0xff}}
	case Q4_K:
		spans = []span{{4, 144, 0xff}}
	case Q6_K:
		spans = []span{{0, 192, 0xff}, {192, 208, 0x80}}
	}
	bb := t.BytesPerBlock()
	for i := 0; i < len(b); i += bb {
		for _, s := range spans {
			for j := s.from; j < s.to; j++ {
				b[i+j] = s.v
			}
		}
	}
}

func TestScalesK4(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for range 100 {
		var ls, lm [8]uint8
		for j := range 8 {
			ls[j], lm[j] = uint8(r.IntN(64)), uint8(r.IntN(64))
		}
		var b [12]byte
		packScalesK4(b[:], &ls, &lm)
		sc, m := scalesK4(b[:])
		if sc != binary.LittleEndian.Uint64(ls[:]) || m != binary.LittleEndian.Uint64(lm[:]) {
			t.Fatalf("packed %v %v, unpacked %#x %#x", ls, lm, sc, m)
		}
	}
}
