package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestTypeSizes(t *testing.T) {
	for _, c := range []struct {
		t          Type
		block, len int
	}{
		{F32, 1, 4}, {F16, 1, 2}, {BF16, 1, 2}, {Q8_0, 32, 34}, {Q4_0, 32, 18},
		{Q4_K, 256, 144}, {Q6_K, 256, 210}, {Q8_K, 256, 292},
	} {
		if c.t.BlockSize() != c.block || c.t.BytesPerBlock() != c.len {
			t.Errorf("%v: block %d of %d bytes, want %d of %d", c.t, c.t.BlockSize(), c.t.BytesPerBlock(), c.block, c.len)
		}
		if got := c.t.RowBytes(4 * c.block); got != 4*c.len {
			t.Errorf("%v: RowBytes(%d) = %d", c.t, 4*c.block, got)
		}
	}
	if Q4_K.RowBytes(100) != -1 || Type(3).RowBytes(32) != -1 || Type(3).Valid() {
		t.Error("RowBytes accepts a partial block or an unknown type")
	}
}

func TestHalf(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if f != f {
			continue // NaN payloads need not survive
		}
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("F16 %#04x -> %v -> %#04x", h, f, back)
		}
		if h&0x7c00 != 0x7c00 {
			if g := f16Fast(uint16(h)); g != f {
				t.Fatalf("f16Fast(%#04x) = %v, want %v", h, g, f)
			}
		}
		if b := BF16ToF32(uint16(h)); b == b && F32ToBF16(b) != uint16(h) {
			t.Fatalf("BF16 %#04x does not round-trip", h)
		}
	}
	for _, c := range []struct {
		f float32
		h uint16
	}{
		{1, 0x3c00}, {-2, 0xc000}, {65504, 0x7bff}, {65520, 0x7c00}, {1e-8, 0},
		{0x1p-24, 1}, {0x1.8p-24, 2}, {1 + 0x1p-11, 0x3c00}, {1 + 0x1.8p-10, 0x3c02},
	} {
		if got := F32ToF16(c.f); got != c.h {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
}

// randVec returns normal values with a few outliers, like real weights.
func randVec(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		if r.IntN(64) == 0 {
			x[i] *= 6
		}
	}
	return x
}

func roundTrip(t *testing.T, typ Type, x []float32) []float32 {
	t.Helper()
	b := make([]byte, typ.RowBytes(len(x)))
	if err := Quantize(typ, b, x); err != nil {
		t.Fatal(err)
	}
	y := make([]float32, len(x))
	if err := Dequantize(typ, y, b); err != nil {
		t.Fatal(err)
	}
	return y
}

// relRMS is the error's root mean square relative to the signal's.
func relRMS(x, y []float32) float64 {
	var e, s float64
	for i := range x {
		d := float64(x[i] - y[i])
		e += d * d
		s += float64(x[i]) * float64(x[i])
	}
	return math.Sqrt(e / s)
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randVec(r, 64*QKK)
	// Bounds on the relative RMS error of normal data, a little above what
	// these quantizers reach (llama.cpp's reach about the same).
	for _, c := range []struct {
		t     Type
		bound float64
	}{
		{F32, 0}, {F16, 1e-3}, {BF16, 4e-3}, {Q8_0, 0.01}, {Q8_K, 0.02},
		{Q6_K, 0.03}, {Q4_K, 0.1}, {Q4_0, 0.14},
	} {
		y := roundTrip(t, c.t, x)
		e := relRMS(x, y)
		t.Logf("%v: relative RMS error %.4f", c.t, e)
		if e > c.bound {
			t.Errorf("%v: relative RMS error %.4f > %.4f", c.t, e, c.bound)
		}
	}
	// Per-block worst cases follow from the scale: half a step for Q8_0, one
	// step for Q4_0 (whose top level +8 is cut to +7).
	for _, c := range []struct {
		t     Type
		steps float32
		div   float32
	}{{Q8_0, 0.5, 127}, {Q4_0, 1, 8}} {
		y := roundTrip(t, c.t, x)
		for i := 0; i < len(x); i += QK {
			amax, _ := absMax(x[i : i+QK])
			lim := c.steps*amax/c.div*1.001 + amax*0x1p-10
			for j := i; j < i+QK; j++ {
				if d := float32(math.Abs(float64(x[j] - y[j]))); d > lim {
					t.Fatalf("%v: value %d: error %v > %v", c.t, j, d, lim)
				}
			}
		}
	}
}

func TestQuantizeSpecial(t *testing.T) {
	for _, typ := range []Type{Q8_0, Q4_0, Q4_K, Q6_K, Q8_K} {
		zero := make([]float32, QKK)
		for _, v := range roundTrip(t, typ, zero) {
			if v != 0 {
				t.Fatalf("%v: zeros come back as %v", typ, v)
			}
		}
		// A constant block and a block with one spike must keep their shape.
		c := make([]float32, QKK)
		for i := range c {
			c[i] = 0.25
		}
		c[7] = -3
		y := roundTrip(t, typ, c)
		if math.Abs(float64(y[7]+3)) > 0.1 || math.Abs(float64(y[100]-0.25)) > 0.2 {
			t.Errorf("%v: spike %v, plateau %v", typ, y[7], y[100])
		}
	}
	if err := Quantize(Q4_K, make([]byte, 1000), make([]float32, 100)); err == nil {
		t.Error("Quantize accepted a partial block")
	}
	if err := Dequantize(Q8_0, make([]float32, 64), make([]byte, 60)); err == nil {
		t.Error("Dequantize accepted short input")
	}
}

// The K-quants must do better than Q4_0 at similar size, or the scale search
// is not working.
func TestKQuantsBeatQ4_0(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := randVec(r, 16*QKK)
	e40 := relRMS(x, roundTrip(t, Q4_0, x))
	e4k := relRMS(x, roundTrip(t, Q4_K, x))
	if e4k >= e40 {
		t.Errorf("Q4_K error %.4f not below Q4_0's %.4f", e4k, e40)
	}
}

// nearest127 must round as nearest over the range quantizeBlock8 gives it,
// halves and neighbours of halves included.
func TestNearest127(t *testing.T) {
	for i := -127 * 4; i <= 127*4; i++ {
		for _, f := range []float32{float32(i) / 4, math.Nextafter32(float32(i)/4, 200), math.Nextafter32(float32(i)/4, -200)} {
			if got, want := nearest127(f), nearest(f); got != want {
				t.Fatalf("nearest127(%v) = %d, want %d", f, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		f := (r.Float32()*2 - 1) * 128
		if got, want := nearest127(f), nearest(f); got != want {
			t.Fatalf("nearest127(%v) = %d, want %d", f, got, want)
		}
	}
}
