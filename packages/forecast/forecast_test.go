package forecast

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"aigrid"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func TestLinearTrendIsExtrapolated(t *testing.T) {
	y := make([]float64, 40)
	for i := range y {
		y[i] = 5 + 2*float64(i)
	}
	for _, method := range []string{MethodAuto, MethodHolt} {
		res, err := Forecast(y, Options{Horizon: 6, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if res.Method != MethodHolt {
			t.Errorf("%s: chose %s for a straight line, want holt", method, res.Method)
		}
		for k, v := range res.Point {
			if want := 5 + 2*float64(40+k); !near(v, want, 1e-6) {
				t.Fatalf("%s: step %d: %v, want %v", method, k+1, v, want)
			}
		}
	}
	// Theta's forecast is the mean of the regression line and of SES (flat)
	// on the theta line: it rises by half the slope per step.
	res, err := Forecast(y, Options{Horizon: 4, Method: MethodTheta})
	if err != nil {
		t.Fatal(err)
	}
	for k := 1; k < len(res.Point); k++ {
		if d := res.Point[k] - res.Point[k-1]; !near(d, 1, 1e-6) {
			t.Fatalf("theta steps by %v, want half the slope 2", d)
		}
	}
}

func TestPureSeasonalPatternRepeats(t *testing.T) {
	pattern := []float64{10, 12, 15, 20, 18, 14, 11, 9, 8, 9, 10, 11}
	var y []float64
	for range 5 {
		y = append(y, pattern...)
	}
	for _, method := range []string{MethodAuto, MethodSeasonalNaive, MethodSeasonalMean, MethodNaive2} {
		res, err := Forecast(y, Options{Horizon: 18, Seasons: []int{12}, Method: method})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Seasonal {
			t.Errorf("%s: the seasonality test missed a pure cycle", method)
		}

		for k, v := range res.Point {
			if !near(v, pattern[k%12], 1e-9) {
				t.Fatalf("%s (%s): step %d: %v, want %v", method, res.Method, k+1, v, pattern[k%12])
			}
		}
	}
}

func TestCloseCandidatesAreAveraged(t *testing.T) {
	pattern := []float64{10, 12, 15, 20, 18, 14, 11, 9, 8, 9, 10, 11}
	y := slices.Repeat(pattern, 8)
	// Seasonal naive and the seasonal mean both forecast every fold exactly
	// (each fold's history holds the four cycles the mean needs): the choice
	// is their mean, which is exact too.
	res, err := Forecast(y, Options{Horizon: 12, Seasons: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != "seasonal_naive+seasonal_mean" {
		t.Errorf("auto chose %s, want the mean of the two exact candidates", res.Method)
	}
	for k, v := range res.Point {
		if !near(v, pattern[k], 1e-9) {
			t.Fatalf("step %d: %v, want %v", k+1, v, pattern[k])
		}
	}
	// With only five cycles the seasonal mean has no history in the earlier
	// folds, so seasonal naive wins alone.
	res, err = Forecast(y[:60], Options{Horizon: 18, Seasons: []int{12}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != MethodSeasonalNaive {
		t.Errorf("auto chose %s on five cycles, want seasonal_naive alone", res.Method)
	}
}

func TestConstantSeries(t *testing.T) {
	y := slices.Repeat([]float64{42}, 60)
	for _, method := range append(Methods(), MethodAuto, "seasonal_naive+ses") {
		res, err := Forecast(y, Options{Horizon: 5, Seasons: []int{4}, Method: method})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if res.Seasonal {
			t.Errorf("%s: a constant has no cycle", method)
		}
		for _, iv := range res.Intervals {
			for k, v := range res.Point {
				if !near(v, 42, 1e-6) || !near(iv.Lower[k], 42, 1e-6) || !near(iv.Upper[k], 42, 1e-6) {
					t.Fatalf("%s (%s): step %d: %v in [%v, %v], want 42 exactly", method, res.Method, k+1, v, iv.Lower[k], iv.Upper[k])
				}
			}
		}
	}
}

func TestSeasonalityTest(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]float64, 240)
	cycle := make([]float64, 240)
	for i := range noise {
		noise[i] = rng.NormFloat64()
		cycle[i] = 3*math.Sin(2*math.Pi*float64(i)/12) + rng.NormFloat64()
	}
	if isSeasonal(noise, 12) {
		t.Error("white noise passed the seasonality test")
	}
	if !isSeasonal(cycle, 12) {
		t.Error("a sine of period 12 in noise failed the seasonality test")
	}
	if isSeasonal(cycle[:30], 12) {
		t.Error("fewer than three cycles passed the seasonality test")
	}
}

func TestMultiplicativeSeasonIsRemoved(t *testing.T) {
	// A growing series whose cycle scales with its level: naive2 must put
	// the cycle back at the forecast's level, in proportion.
	index := []float64{0.8, 1.0, 1.2, 1.0}
	var y []float64
	for c := range 12 {
		for _, s := range index {
			y = append(y, float64(100+c)*s)
		}
	}
	p := prepare(y, 4)
	if !p.seasonal || !p.multiplicative {
		t.Fatalf("seasonal %v, multiplicative %v; want both", p.seasonal, p.multiplicative)
	}
	for i, s := range index {
		if !near(p.index[i], s, 0.01) {
			t.Errorf("index %d: %v, want %v", i, p.index[i], s)
		}
	}
	f, ok := naive2(p, 4)
	if !ok {
		t.Fatal("naive2 failed")
	}
	for k, v := range f.point {
		if !near(v, 111*index[k], 0.01) {
			t.Errorf("step %d: %v, want about %v", k+1, v, 111*index[k])
		}
	}
}

// coverage simulates series from gen, forecasts each h steps ahead with
// method and returns the share of actual values inside the 80% and 95%
// intervals.
func coverage(t *testing.T, gen func(rng *rand.Rand, n int) []float64, seasons []int, method string) (c80, c95 float64) {
	t.Helper()
	const runs, n, h = 100, 120, 8
	rng := rand.New(rand.NewPCG(7, 11))
	in80, in95, total := 0, 0, 0
	for range runs {
		y := gen(rng, n+h)
		res, err := Forecast(y[:n], Options{Horizon: h, Seasons: seasons, Method: method, Levels: []float64{80, 95}})
		if err != nil {
			t.Fatal(err)
		}
		for k, a := range y[n:] {
			if res.Intervals[0].Lower[k] <= a && a <= res.Intervals[0].Upper[k] {
				in80++
			}
			if res.Intervals[1].Lower[k] <= a && a <= res.Intervals[1].Upper[k] {
				in95++
			}
			total++
		}
	}
	return float64(in80) / float64(total), float64(in95) / float64(total)
}

func TestIntervalCoverage(t *testing.T) {
	localLevel := func(rng *rand.Rand, n int) []float64 {
		y, level := make([]float64, n), 50.0
		for i := range y {
			level += 0.5 * rng.NormFloat64()
			y[i] = level + rng.NormFloat64()
		}
		return y
	}
	randomWalk := func(rng *rand.Rand, n int) []float64 {
		y, v := make([]float64, n), 0.0
		for i := range y {
			v += rng.NormFloat64()
			y[i] = v
		}
		return y
	}
	seasonal := func(rng *rand.Rand, n int) []float64 {
		y, level := make([]float64, n), 20.0
		for i := range y {
			level += 0.3 * rng.NormFloat64()
			y[i] = level + 5*math.Sin(2*math.Pi*float64(i)/12) + rng.NormFloat64()
		}
		return y
	}
	for _, c := range []struct {
		name    string
		gen     func(*rand.Rand, int) []float64
		seasons []int
		method  string
	}{
		{"local level, ses", localLevel, []int{1}, MethodSES},
		{"local level, auto", localLevel, []int{1}, MethodAuto},
		{"random walk, naive", randomWalk, []int{1}, MethodNaive},
		{"random walk, auto", randomWalk, []int{1}, MethodAuto},
		{"seasonal, holt_winters", seasonal, []int{12}, MethodHoltWinters},
		{"seasonal, auto", seasonal, []int{12}, MethodAuto},
	} {
		c80, c95 := coverage(t, c.gen, c.seasons, c.method)
		t.Logf("%s: 80%% covers %.3f, 95%% covers %.3f", c.name, c80, c95)
		if c80 < 0.70 || c80 > 0.90 || c95 < 0.88 || c95 > 0.995 {
			t.Errorf("%s: 80%% interval covers %.3f, 95%% covers %.3f", c.name, c80, c95)
		}
	}
}

func TestBadInput(t *testing.T) {
	y := make([]float64, 30)
	for i := range y {
		y[i] = float64(i % 7)
	}
	for _, c := range []struct {
		name   string
		values []float64
		opts   Options
		param  string
	}{
		{"empty", nil, Options{Horizon: 3}, "series"},
		{"too short", []float64{1, 2}, Options{Horizon: 3}, "series"},
		{"NaN", append(slices.Clone(y), math.NaN()), Options{Horizon: 3}, "series"},
		{"Inf", append(slices.Clone(y), math.Inf(-1)), Options{Horizon: 3}, "series"},
		{"zero horizon", y, Options{Horizon: 0}, "horizon"},
		{"absurd horizon", y, Options{Horizon: 1000}, "horizon"},
		{"season 0", y, Options{Horizon: 3, Seasons: []int{0}}, "season"},
		{"season longer than half", y, Options{Horizon: 3, Seasons: []int{24}}, "season"},
		{"seasons out of order", y, Options{Horizon: 3, Seasons: []int{7, 3}}, "season"},
		{"level 100", y, Options{Horizon: 3, Levels: []float64{100}}, "level"},
		{"unknown method", y, Options{Horizon: 3, Method: "prophet"}, "method"},
		{"period not a season", y, Options{Horizon: 3, Seasons: []int{7}, Method: "ses@12"}, "method"},
	} {
		_, err := Forecast(c.values, c.opts)
		e, ok := err.(*aigrid.Error)
		if !ok || e.Code != aigrid.EInvalid || e.Param != c.param {
			t.Errorf("%s: got %v, want an invalid error on %s", c.name, err, c.param)
		}
	}
}

func TestSpecRoundTrip(t *testing.T) {
	for _, text := range []string{"theta", "ses@168", "seasonal_naive+ses@168", "comb+holt_winters"} {
		s, ok := parseSpec(text, []int{24, 168})
		if !ok || s.String() != text {
			t.Errorf("%q parsed to %v (ok %v)", text, s, ok)
		}
	}
	for _, text := range []string{"", "+", "theta@", "theta@24x", "ses@0", "magic"} {
		if _, ok := parseSpec(text, []int{24, 168}); ok {
			t.Errorf("%q parsed", text)
		}
	}
}

func TestAccuracy(t *testing.T) {
	actual, forecast := []float64{100, 200}, []float64{110, 180}
	// 200·10/210 and 200·20/380, averaged.
	if got, want := SMAPE(actual, forecast), (2000.0/210+4000.0/380)/2; !near(got, want, 1e-12) {
		t.Errorf("sMAPE %v, want %v", got, want)
	}
	// In-sample seasonal naive errors at lag 2: |3-1|, |4-2| → scale 2; errors 10 and 20.
	if got := MASE([]float64{1, 2, 3, 4}, actual, forecast, 2); !near(got, 7.5, 1e-12) {
		t.Errorf("MASE %v, want 7.5", got)
	}
	if got := SMAPE([]float64{0}, []float64{0}); got != 0 {
		t.Errorf("sMAPE of zero against zero %v, want 0", got)
	}
}
