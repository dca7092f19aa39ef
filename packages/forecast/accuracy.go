package forecast

import "math"

// SMAPE is the M4 symmetric mean absolute percentage error of forecast
// against actual, in percent: mean of 200|a-f|/(|a|+|f|), a pair of zeros
// counting as no error.
func SMAPE(actual, forecast []float64) float64 {
	s := 0.0
	for i, a := range actual {
		if d := math.Abs(a) + math.Abs(forecast[i]); d > 0 {
			s += 200 * math.Abs(a-forecast[i]) / d
		}
	}
	return s / float64(len(actual))
}

// MASE is the mean absolute scaled error of forecast against actual: the mean
// absolute error over the in-sample mean absolute error of the seasonal naive
// forecast with period m (the naive forecast for m = 1).
func MASE(insample, actual, forecast []float64, m int) float64 {
	s := 0.0
	for i, a := range actual {
		s += math.Abs(a - forecast[i])
	}
	return s / float64(len(actual)) / seasonalScale(insample, max(m, 1))
}
