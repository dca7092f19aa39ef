package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestVecOps(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 64, 100} {
		a, b := randVec(r, n), randVec(r, n+3)
		want := 0.0
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		if got := DotF32(a, b); math.Abs(float64(got)-want) > 1e-4*(1+math.Abs(want)) {
			t.Errorf("DotF32 of %d: %v, want %v", n, got, want)
		}
		y := randVec(r, n)
		wantY := make([]float32, n)
		for i := range y {
			wantY[i] = y[i] + 0.5*b[i]
		}
		AddScaledF32(y, 0.5, b)
		for i := range y {
			if math.Abs(float64(y[i]-wantY[i])) > 1e-6 {
				t.Fatalf("AddScaledF32 of %d: [%d] %v, want %v", n, i, y[i], wantY[i])
			}
		}
	}
}

// DotsF32 and SumScaledF32 against float64 sums, for head sizes the SIMD
// kernels take (multiples of 8, of 32) and others, over strided caches.
func TestAttentionOps(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, hd := range []int{3, 8, 24, 64, 128} {
		for _, n := range []int{0, 1, 3, 4, 5, 17} {
			stride := 2*hd + 5
			q, cache, w := randVec(r, hd), randVec(r, max(0, (n-1)*stride+hd)), randVec(r, n)
			dots := make([]float32, n)
			DotsF32(dots, q, cache, stride)
			sum := randVec(r, hd) // overwritten
			SumScaledF32(sum, w, cache, stride)
			for p := range n {
				want, mag := 0.0, 0.0
				for i := range hd {
					want += float64(q[i]) * float64(cache[p*stride+i])
					mag += math.Abs(float64(q[i]) * float64(cache[p*stride+i]))
				}
				if math.Abs(float64(dots[p])-want) > 1e-6*(1+mag) {
					t.Errorf("DotsF32 hd=%d n=%d [%d]: %v, want %v", hd, n, p, dots[p], want)
				}
			}
			for i := range hd {
				want, mag := 0.0, 0.0
				for p := range n {
					want += float64(w[p]) * float64(cache[p*stride+i])
					mag += math.Abs(float64(w[p]) * float64(cache[p*stride+i]))
				}
				if math.Abs(float64(sum[i])-want) > 1e-6*(1+mag) {
					t.Errorf("SumScaledF32 hd=%d n=%d [%d]: %v, want %v", hd, n, i, sum[i], want)
				}
			}
		}
	}
}
