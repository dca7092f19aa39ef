package forecast

import "math"

// smoother is one exponential smoothing model in innovations form with
// additive errors (Hyndman et al. 2008): simple (no trend), Holt (linear
// trend), damped trend, and Holt-Winters (a seasonal cycle of period m on top).
type smoother struct {
	trend, damped  bool
	m              int // seasonal period; 0 for none
	multiplicative bool
}

// smoothState is a smoother's parameters and initial state.
type smoothState struct {
	alpha, beta, gamma, phi float64
	level, slope            float64
	season                  []float64 // season[t%m] is the index that applies at time t
}

// filter runs the model over y from st (which it changes to the final state)
// and returns the sum of squared one-step errors, +Inf if the recursion breaks.
func (sm smoother) filter(y []float64, st *smoothState) float64 {
	sse := 0.0
	for t, v := range y {
		base := st.level + st.phi*st.slope
		pred, s := base, 0.0
		if sm.m > 0 {
			s = st.season[t%sm.m]
			if sm.multiplicative {
				pred = base * s
			} else {
				pred = base + s
			}
		}
		e := v - pred
		sse += e * e
		scaled := e
		if sm.multiplicative {
			if s <= 1e-8 || base <= 1e-8 {
				return math.Inf(1)
			}
			scaled = e / s
		}
		st.level = base + st.alpha*scaled
		st.slope = st.phi*st.slope + st.beta*scaled
		if sm.m > 0 {
			if sm.multiplicative {
				st.season[t%sm.m] = s + st.gamma*e/base
			} else {
				st.season[t%sm.m] = s + st.gamma*e
			}
		}
	}
	if math.IsInf(sse, 0) || math.IsNaN(sse) {
		return math.Inf(1)
	}
	return sse
}

// fitSmoother estimates the smoothing parameters (and, without a season, the
// initial level) by minimising the in-sample one-step SSE, then forecasts h
// steps with the standard deviations of the class-1 formulas:
// var_h = σ²(1 + Σ_{j<h} c_j²), c_j = α + β(φ+…+φ^j) + γ[j ≡ 0 mod m].
func fitSmoother(y []float64, sm smoother, h int) (fit, bool) {
	n := len(y)
	init, ok := initialState(y, sm)
	if !ok {
		return fit{}, false
	}
	lo, hi := []float64{1e-4}, []float64{0.9999}
	x0 := []float64{0.3}
	if sm.trend {
		lo, hi, x0 = append(lo, 1e-4), append(hi, 0.9999), append(x0, 0.1) // β as a fraction of α
	}
	if sm.damped {
		lo, hi, x0 = append(lo, 0.8), append(hi, 0.98), append(x0, 0.95)
	}
	if sm.m > 0 {
		lo, hi, x0 = append(lo, 1e-4), append(hi, 0.9999), append(x0, 0.1) // γ as a fraction of 1-α
	}
	if sm.m == 0 {
		lower, upper := bounds(y)
		spread := upper - lower + 1e-9*math.Max(math.Abs(upper), 1)
		lo, hi, x0 = append(lo, lower-spread), append(hi, upper+spread), append(x0, init.level)
	}
	work := smoothState{season: make([]float64, sm.m)}
	unpack := func(x []float64, st *smoothState) {
		*st = smoothState{alpha: x[0], phi: 1, level: init.level, slope: init.slope, season: st.season}
		copy(st.season, init.season)
		i := 1
		if sm.trend {
			st.beta = x[i] * st.alpha
			i++
		}
		if sm.damped {
			st.phi = x[i]
			i++
		}
		if !sm.trend {
			st.phi = 0
		}
		if sm.m > 0 {
			st.gamma = x[i] * (1 - st.alpha)
			i++
		} else {
			st.level = x[i]
		}
	}
	best := minimize(func(x []float64) float64 {
		unpack(x, &work)
		return sm.filter(y, &work)
	}, x0, lo, hi, 150*len(x0))
	unpack(best, &work)
	sse := sm.filter(y, &work)
	if math.IsInf(sse, 0) {
		return fit{}, false
	}
	// The error variance counts the fitted parameters as used-up
	// observations, as R's ets does; short series otherwise get intervals
	// that are too narrow.
	sigma := math.Sqrt(sse / float64(max(n-len(x0), 1)))
	f := fit{point: make([]float64, h), sd: make([]float64, h)}
	damp, sumC2 := 0.0, 0.0
	for k := 1; k <= h; k++ {
		damp += math.Pow(work.phi, float64(k))
		v := work.level + damp*work.slope
		if sm.m > 0 {
			s := work.season[(n+k-1)%sm.m]
			if sm.multiplicative {
				v *= s
			} else {
				v += s
			}
		}
		f.point[k-1] = v
		f.sd[k-1] = sigma * math.Sqrt(1+sumC2)
		c := work.alpha + work.beta*damp
		if sm.m > 0 && k%sm.m == 0 {
			c += work.gamma
		}
		sumC2 += c * c
	}
	return f, f.finite()
}

// initialState guesses the starting level, slope and season: from a line
// through the first points without a season, and from the first cycles'
// means and deviations with one.
func initialState(y []float64, sm smoother) (smoothState, bool) {
	n := len(y)
	st := smoothState{season: make([]float64, sm.m)}
	if sm.m == 0 {
		k := min(n, 10)
		a, b := lineFit(y[:k])
		st.level, st.slope = a-b, b // the level before y[0]
		if !sm.trend {
			st.level, st.slope = y[0], 0
		}
		return st, true
	}
	m := sm.m
	cycles := min(n/m, 3)
	if cycles < 2 {
		return st, false
	}
	means := make([]float64, cycles)
	for c := range means {
		for _, v := range y[c*m : (c+1)*m] {
			means[c] += v
		}
		means[c] /= float64(m)
		if sm.multiplicative && means[c] <= 0 {
			return st, false
		}
	}
	for i := 0; i < m; i++ {
		for c := range means {
			if sm.multiplicative {
				st.season[i] += y[c*m+i] / means[c] / float64(cycles)
			} else {
				st.season[i] += (y[c*m+i] - means[c]) / float64(cycles)
			}
		}
	}
	st.slope = (means[cycles-1] - means[0]) / float64((cycles-1)*m)
	st.level = means[0] - st.slope*float64(m+1)/2
	if !sm.trend {
		st.slope = 0
	}
	return st, true
}

// lineFit returns the least-squares intercept and slope of y against t = 0, 1, ….
func lineFit(y []float64) (intercept, slope float64) {
	n := float64(len(y))
	if len(y) < 2 {
		return y[0], 0
	}
	tMean := (n - 1) / 2
	yMean := 0.0
	for _, v := range y {
		yMean += v
	}
	yMean /= n
	num, den := 0.0, 0.0
	for t, v := range y {
		d := float64(t) - tMean
		num += d * (v - yMean)
		den += d * d
	}
	slope = num / den
	return yMean - slope*tMean, slope
}

func bounds(y []float64) (lo, hi float64) {
	lo, hi = y[0], y[0]
	for _, v := range y {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	return lo, hi
}
