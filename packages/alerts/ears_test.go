package alerts

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-3 }

// The baseline 10 12 8 11 9 10 10 has mean 10 and sample variance 10/6, so
// sd = 1.2910 and a count of 15 scores 5/1.2910 = 3.873.
var baseline = []float64{10, 12, 8, 11, 9, 10, 10}

func series(parts ...[]float64) []float64 {
	var out []float64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestC1(t *testing.T) {
	s, ok := C1(series(baseline, []float64{15}))
	if !ok || !near(s.Mean, 10) || !near(s.SD, 1.2910) || !near(s.Stat, 3.873) || !s.Flag {
		t.Errorf("spike: %+v %v", s, ok)
	}
	s, _ = C1(series(baseline, []float64{13}))
	if !near(s.Stat, 2.324) || s.Flag {
		t.Errorf("within 3 sd: %+v", s)
	}
	if _, ok := C1(baseline); ok {
		t.Error("C1 ran on 7 periods; it needs 8")
	}
}

func TestC2LagKeepsOutbreakOutOfBaseline(t *testing.T) {
	// Two high weeks before the current one: C1's baseline takes them in
	// and misses the third; C2's 2-week lag leaves them out.
	x := series(baseline, []float64{50, 50, 15})
	c2, ok := C2(x)
	if !ok || !near(c2.Mean, 10) || !near(c2.Stat, 3.873) || !c2.Flag {
		t.Errorf("C2: %+v %v", c2, ok)
	}
	c1, _ := C1(x)
	if c1.Flag || !near(c1.Mean, 148.0/7) {
		t.Errorf("C1: %+v", c1)
	}
	if _, ok := C2(x[:9]); ok {
		t.Error("C2 ran on 9 periods; it needs 10")
	}
}

func TestC3SumsModerateExcess(t *testing.T) {
	// A flat baseline (sd floored at MinSD = 1) then three weeks 2 above it:
	// C2 = 2 each week, below 3, but C3 = 3 × (2 − 1) = 3 exceeds 2.
	x := series(repeat(10, 9), []float64{12, 12, 12})
	c3, ok := C3(x)
	if !ok || !near(c3.Stat, 3) || !c3.Flag {
		t.Errorf("C3: %+v %v", c3, ok)
	}
	c2, _ := C2(x)
	if !near(c2.Stat, 2) || c2.Flag {
		t.Errorf("C2: %+v", c2)
	}
	c1, _ := C1(x)
	if c1.Flag {
		t.Errorf("C1: %+v", c1)
	}
	if _, ok := C3(x[1:]); ok {
		t.Error("C3 ran on 11 periods; it needs 12")
	}
}

func TestFlatBaselineThenSpike(t *testing.T) {
	x := series(repeat(10, 11), []float64{30})
	for name, f := range map[string]func([]float64) (Score, bool){"C1": C1, "C2": C2, "C3": C3} {
		s, ok := f(x)
		if !ok || !s.Flag || !near(s.SD, MinSD) {
			t.Errorf("%s on a spike: %+v %v", name, s, ok)
		}
	}
}

func TestSteadySeriesDoesNotFlag(t *testing.T) {
	for _, x := range [][]float64{repeat(10, 12), series(baseline, baseline[:5]), repeat(0, 12)} {
		for name, f := range map[string]func([]float64) (Score, bool){"C1": C1, "C2": C2, "C3": C3} {
			if s, ok := f(x); !ok || s.Flag {
				t.Errorf("%s on %v: %+v %v", name, x, s, ok)
			}
		}
	}
}
