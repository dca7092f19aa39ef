package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Quantize encodes src as type t into dst, which must hold t.RowBytes(len(src))
// bytes. The float types round to nearest even; the block types follow llama.cpp's
// reference quantizers (Q4_K and Q6_K with a weighted search for each sub-block's
// scale), so files written here load in llama.cpp and vice versa.
func Quantize(t Type, dst []byte, src []float32) error {
	n := t.RowBytes(len(src))
	if n < 0 {
		return fmt.Errorf("tensor: cannot quantize %d values as %v", len(src), t)
	}
	if len(dst) < n {
		return fmt.Errorf("tensor: %v of %d values needs %d bytes, have %d", t, len(src), n, len(dst))
	}
	bs, bb := t.BlockSize(), t.BytesPerBlock()
	for i := 0; i*bs < len(src); i++ {
		x, b := src[i*bs:(i+1)*bs], dst[i*bb:(i+1)*bb]
		switch t {
		case F32:
			binary.LittleEndian.PutUint32(b, math.Float32bits(x[0]))
		case F16:
			binary.LittleEndian.PutUint16(b, F32ToF16(x[0]))
		case BF16:
			binary.LittleEndian.PutUint16(b, F32ToBF16(x[0]))
		case Q8_0:
			quantizeQ8_0(b, x)
		case Q4_0:
			quantizeQ4_0(b, x)
		case Q4_K:
			quantizeQ4_K(b, x)
		case Q6_K:
			quantizeQ6_K(b, x)
		case Q8_K:
			quantizeQ8_K(b, x)
		}
	}
	return nil
}

// nearest rounds half to even, as llama.cpp's nearest_int does.
func nearest(f float32) int32 { return int32(math.RoundToEven(float64(f))) }

// nearest127 is nearest for |f| below 2²², as x·127/max|x| is: adding 1.5·2²³
// leaves f rounded half to even in the low mantissa bits. The conversion keeps
// the compiler from fusing the caller's multiply into the addition.
func nearest127(f float32) int32 {
	return int32(math.Float32bits(float32(f)+0x1.8p23)&0x7fffff) - 0x400000
}

// absMax returns the largest magnitude in x and the value that has it.
func absMax(x []float32) (amax, peak float32) {
	for _, v := range x {
		// Clearing the sign bit is |v| without the round trip through float64.
		if a := math.Float32frombits(math.Float32bits(v) &^ (1 << 31)); a > amax {
			amax, peak = a, v
		}
	}
	return amax, peak
}

func quantizeQ8_0(b []byte, x []float32) {
	amax, _ := absMax(x)
	d := amax / 127
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(b, F32ToF16(d))
	for j, v := range x {
		b[2+j] = byte(int8(nearest(v * id)))
	}
}

func quantizeQ4_0(b []byte, x []float32) {
	// The value of largest magnitude maps to -8, the one level with no positive
	// twin, so the full 16 levels are used.
	_, peak := absMax(x)
	d := peak / -8
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(b, F32ToF16(d))
	q := func(v float32) byte { return byte(min(15, int8(v*id+8.5))) }
	for j := range QK / 2 {
		b[2+j] = q(x[j]) | q(x[j+QK/2])<<4
	}
}

// quantizeQ8_K writes the K-quant activation block: f32 scale, 256 int8, and the
// sums of each 16 quants (which the Q4_K and Q6_K dot products use for their
// offsets).
func quantizeQ8_K(b []byte, x []float32) {
	var q [QKK]int8
	var sums [QKK / 16]int16
	d := quantizeBlock8(q[:], sums[:], x)
	binary.LittleEndian.PutUint32(b, math.Float32bits(d))
	for j, v := range q {
		b[4+j] = byte(v)
	}
	for j, s := range sums {
		binary.LittleEndian.PutUint16(b[4+QKK+2*j:], uint16(s))
	}
}

// quantizeBlock8 quantizes x to int8 with a scale of max|x|/127, writes the sum
// of every len(x)/len(sums) quants and returns the scale.
func quantizeBlock8(q []int8, sums []int16, x []float32) float32 {
	amax, _ := absMax(x)
	if amax == 0 {
		clear(q)
		clear(sums)
		return 0
	}
	d := amax / 127
	id := 127 / amax
	g := len(x) / len(sums)
	for k := range sums {
		s := int32(0)
		for j := k * g; j < (k+1)*g; j++ {
			v := min(127, max(-127, nearest127(x[j]*id)))
			q[j] = int8(v)
			s += v
		}
		sums[k] = int16(s)
	}
	return d
}

// quantizeQ4_K fits a scale and a minimum to each sub-block of 32, then encodes
// the 8 scales and 8 minimums with 6 bits against the super-block's d and dmin.
func quantizeQ4_K(b []byte, x []float32) {
	var (
		scales, mins [QKK / 32]float32
		L            [QKK]uint8
	)
	sumX2 := float32(0)
	for _, v := range x {
		sumX2 += v * v
	}
	avX := float32(math.Sqrt(float64(2 * sumX2 / QKK)))
	var w [32]float32
	maxScale, maxMin := float32(0), float32(0)
	for j := range QKK / 32 {
		xs := x[32*j : 32*j+32]
		for l, v := range xs {
			w[l] = avX + float32(math.Abs(float64(v)))
		}
		scales[j], mins[j] = fitScaleMin(xs, w[:], 15, L[32*j:32*j+32])
		maxScale = max(maxScale, scales[j])
		maxMin = max(maxMin, mins[j])
	}
	var ls, lm [QKK / 32]uint8
	for j := range QKK / 32 {
		if maxScale > 0 {
			ls[j] = uint8(min(63, nearest(63/maxScale*scales[j])))
		}
		if maxMin > 0 {
			lm[j] = uint8(min(63, nearest(63/maxMin*mins[j])))
		}
	}
	d := F32ToF16(maxScale / 63)
	dmin := F32ToF16(maxMin / 63)
	binary.LittleEndian.PutUint16(b[0:], d)
	binary.LittleEndian.PutUint16(b[2:], dmin)
	packScalesK4(b[4:16], &ls, &lm)
	// Requantize against the scales as stored, so rounding in them is absorbed.
	df, mf := F16ToF32(d), F16ToF32(dmin)
	for j := range QKK / 32 {
		sd := df * float32(ls[j])
		if sd == 0 {
			clear(L[32*j : 32*j+32])
			continue
		}
		sm := mf * float32(lm[j])
		for l := range 32 {
			L[32*j+l] = uint8(min(15, max(0, nearest((x[32*j+l]+sm)/sd))))
		}
	}
	qs := b[16:]
	for j := 0; j < QKK; j += 64 {
		for l := range 32 {
			qs[j/2+l] = L[j+l] | L[j+l+32]<<4
		}
	}
}

// packScalesK4 stores eight 6-bit scales and minimums in 12 bytes: the low six
// bits of the first four of each in bytes 0-7, the last four as nibbles in bytes
// 8-11 with their top two bits in the spare bits of bytes 0-7.
func packScalesK4(s []byte, ls, lm *[8]uint8) {
	for j := range 4 {
		s[j] = ls[j]
		s[j+4] = lm[j]
	}
	for j := 4; j < 8; j++ {
		s[j+4] = ls[j]&0xf | lm[j]&0xf<<4
		s[j-4] |= ls[j] >> 4 << 6
		s[j] |= lm[j] >> 4 << 6
	}
}

// scalesK4 unpacks the eight scales and minimums of packScalesK4's layout, four
// at a time in 32-bit words; byte j of sc and m is sub-block j's.
func scalesK4(s []byte) (sc, m uint64) {
	u0 := binary.LittleEndian.Uint32(s[0:])
	u1 := binary.LittleEndian.Uint32(s[4:])
	u2 := binary.LittleEndian.Uint32(s[8:])
	sc = uint64(u0&0x3f3f3f3f) | uint64(u2&0x0f0f0f0f|(u0>>6&0x03030303)<<4)<<32
	m = uint64(u1&0x3f3f3f3f) | uint64(u2>>4&0x0f0f0f0f|(u1>>6&0x03030303)<<4)<<32
	return sc, m
}

// fitScaleMin finds scale and min so that x ≈ scale*L - min with L in [0, nmax],
// minimising the weighted squared error over a sweep of candidate scales, each
// refined by least squares. It returns the scale and min (min >= 0).
func fitScaleMin(x, w []float32, nmax int32, L []uint8) (scale, negMin float32) {
	lo, hi := x[0], x[0]
	for _, v := range x[1:] {
		lo, hi = min(lo, v), max(hi, v)
	}
	lo = min(lo, 0) // the minimum is stored unsigned
	if hi == lo {
		clear(L)
		return 0, -lo
	}
	quant := func(iscale, off float32, out []uint8) {
		for i, v := range x {
			out[i] = uint8(min(nmax, max(0, nearest(iscale*(v-off)))))
		}
	}
	errOf := func(s, m float32, l []uint8) float32 {
		e := float32(0)
		for i, v := range x {
			d := s*float32(l[i]) + m - v
			e += w[i] * d * d
		}
		return e
	}
	iscale := float32(nmax) / (hi - lo)
	scale, off := 1/iscale, lo
	quant(iscale, lo, L)
	best := errOf(scale, off, L)
	var aux [QKK]uint8
	la := aux[:len(x)]
	for step := -10; step <= 10; step++ {
		is := (float32(nmax) + 0.1*float32(step)) / (hi - lo)
		quant(is, lo, la)
		var sw, sl, sl2, sx, slx float32
		for i, v := range x {
			l := float32(la[i])
			sw += w[i]
			sl += w[i] * l
			sl2 += w[i] * l * l
			sx += w[i] * v
			slx += w[i] * l * v
		}
		det := sw*sl2 - sl*sl
		if det <= 0 {
			continue
		}
		s := (sw*slx - sx*sl) / det
		m := (sl2*sx - sl*slx) / det
		if m > 0 {
			m, s = 0, slx/sl2
		}
		if e := errOf(s, m, la); e < best {
			best, scale, off = e, s, m
			copy(L, la)
		}
	}
	return scale, -off
}

// quantizeQ6_K fits a signed scale to each 16 values, then stores the 16 scales as
// int8 against the super-block's d.
func quantizeQ6_K(b []byte, x []float32) {
	var (
		scales [QKK / 16]float32
		L      [QKK]int8
	)
	maxScale, maxAbs := float32(0), float32(0)
	for j := range QKK / 16 {
		scales[j] = fitScale(x[16*j:16*j+16], 32, L[16*j:16*j+16])
		if a := float32(math.Abs(float64(scales[j]))); a > maxAbs {
			maxAbs, maxScale = a, scales[j]
		}
	}
	clear(b)
	if maxAbs < 1e-15 {
		return
	}
	// Like Q4_0, the largest scale maps to -128 to use the whole int8 range.
	iscale := -128 / maxScale
	d := F32ToF16(1 / iscale)
	df := F16ToF32(d)
	sc := b[192:208]
	for j := range QKK / 16 {
		sc[j] = byte(int8(min(127, nearest(iscale*scales[j]))))
	}
	for j := range QKK / 16 {
		s := df * float32(int8(sc[j]))
		if s == 0 {
			clear(L[16*j : 16*j+16])
			continue
		}
		for l := range 16 {
			L[16*j+l] = int8(min(31, max(-32, nearest(x[16*j+l]/s))))
		}
	}
	ql, qh := b[0:128], b[128:192]
	for h := range 2 {
		q := L[128*h:]
		for l := range 32 {
			u := func(k int) byte { return byte(q[l+32*k] + 32) }
			ql[64*h+l] = u(0)&0xf | u(2)<<4
			ql[64*h+l+32] = u(1)&0xf | u(3)<<4
			qh[32*h+l] = u(0)>>4 | u(1)>>4<<2 | u(2)>>4<<4 | u(3)>>4<<6
		}
	}
	binary.LittleEndian.PutUint16(b[208:], d)
}

// fitScale finds a signed scale so that x ≈ scale*L with L in [-nmax, nmax-1],
// weighting each value by its square so the large ones are kept best.
func fitScale(x []float32, nmax int32, L []int8) float32 {
	amax, peak := absMax(x)
	if amax < 1e-15 {
		clear(L)
		return 0
	}
	var la [16]int8
	bestScale, bestFit := float32(0), float32(-1)
	for step := -9; step <= 9; step++ {
		iscale := -(float32(nmax) + 0.1*float32(step)) / peak
		var slx, sl2 float32
		for i, v := range x {
			l := min(nmax-1, max(-nmax, nearest(iscale*v)))
			la[i] = int8(l)
			w := v * v
			slx += w * float32(l) * v
			sl2 += w * float32(l) * float32(l)
		}
		// Least squares gives scale slx/sl2 and reduces the error by slx²/sl2.
		if sl2 > 0 && slx*slx/sl2 > bestFit {
			bestFit, bestScale = slx*slx/sl2, slx/sl2
			copy(L, la[:len(x)])
		}
	}
	return bestScale
}

// quant32Generic quantizes len(d) blocks of 32 values of xs, each with one
// sum: the portable kern.quant32.
func quant32Generic(xs []float32, qs []int8, d []float32, sums []int16) {
	for i := range d {
		d[i] = quantizeBlock8(qs[i*QK:(i+1)*QK], sums[i:i+1], xs[i*QK:(i+1)*QK])
	}
}
