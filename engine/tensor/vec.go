package tensor

import "math"

// DotF32 returns Σ a[i]·b[i] over the len(a) values of a (b must hold as
// many), and AddScaledF32 adds s·x to y: the float32 vector operations of
// attention, with SIMD kernels where the CPU has them.
func DotF32(a, b []float32) float32 {
	return vec.dot(a, b[:len(a)])
}

// AddScaledF32 adds s·x[i] to each y[i] (x must be as long as y).
func AddScaledF32(y []float32, s float32, x []float32) {
	vec.axpy(y, s, x[:len(y)])
}

// DotsF32 sets dst[p] to Σ_i q[i]·k[p·stride+i] for each p: a query's
// attention scores against keys cached stride apart (k must hold them all).
func DotsF32(dst, q, k []float32, stride int) {
	if len(dst) == 0 {
		return
	}
	vec.dots(dst, q, k[:(len(dst)-1)*stride+len(q)], stride)
}

// SumScaledF32 sets dst to Σ_p w[p]·v[p·stride : p·stride+len(dst)]: the
// attention-weighted sum of values cached stride apart.
func SumScaledF32(dst, w, v []float32, stride int) {
	if len(w) == 0 {
		clear(dst)
		return
	}
	vec.sumScaled(dst, w, v[:(len(w)-1)*stride+len(dst)], stride)
}

// SoftmaxF32 turns the scores x, times scale, into probabilities in place:
// e^(scale·x[i] − max) over their sum.
func SoftmaxF32(x []float32, scale float32) {
	if len(x) > 0 {
		vec.softmax(x, scale)
	}
}

var vec = struct {
	dot       func(a, b []float32) float32
	axpy      func(y []float32, s float32, x []float32)
	dots      func(dst, q, k []float32, stride int)
	sumScaled func(dst, w, v []float32, stride int)
	swiglu    func(g, u []float32)
	softmax   func(x []float32, scale float32)
}{dotGeneric, axpyGeneric, dotsGeneric, sumScaledGeneric, swigluGeneric, softmaxGeneric}

func softmaxGeneric(x []float32, scale float32) {
	mx := float32(math.Inf(-1))
	for i, v := range x {
		x[i] = v * scale
		mx = max(mx, x[i])
	}
	sum := float32(0)
	for i, v := range x {
		e := Exp(v - mx)
		x[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range x {
		x[i] *= inv
	}
}

func dotsGeneric(dst, q, k []float32, stride int) {
	for p := range dst {
		dst[p] = dotGeneric(q, k[p*stride:p*stride+len(q)])
	}
}

func sumScaledGeneric(dst, w, v []float32, stride int) {
	clear(dst)
	for p, s := range w {
		axpyGeneric(dst, s, v[p*stride:p*stride+len(dst)])
	}
}

func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

func axpyGeneric(y []float32, s float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += s * x[i]
	}
}
