package anomaly

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// noise returns n values of N(10, 1) from a fixed seed.
func noise(n int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		out[i] = 10 + r.NormFloat64()
	}
	return out
}

// run scores xs with d and returns the results.
func run(t testing.TB, d *Detector, xs []float64) []Result {
	t.Helper()
	out := make([]Result, len(xs))
	for i, x := range xs {
		r, err := d.Update(x)
		if err != nil {
			t.Fatalf("point %d (%v): %v", i, x, err)
		}
		if !(r.Score >= 0 && r.Score <= 1) {
			t.Fatalf("point %d (%v): score %v out of [0, 1]", i, x, r.Score)
		}
		out[i] = r
	}
	return out
}

func flagged(rs []Result) []int {
	var out []int
	for i, r := range rs {
		if r.Flag {
			out = append(out, i)
		}
	}
	return out
}

func newDetector(t testing.TB) *Detector {
	t.Helper()
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Steady noise raises no flag at threshold 0.5, and few at the default 0.4
// (optimised on NAB, where a missed anomaly costs as much as 18 false alarms).
func TestSteadyNoiseIsNotFlagged(t *testing.T) {
	for _, c := range []struct {
		threshold float64
		perFlag   int // points per flag at least
	}{{0.5, 0}, {0.4, 4000}} {
		n, flags := 0, 0
		for seed := range uint64(6) {
			d, err := New(Config{Threshold: c.threshold})
			if err != nil {
				t.Fatal(err)
			}
			rs := run(t, d, noise(5000, seed))
			n += len(rs)
			flags += len(flagged(rs))
		}
		if flags*c.perFlag > n || (c.perFlag == 0 && flags > 0) {
			t.Errorf("threshold %v: steady noise raised %d flags in %d points", c.threshold, flags, n)
		}
	}
}

func TestSpikeIsFlagged(t *testing.T) {
	xs := noise(1500, 7)
	xs[1200] += 8
	rs := run(t, newDetector(t), xs)
	if f := flagged(rs); len(f) != 1 || f[0] != 1200 {
		t.Errorf("spike at 1200: flags at %v (score there %.3f)", f, rs[1200].Score)
	}
}

func TestLevelShiftIsFlagged(t *testing.T) {
	xs := noise(2000, 8)
	for i := 1200; i < len(xs); i++ {
		xs[i] += 4
	}
	rs := run(t, newDetector(t), xs)
	f := flagged(rs)
	if len(f) == 0 || f[0] < 1200 || f[0] > 1210 {
		t.Errorf("level shift at 1200: flags at %v", f)
	}
	// One event, few flags: the suppression keeps the rest of the shift quiet.
	if len(f) > 3 {
		t.Errorf("level shift raised %d flags: %v", len(f), f)
	}
}

func TestFlatSignalChange(t *testing.T) {
	xs := make([]float64, 800)
	for i := range xs {
		xs[i] = 3
	}
	xs[600] = 3.5
	rs := run(t, newDetector(t), xs)
	if f := flagged(rs); len(f) != 1 || f[0] != 600 {
		t.Errorf("blip in a flat signal at 600: flags at %v", f)
	}
}

func TestWarmupScoresZero(t *testing.T) {
	xs := noise(300, 9)
	xs[100] = 1e6
	rs := run(t, newDetector(t), xs)
	for i, r := range rs[:DefaultConfig().Warmup] {
		if r.Score != 0 {
			t.Fatalf("warm-up point %d scored %v", i, r.Score)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	xs := noise(2500, 10)
	xs[1800] -= 9
	a := newDetector(t)
	run(t, a, xs[:1300])
	b1, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var b Detector
	if err := b.UnmarshalBinary(b1); err != nil {
		t.Fatal(err)
	}
	b2, err := b.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Fatal("state changed in a round trip")
	}
	ra, rb := run(t, a, xs[1300:]), run(t, &b, xs[1300:])
	for i := range ra {
		if ra[i] != rb[i] {
			t.Fatalf("point %d after the round trip: %+v, want %+v", 1300+i, rb[i], ra[i])
		}
	}
	if a.Points() != len(xs) || b.Flags() != a.Flags() || a.Flags() == 0 {
		t.Errorf("points %d flags %d/%d", a.Points(), a.Flags(), b.Flags())
	}
}

func TestCorruptState(t *testing.T) {
	d := newDetector(t)
	run(t, d, noise(400, 11))
	good, _ := d.MarshalBinary()
	for _, bad := range []string{
		"", "null", "{}", "[1]", string(good[:len(good)/2]),
		string(bytes.Replace(good, []byte(`"window":100`), []byte(`"window":-1`), 1)),
		string(bytes.Replace(good, []byte(`"n":400`), []byte(`"n":-400`), 1)),
	} {
		var d Detector
		if err := d.UnmarshalBinary([]byte(bad)); err == nil {
			t.Errorf("UnmarshalBinary(%.60q...) accepted a corrupt state", bad)
		}
	}
}

func TestBadValues(t *testing.T) {
	d := newDetector(t)
	for _, x := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), 2 * MaxValue} {
		if _, err := d.Update(x); err == nil {
			t.Errorf("Update(%v) accepted", x)
		}
	}
	if d.Points() != 0 {
		t.Errorf("rejected values counted: %d points", d.Points())
	}
}

func TestBadConfig(t *testing.T) {
	for _, c := range []Config{
		{Window: 3}, {Window: maxWindow + 1}, {Bins: 1}, {Alpha: 1.5}, {Beta: -0.1},
		{History: 10}, {Warmup: -1}, {Suppress: -1}, {Threshold: 2},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

func TestRobustZ(t *testing.T) {
	d := NewRobustZ(9)
	for x := 1.0; x <= 9; x++ {
		d.Update(x)
	}
	// Median 5, MAD 2: a value 3 robust standard deviations away.
	got := d.Update(5 + 3*1.4826*2)
	if want := 1 - math.Erfc(3/math.Sqrt2); math.Abs(got-want) > 1e-9 {
		t.Errorf("robust z of 3: %v, want %v", got, want)
	}
}

// FuzzDetector feeds arbitrary values (8 bytes each) to a small detector,
// saving and restoring it halfway: scores stay in [0, 1] and the restored
// detector agrees with the original.
func FuzzDetector(f *testing.F) {
	f.Add([]byte("0123456789abcdef0123456789abcdef0123456789abcdef"), 3)
	f.Add(bytes.Repeat([]byte{0x40, 0x24, 0, 0, 0, 0, 0, 0}, 200), 100)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		var xs []float64
		for ; len(b) >= 8; b = b[8:] {
			x := math.Float64frombits(uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
				uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56)
			if !math.IsNaN(x) && math.Abs(x) <= MaxValue {
				xs = append(xs, x)
			}
		}
		d, err := New(Config{Window: 8, EntropyWindow: 4, History: 50, Warmup: 10, Suppress: 5})
		if err != nil {
			t.Fatal(err)
		}
		cut = min(max(cut, 0), len(xs))
		run(t, d, xs[:cut])
		state, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var e Detector
		if err := e.UnmarshalBinary(state); err != nil {
			t.Fatalf("restoring a saved state: %v", err)
		}
		ra, rb := run(t, d, xs[cut:]), run(t, &e, xs[cut:])
		for i := range ra {
			if ra[i] != rb[i] {
				t.Fatalf("point %d: restored %+v, original %+v", cut+i, rb[i], ra[i])
			}
		}
	})
}

// FuzzState restores arbitrary states: an error or a detector that works.
func FuzzState(f *testing.F) {
	d, _ := New(Config{Window: 8, EntropyWindow: 4, History: 50, Warmup: 10, Suppress: 5})
	for _, x := range noise(120, 12) {
		d.Update(x)
	}
	b, _ := d.MarshalBinary()
	f.Add(b)
	f.Add([]byte(`{"config":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Detector
		if d.UnmarshalBinary(b) != nil {
			return
		}
		run(t, &d, noise(30, 13))
	})
}

// A sensor stuck for a cycle at the cycle's mean is flagged although every
// reading is ordinary: the seasonal detector compares with the same phase of
// the last cycles (without it, none of this is flagged).
func TestChangedCycleIsFlagged(t *testing.T) {
	const period = 24
	xs := noise(1200, 14)
	for i := range xs {
		xs[i] = 10*math.Sin(2*math.Pi*float64(i)/period) + xs[i] - 10
	}
	for i := 960; i < 960+period; i++ {
		xs[i] = 0
	}
	d := newDetector(t)
	rs := run(t, d, xs)
	if d.Period() != period {
		t.Errorf("period %d, want %d", d.Period(), period)
	}
	f := flagged(rs)
	if len(f) == 0 || f[0] < 960 || f[0] >= 960+period {
		t.Errorf("stuck cycle at 960..983: flags at %v", f)
	}
	for _, i := range f {
		if i < 960 {
			t.Errorf("regular cycles flagged at %d", i)
		}
	}
}

func TestFindPeriod(t *testing.T) {
	wave := make([]float64, 600)
	for i := range wave {
		wave[i] = math.Sin(2 * math.Pi * float64(i) / 96)
	}
	if p := findPeriod(wave); p != 96 {
		t.Errorf("sine of period 96: %d", p)
	}
	if p := findPeriod(noise(600, 15)); p != 0 {
		t.Errorf("noise: period %d", p)
	}
	if p := findPeriod(make([]float64, 600)); p != 0 {
		t.Errorf("flat: period %d", p)
	}
}

// The relative entropy test is surprised when the histogram changes, though
// no single value is out of range: a window unlike every earlier one (at the
// 1% level) scores 0.99 or more and becomes a new normal.
func TestRelativeEntropy(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 1))
	d := NewRelativeEntropy(52, 5, 200)
	count := func(n int, next func() float64) int {
		k := 0
		for range n {
			if d.Update(next()) >= 0.99 {
				k++
			}
		}
		return k
	}
	count(500, r.Float64)
	steady := count(1000, r.Float64)
	changed := count(52, func() float64 { return 0.8 + 0.2*r.Float64() })
	again := count(300, func() float64 { return 0.8 + 0.2*r.Float64() })
	if changed == 0 || steady > 10 || again > 3 {
		t.Errorf("surprises: %d in 1000 steady windows, %d in the 52 after a change, %d in the 300 after those", steady, changed, again)
	}
}

// The forecast error is surprised by a reading off the trend, even one that
// the values before it make ordinary.
func TestForecast(t *testing.T) {
	xs := noise(300, 17)
	d := NewForecast(0.5, 0.05, 0)
	before := 0.0
	for i, x := range xs {
		before = max(before, d.Update(float64(i)+0.1*x))
	}
	if got := d.Update(290); !(got > 0.9999 && before < 0.9999) {
		t.Errorf("on a ramp at 300, 290 scores %v (largest before %v)", got, before)
	}
}

// Extremes measures the excess over the range of its memory, and forgets
// what is older than its memory.
func TestExtremes(t *testing.T) {
	d := NewExtremes(10, 5) // a memory of 40 to 50 readings
	if _, ok := d.update(1, 1); ok {
		t.Fatal("scored with no history")
	}
	d.update(1000, 1)
	for i := range 60 {
		lp, ok := d.update(float64(i%10), 1)
		if i >= minExtremes && (!ok || lp != 0) {
			t.Fatalf("reading %d within the range: %v %v", i, lp, ok)
		}
	}
	// 1000 has left the memory; 13 is 4 beyond the range 0..9.
	if lp, _ := d.update(13, 1); math.Abs(lp-logTwoSided(4)) > 1e-12 {
		t.Errorf("13 over a range up to 9: %v, want %v", lp, logTwoSided(4))
	}
	if lp, _ := d.update(-2, 0.5); math.Abs(lp-logTwoSided(4)) > 1e-12 {
		t.Errorf("-2 under a range from 0 at scale 0.5: %v, want %v", lp, logTwoSided(4))
	}
}
