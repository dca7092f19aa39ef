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
