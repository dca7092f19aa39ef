//go:build goexperiment.simd && amd64

package tensor

import (
	"math"
	"simd/archsimd"
	"unsafe"
)

func init() {
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		vec.dot = dotAVX2
		vec.axpy = axpyAVX2
		vec.dots = dotsAVX2
		vec.sumScaled = sumScaledAVX2
		vec.swiglu = swigluAVX2
		vec.softmax = softmaxAVX2
	}
}

func dotAVX2(a, b []float32) float32 {
	n := len(a)
	checkRow(len(b) >= n)
	ap, bp := base(a), base(b)
	var a0, a1 archsimd.Float32x8
	i := 0
	for ; i+16 <= n; i += 16 {
		a0 = f32x8(ap, 4*i).MulAdd(f32x8(bp, 4*i), a0)
		a1 = f32x8(ap, 4*i+32).MulAdd(f32x8(bp, 4*i+32), a1)
	}
	for ; i+8 <= n; i += 8 {
		a0 = f32x8(ap, 4*i).MulAdd(f32x8(bp, 4*i), a0)
	}
	s := hsum(a0.Add(a1))
	for ; i < n; i++ {
		s += a[i] * b[i]
	}
	return s
}

func axpyAVX2(y []float32, s float32, x []float32) {
	n := len(y)
	checkRow(len(x) >= n)
	yp, xp := base(y), base(x)
	sv := archsimd.BroadcastFloat32x8(s)
	i := 0
	for ; i+8 <= n; i += 8 {
		v := f32x8(xp, 4*i).MulAdd(sv, f32x8(yp, 4*i))
		v.Store((*[8]float32)(unsafe.Add(yp, 4*i)))
	}
	archsimd.ClearAVXUpperBits()
	for ; i < n; i++ {
		y[i] += s * x[i]
	}
}

// dotsAVX2 takes four keys at a time, whose four sums are reduced pairwise
// to one register, for head sizes that are a multiple of 8; others, and the
// last keys, go one at a time.
func dotsAVX2(dst, q, k []float32, stride int) {
	n, hd := len(dst), len(q)
	checkRow(n == 0 || len(k) >= (n-1)*stride+hd)
	if hd%8 != 0 {
		dotsGeneric(dst, q, k, stride)
		return
	}
	qp, kp, dp := base(q), base(k), base(dst)
	p := 0
	for ; p+4 <= n; p += 4 {
		k0 := unsafe.Add(kp, 4*p*stride)
		k1, k2, k3 := unsafe.Add(k0, 4*stride), unsafe.Add(k0, 8*stride), unsafe.Add(k0, 12*stride)
		var a0, a1, a2, a3 archsimd.Float32x8
		for i := 0; i < hd; i += 8 {
			x := f32x8(qp, 4*i)
			a0 = x.MulAdd(f32x8(k0, 4*i), a0)
			a1 = x.MulAdd(f32x8(k1, 4*i), a1)
			a2 = x.MulAdd(f32x8(k2, 4*i), a2)
			a3 = x.MulAdd(f32x8(k3, 4*i), a3)
		}
		h := a0.AddPairsGrouped(a1).AddPairsGrouped(a2.AddPairsGrouped(a3))
		h.GetLo().Add(h.GetHi()).Store((*[4]float32)(unsafe.Add(dp, 4*p)))
	}
	archsimd.ClearAVXUpperBits()
	for ; p < n; p++ {
		dst[p] = dotAVX2(q, k[p*stride:p*stride+hd])
	}
}

// sumScaledAVX2 keeps 32 values of dst in registers over all the values
// cached, for sizes that are a multiple of 8.
func sumScaledAVX2(dst, w, v []float32, stride int) {
	n, hd := len(w), len(dst)
	checkRow(n == 0 || len(v) >= (n-1)*stride+hd)
	if hd%8 != 0 {
		sumScaledGeneric(dst, w, v, stride)
		return
	}
	dp, wp, vp := base(dst), base(w), base(v)
	i := 0
	for ; i+32 <= hd; i += 32 {
		var a0, a1, a2, a3 archsimd.Float32x8
		for p := range n {
			s := f32b(wp, 4*p)
			r := unsafe.Add(vp, 4*(p*stride+i))
			a0 = f32x8(r, 0).MulAdd(s, a0)
			a1 = f32x8(r, 32).MulAdd(s, a1)
			a2 = f32x8(r, 64).MulAdd(s, a2)
			a3 = f32x8(r, 96).MulAdd(s, a3)
		}
		o := unsafe.Add(dp, 4*i)
		a0.Store((*[8]float32)(o))
		a1.Store((*[8]float32)(unsafe.Add(o, 32)))
		a2.Store((*[8]float32)(unsafe.Add(o, 64)))
		a3.Store((*[8]float32)(unsafe.Add(o, 96)))
	}
	for ; i < hd; i += 8 {
		var a archsimd.Float32x8
		for p := range n {
			a = f32x8(vp, 4*(p*stride+i)).MulAdd(f32b(wp, 4*p), a)
		}
		a.Store((*[8]float32)(unsafe.Add(dp, 4*i)))
	}
	archsimd.ClearAVXUpperBits()
}

// exp8 is e^x for eight x in [−87, 88], where 2^k is a normal float32:
// x = k·ln 2 + r with k rounded (ln 2 split in two for precision), e^r by
// its Taylor polynomial to the 6th power, 2^k built in the exponent bits.
func exp8(x archsimd.Float32x8) archsimd.Float32x8 {
	one, half := archsimd.BroadcastFloat32x8(1), archsimd.BroadcastFloat32x8(0.5)
	k := x.MulAdd(archsimd.BroadcastFloat32x8(log2e), half).Floor()
	r := k.MulAdd(archsimd.BroadcastFloat32x8(-ln2lo), k.MulAdd(archsimd.BroadcastFloat32x8(-ln2hi), x))
	p := archsimd.BroadcastFloat32x8(1.0/720).MulAdd(r, archsimd.BroadcastFloat32x8(1.0/120))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/24))
	p = p.MulAdd(r, archsimd.BroadcastFloat32x8(1.0/6))
	p = p.MulAdd(r, half)
	p = p.MulAdd(r, one)
	p = p.MulAdd(r, one)
	return p.Mul(k.ConvertToInt32().Add(archsimd.BroadcastInt32x8(127)).ShiftAllLeft(23).AsFloat32x8())
}

// swigluAVX2 is swigluGeneric eight values at a time, with Exp's steps as
// vector operations (multiply-adds where Exp rounds twice, so the two differ
// by an ulp or so). Exponents are clamped to Exp's finite range: beyond it
// silu is g or 0 to far below float32's precision.
func swigluAVX2(g, u []float32) {
	n := len(g)
	checkRow(len(u) >= n)
	gp, up := base(g), base(u)
	lo, hi := archsimd.BroadcastFloat32x8(-87), archsimd.BroadcastFloat32x8(88)
	one := archsimd.BroadcastFloat32x8(1)
	i := 0
	for ; i+8 <= n; i += 8 {
		v := f32x8(gp, 4*i)
		e := exp8(v.Mul(archsimd.BroadcastFloat32x8(-1)).Max(lo).Min(hi))
		v.Div(e.Add(one)).Mul(f32x8(up, 4*i)).Store((*[8]float32)(unsafe.Add(gp, 4*i)))
	}
	archsimd.ClearAVXUpperBits()
	swigluGeneric(g[i:], u[i:n])
}

// softmaxAVX2 is softmaxGeneric eight scores at a time, e^x as swigluAVX2
// computes it (the differences from the largest score are at most 0, and
// clamped at −87, below which e^x is under float32's precision next to 1).
func softmaxAVX2(x []float32, scale float32) {
	n := len(x)
	xp := base(x)
	sc := archsimd.BroadcastFloat32x8(scale)
	mx := float32(math.Inf(-1))
	i := 0
	if n >= 8 {
		m := archsimd.BroadcastFloat32x8(mx)
		for ; i+8 <= n; i += 8 {
			v := f32x8(xp, 4*i).Mul(sc)
			v.Store((*[8]float32)(unsafe.Add(xp, 4*i)))
			m = m.Max(v)
		}
		var a [8]float32
		m.Store(&a)
		archsimd.ClearAVXUpperBits()
		for _, v := range a {
			mx = max(mx, v)
		}
	}
	for j := i; j < n; j++ {
		x[j] *= scale
		mx = max(mx, x[j])
	}
	lo := archsimd.BroadcastFloat32x8(-87)
	m := archsimd.BroadcastFloat32x8(mx)
	var sum archsimd.Float32x8
	i = 0
	for ; i+8 <= n; i += 8 {
		e := exp8(f32x8(xp, 4*i).Sub(m).Max(lo))
		e.Store((*[8]float32)(unsafe.Add(xp, 4*i)))
		sum = sum.Add(e)
	}
	total := hsum(sum)
	for j := i; j < n; j++ {
		x[j] = Exp(x[j] - mx)
		total += x[j]
	}
	inv := archsimd.BroadcastFloat32x8(1 / total)
	i = 0
	for ; i+8 <= n; i += 8 {
		f32x8(xp, 4*i).Mul(inv).Store((*[8]float32)(unsafe.Add(xp, 4*i)))
	}
	archsimd.ClearAVXUpperBits()
	for j := i; j < n; j++ {
		x[j] /= total
	}
}
