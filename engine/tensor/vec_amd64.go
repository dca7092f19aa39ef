//go:build goexperiment.simd && amd64

package tensor

import (
	"simd/archsimd"
	"unsafe"
)

func init() {
	if archsimd.X86.AVX2() && archsimd.X86.FMA() {
		vec.dot = dotAVX2
		vec.axpy = axpyAVX2
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
