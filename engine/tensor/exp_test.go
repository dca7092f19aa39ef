package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExp(t *testing.T) {
	worst := 0.0
	for x := float32(-87); x <= 88; x += 0.0037 {
		want := math.Exp(float64(x))
		worst = max(worst, math.Abs(float64(Exp(x))-want)/want)
	}
	if worst > 3e-7 {
		t.Errorf("relative error up to %g", worst)
	}
	if Exp(-100) != 0 || !math.IsInf(float64(Exp(100)), 1) || Exp(0) != 1 {
		t.Errorf("edges: %v %v %v", Exp(-100), Exp(100), Exp(0))
	}
	if v := Exp(float32(math.NaN())); v == v {
		t.Errorf("NaN gave %v", v)
	}
}

// SwiGLU in use (SIMD where the build and CPU allow) against float64, over
// lengths with and without a tail and values out to where e^-g overflows.
func TestSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 100} {
		g, u := randVec(r, n), randVec(r, n)
		for i := range g {
			g[i] *= float32(1 + 30*(i%3))
		}
		if n > 2 {
			g[0], g[1] = 95, -95
		}
		got := append([]float32(nil), g...)
		SwiGLU(got, u)
		for i, v := range g {
			want := float64(v) / (1 + math.Exp(-float64(v))) * float64(u[i])
			if math.Abs(float64(got[i])-want) > 1e-6*math.Abs(want)+1e-30 {
				t.Errorf("n=%d: silu(%v)·%v = %v, want %v", n, v, u[i], got[i], want)
			}
		}
	}
}

// SoftmaxF32 in use (SIMD where the build and CPU allow) against float64, over
// lengths with and without a tail, scores far apart and all equal.
func TestSoftmaxF32(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 2, 7, 8, 9, 16, 31, 100, 1000} {
		for k := range 3 {
			x := randVec(r, n)
			for i := range x {
				switch k {
				case 1:
					x[i] *= 40
				case 2:
					x[i] = 3
				}
			}
			const scale = 0.125
			got := append([]float32(nil), x...)
			SoftmaxF32(got, scale)
			mx := math.Inf(-1)
			for _, v := range x {
				mx = max(mx, float64(v)*scale)
			}
			sum := 0.0
			for _, v := range x {
				sum += math.Exp(float64(v)*scale - mx)
			}
			for i, v := range x {
				want := math.Exp(float64(v)*scale-mx) / sum
				if math.Abs(float64(got[i])-want) > 2e-6*want+1e-12 {
					t.Fatalf("n=%d case %d: p[%d] = %v, want %v", n, k, i, got[i], want)
				}
			}
		}
	}
}
