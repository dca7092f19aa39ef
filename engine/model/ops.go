package model

import (
	"math"

	"aigrid/engine/tensor"
)

// rmsNorm writes x / sqrt(mean(x²) + eps) · w into dst, summing in float64
// as ggml does.
func rmsNorm(dst, x, w []float32, eps float32) {
	sum := 0.0
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	scale := float32(1 / math.Sqrt(sum/float64(len(x))+float64(eps)))
	w = w[:len(x)]
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
}

// ropeTable fills cs with the cosine and sine of each rotated pair's angle at
// position pos: cs[2i], cs[2i+1]. It follows ggml's rope cache: the angle of
// pair i is pos·base^(-2i/dims), divided by the pair's frequency factor, then
// scaled (linear) or blended between scaled and unscaled (YaRN).
func (m *Model) ropeTable(cs []float32, pos int) {
	c := &m.Config
	thetaScale := float32(math.Pow(float64(c.RopeBase), -2/float64(c.RopeDim)))
	var lo, hi float32
	mscale := float32(1)
	if c.YarnExtFactor != 0 {
		lo, hi = yarnCorrDims(c.RopeDim, c.YarnOrigCtx, c.RopeBase, c.YarnBetaFast, c.YarnBetaSlow)
		mscale *= 1 + 0.1*float32(math.Log(float64(1/c.FreqScale)))
	}
	theta := float32(pos)
	for i := 0; i < c.RopeDim/2; i++ {
		extrap := theta
		if m.ropeFreqs != nil {
			extrap /= m.ropeFreqs[i]
		}
		t := c.FreqScale * extrap
		if c.YarnExtFactor != 0 {
			y := (float32(i) - lo) / max(0.001, hi-lo)
			mix := (1 - min(1, max(0, y))) * c.YarnExtFactor
			t = t*(1-mix) + extrap*mix
		}
		cs[2*i] = float32(math.Cos(float64(t))) * mscale
		cs[2*i+1] = float32(math.Sin(float64(t))) * mscale
		theta *= thetaScale
	}
}

func yarnCorrDims(dims, origCtx int, base, betaFast, betaSlow float32) (lo, hi float32) {
	dim := func(rot float32) float64 {
		return float64(dims) * math.Log(float64(origCtx)/(float64(rot)*2*math.Pi)) / (2 * math.Log(float64(base)))
	}
	lo = float32(max(0, math.Floor(dim(betaFast))))
	hi = float32(min(float64(dims-1), math.Ceil(dim(betaSlow))))
	return lo, hi
}

// rope rotates the first len(cs) values of each head of x (heads × headDim):
// adjacent pairs, or with neox the pairs (i, i+len(cs)/2).
func rope(x []float32, heads, headDim int, cs []float32, neox bool) {
	half := len(cs) / 2
	for h := range heads {
		v := x[h*headDim : (h+1)*headDim]
		for i := range half {
			c, s := cs[2*i], cs[2*i+1]
			a, b := 2*i, 2*i+1
			if neox {
				a, b = i, i+half
			}
			x0, x1 := v[a], v[b]
			v[a] = x0*c - x1*s
			v[b] = x0*s + x1*c
		}
	}
}

func dot(a, b []float32) float32 { return tensor.DotF32(a, b) }

// axpy adds a·x to y.
func axpy(y []float32, a float32, x []float32) { tensor.AddScaledF32(y, a, x) }
