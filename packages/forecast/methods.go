package forecast

import "math"

// fit is one method's forecast of one series.
type fit struct {
	point []float64
	sd    []float64 // standard deviation of the forecast error, per step ahead
}

func (f fit) finite() bool {
	for i := range f.point {
		if math.IsNaN(f.point[i]) || math.IsInf(f.point[i], 0) || math.IsNaN(f.sd[i]) || math.IsInf(f.sd[i], 0) {
			return false
		}
	}
	return true
}

// prepared is a series ready for the methods at one seasonal period: its
// seasonal indices when the seasonality test finds the cycle, and the series
// with the cycle taken out.
type prepared struct {
	y              []float64
	m              int       // the period tested; 1 means none
	seasonal       bool      // the test found the cycle
	multiplicative bool      // the index divides (positive data) rather than subtracts
	index          []float64 // index[t%m] applies at time t; nil when not seasonal
	adjusted       []float64 // y without its cycle
}

func prepare(y []float64, m int) *prepared {
	p := &prepared{y: y, m: max(m, 1), adjusted: y}
	if !isSeasonal(y, p.m) {
		return p
	}
	lo, _ := bounds(y)
	p.seasonal, p.multiplicative = true, lo > 0
	p.index = seasonalIndices(y, p.m, p.multiplicative)
	p.adjusted = make([]float64, len(y))
	for t, v := range y {
		if p.multiplicative {
			p.adjusted[t] = v / p.index[t%p.m]
		} else {
			p.adjusted[t] = v - p.index[t%p.m]
		}
	}
	return p
}

// reseason puts the cycle back into a forecast of the adjusted series.
func (p *prepared) reseason(f fit) fit {
	if !p.seasonal {
		return f
	}
	n := len(p.y)
	for k := range f.point {
		s := p.index[(n+k)%p.m]
		if p.multiplicative {
			f.point[k] *= s
			f.sd[k] *= s
		} else {
			f.point[k] += s
		}
	}
	return f
}

// Method names, as they appear in Result.Method and Options.Method.
const (
	MethodNaive         = "naive"
	MethodSeasonalNaive = "seasonal_naive"
	MethodSeasonalMean  = "seasonal_mean"
	MethodNaive2        = "naive2"
	MethodSES           = "ses"
	MethodHolt          = "holt"
	MethodDamped        = "damped"
	MethodTheta         = "theta"
	MethodHoltWinters   = "holt_winters"
	// The Holt-Winters variants: a damped trend, a multiplicative season, both.
	MethodHoltWintersDamped    = "holt_winters_damped"
	MethodHoltWintersMul       = "holt_winters_mul"
	MethodHoltWintersMulDamped = "holt_winters_mul_damped"
	MethodComb                 = "comb"
	MethodAuto                 = "auto"
)

// method forecasts h steps of a prepared series; ok is false when the method
// does not apply (too short, no cycle) or its fit broke down.
type method func(p *prepared, h int) (f fit, ok bool)

var methods = map[string]method{
	MethodNaive:         naive,
	MethodSeasonalNaive: seasonalNaive,
	MethodSeasonalMean:  seasonalMean,
	MethodNaive2:        naive2,
	MethodSES:           ses,
	MethodHolt:          holt,
	MethodDamped:        damped,
	MethodTheta:         theta,
	MethodComb:          comb,

	MethodHoltWinters:          holtWinters(smoother{}),
	MethodHoltWintersDamped:    holtWinters(smoother{trend: true, damped: true}),
	MethodHoltWintersMul:       holtWinters(smoother{multiplicative: true}),
	MethodHoltWintersMulDamped: holtWinters(smoother{trend: true, damped: true, multiplicative: true}),
}

var (
	ses    = adjustedSmoother(smoother{})
	holt   = adjustedSmoother(smoother{trend: true})
	damped = adjustedSmoother(smoother{trend: true, damped: true})
)

// randomWalk repeats the last value; its error variance grows linearly with h.
func randomWalk(y []float64, h int) fit {
	n := len(y)
	sse := 0.0
	for t := 1; t < n; t++ {
		sse += (y[t] - y[t-1]) * (y[t] - y[t-1])
	}
	sigma := 0.0
	if n > 1 {
		sigma = math.Sqrt(sse / float64(n-1))
	}
	f := fit{point: make([]float64, h), sd: make([]float64, h)}
	for k := range f.point {
		f.point[k] = y[n-1]
		f.sd[k] = sigma * math.Sqrt(float64(k+1))
	}
	return f
}

func naive(p *prepared, h int) (fit, bool) {
	f := randomWalk(p.y, h)
	return f, f.finite()
}

// naive2 is the M4 benchmark: the naive forecast of the seasonally adjusted series.
func naive2(p *prepared, h int) (fit, bool) {
	f := p.reseason(randomWalk(p.adjusted, h))
	return f, f.finite()
}

// seasonalNaive repeats the last cycle; its variance grows with whole cycles ahead.
func seasonalNaive(p *prepared, h int) (fit, bool) {
	y, m, n := p.y, p.m, len(p.y)
	if m < 2 || n < m+1 {
		return fit{}, false
	}
	sse := 0.0
	for t := m; t < n; t++ {
		sse += (y[t] - y[t-m]) * (y[t] - y[t-m])
	}
	sigma := math.Sqrt(sse / float64(n-m))
	f := fit{point: make([]float64, h), sd: make([]float64, h)}
	for k := range f.point {
		f.point[k] = y[n-m+k%m]
		f.sd[k] = sigma * math.Sqrt(float64(k/m+1))
	}
	return f, f.finite()
}

// seasonalMeanCycles is how many recent cycles seasonalMean averages: enough
// to halve the noise of one cycle, few enough to follow a changing level.
const seasonalMeanCycles = 3

// seasonalMean forecasts each position in the cycle by its mean over the
// last cycles: the seasonal naive forecast with less noise, for series whose
// level holds still.
func seasonalMean(p *prepared, h int) (fit, bool) {
	y, m, n, c := p.y, p.m, len(p.y), seasonalMeanCycles
	if m < 2 || n < (c+1)*m {
		return fit{}, false
	}
	at := func(t int) float64 { // the mean of the c cycles before time t
		s := 0.0
		for j := 1; j <= c; j++ {
			s += y[t-j*m]
		}
		return s / float64(c)
	}
	sse := 0.0
	for t := c * m; t < n; t++ {
		sse += (y[t] - at(t)) * (y[t] - at(t))
	}
	sigma := math.Sqrt(sse / float64(n-c*m))
	f := fit{point: make([]float64, h), sd: make([]float64, h)}
	for k := range f.point {
		f.point[k] = at(n + k%m)
		f.sd[k] = sigma * math.Sqrt(float64(k/m+1))
	}
	return f, f.finite()
}

// adjustedSmoother fits an exponential smoother to the seasonally adjusted
// series, as the M4 benchmarks do, and puts the cycle back.
func adjustedSmoother(sm smoother) method {
	return func(p *prepared, h int) (fit, bool) {
		if len(p.y) < 3 {
			return fit{}, false
		}
		f, ok := fitSmoother(p.adjusted, sm, h)
		if !ok {
			return fit{}, false
		}
		f = p.reseason(f)
		return f, f.finite()
	}
}

// holtWinters fits the cycle jointly with the level instead of taking it
// from the decomposition, so that the indices follow a cycle whose shape
// drifts (ETS with additive errors and an additive or multiplicative season,
// no trend or a damped one). It needs the test to find the cycle and two
// whole cycles to start from; a multiplicative season needs positive data.
// Choosing the variant by validation beat choosing it by AICc on M4 Hourly
// (OWA 0.491 against 0.501), so each variant is a method of its own.
func holtWinters(sm smoother) method {
	return func(p *prepared, h int) (fit, bool) {
		if !p.seasonal || len(p.y) < 2*p.m || (sm.multiplicative && !p.multiplicative) {
			return fit{}, false
		}
		sm.m = p.m
		return fitSmoother(p.y, sm, h)
	}
}

// theta is the M4 Theta benchmark (Assimakopoulos & Nikolopoulos 2000): the
// mean of the regression line (theta = 0) extrapolated and of simple
// exponential smoothing of the theta = 2 line, which doubles the local
// curvature. Hyndman & Billah (2003) showed it to be SES with drift; its
// intervals are those of the smoother, halved because the theta line doubles
// every deviation from the regression line.
func theta(p *prepared, h int) (fit, bool) {
	y := p.adjusted
	n := len(y)
	if n < 3 {
		return fit{}, false
	}
	a, b := lineFit(y)
	line2 := make([]float64, n)
	for t, v := range y {
		line2[t] = 2*v - (a + b*float64(t))
	}
	f, ok := fitSmoother(line2, smoother{}, h)
	if !ok {
		return fit{}, false
	}
	for k := range f.point {
		f.point[k] = 0.5*(a+b*float64(n+k)) + 0.5*f.point[k]
		f.sd[k] /= 2
	}
	f = p.reseason(f)
	return f, f.finite()
}

// comb is the M4 "Comb" benchmark: the mean of SES, Holt and damped trend on
// the seasonally adjusted series.
func comb(p *prepared, h int) (fit, bool) {
	return mean(h, func() (fit, bool) { return ses(p, h) }, func() (fit, bool) { return holt(p, h) }, func() (fit, bool) { return damped(p, h) })
}

// mean averages forecasts. Its standard deviations are the mean of the
// parts', which holds when their errors are strongly correlated (as those of
// methods fitted to one series are) and errs wide otherwise.
func mean(h int, parts ...func() (fit, bool)) (fit, bool) {
	out := fit{point: make([]float64, h), sd: make([]float64, h)}
	for _, part := range parts {
		f, ok := part()
		if !ok {
			return fit{}, false
		}
		for k := range out.point {
			out.point[k] += f.point[k] / float64(len(parts))
			out.sd[k] += f.sd[k] / float64(len(parts))
		}
	}
	return out, true
}
