package forecast

import "math"

// acf returns the sample autocorrelations of y at lags 0..maxLag.
func acf(y []float64, maxLag int) []float64 {
	n := len(y)
	mean := 0.0
	for _, v := range y {
		mean += v
	}
	mean /= float64(n)
	denom := 0.0
	for _, v := range y {
		denom += (v - mean) * (v - mean)
	}
	r := make([]float64, maxLag+1)
	if denom == 0 || math.IsInf(denom, 0) {
		return r
	}
	for k := 0; k <= maxLag && k < n; k++ {
		s := 0.0
		for t := k; t < n; t++ {
			s += (y[t] - mean) * (y[t-k] - mean)
		}
		r[k] = s / denom
	}
	return r
}

// isSeasonal is the M4 benchmarks' 90% test: the autocorrelation at lag m must
// exceed 1.645 standard errors (Bartlett's formula over the shorter lags), and
// the series must hold at least three cycles for the estimate to mean anything.
func isSeasonal(y []float64, m int) bool {
	n := len(y)
	if m < 2 || n < 3*m {
		return false
	}
	r := acf(y, m)
	sum := 0.0
	for k := 1; k < m; k++ {
		sum += r[k] * r[k]
	}
	limit := 1.645 * math.Sqrt((1+2*sum)/float64(n))
	return math.Abs(r[m]) > limit
}

// seasonalIndices estimates one index per position in the cycle (position t%m
// for y[t]) by classical decomposition: a centred moving average of order m is
// the trend, and each index averages the detrended values at its position.
// Multiplicative indices (ratios, averaging 1) need positive data; otherwise
// the indices are additive (differences, averaging 0).
func seasonalIndices(y []float64, m int, multiplicative bool) []float64 {
	n := len(y)
	trend := centredMovingAverage(y, m)
	sums := make([]float64, m)
	counts := make([]int, m)
	for t := 0; t < n; t++ {
		if math.IsNaN(trend[t]) {
			continue
		}
		if multiplicative {
			sums[t%m] += y[t] / trend[t]
		} else {
			sums[t%m] += y[t] - trend[t]
		}
		counts[t%m]++
	}
	index := make([]float64, m)
	mean := 0.0
	for i := range index {
		if counts[i] > 0 {
			index[i] = sums[i] / float64(counts[i])
		} else if multiplicative {
			index[i] = 1
		}
		mean += index[i]
	}
	mean /= float64(m)
	for i := range index {
		if multiplicative {
			index[i] /= mean
		} else {
			index[i] -= mean
		}
	}
	return index
}

// centredMovingAverage is the 2×m moving average for even m and the m moving
// average for odd m, NaN where the window runs off either end.
func centredMovingAverage(y []float64, m int) []float64 {
	n := len(y)
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	half := m / 2
	for t := half; t+half < n; t++ {
		if m%2 == 1 {
			s := 0.0
			for j := t - half; j <= t+half; j++ {
				s += y[j]
			}
			out[t] = s / float64(m)
			continue
		}
		s := 0.5*y[t-half] + 0.5*y[t+half]
		for j := t - half + 1; j < t+half; j++ {
			s += y[j]
		}
		out[t] = s / float64(m)
	}
	return out
}
