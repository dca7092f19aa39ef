package forecast

import (
	"math"
	"sort"
)

// validationFolds is how many forecast origins the automatic choice scores
// each candidate from: the last h points held out, then the h before them,
// and so on. One fold picks by luck on short noisy series; on M4's Weekly
// data three folds took OWA from 0.93 to 0.88 and on Hourly from 0.51 to
// 0.50, and more folds cost time without gain.
const validationFolds = 3

// combineRatio decides when the choice is the mean of the two best
// candidates rather than the best alone: when the runner-up's validation
// error is within this factor of the winner's. Two methods that did almost
// equally well make errors that partly cancel; a clear winner (a straight
// line that Holt forecasts exactly) should not be diluted. On M4 (OWA,
// Hourly / Weekly / Weekly with the 52-week cycle) the best alone scored
// 0.491 / 0.882 / 0.811, always the mean of two 0.492 / 0.870 / 0.763, and
// factors from 1.1 to 1.5 all about 0.487 / 0.865 / 0.763.
const combineRatio = 1.2

// candidates lists what the automatic choice tries for a series with these
// seasons (the main period first), simplest first so that ties go to the
// simpler method.
func candidates(seasons []int) []spec {
	m := seasons[0]
	one := func(name string, period int) spec { return spec{{name, period}} }
	var out []spec
	if m == 1 {
		for _, name := range []string{MethodNaive, MethodSES, MethodHolt, MethodDamped, MethodTheta, MethodComb} {
			out = append(out, one(name, 0))
		}
	} else {
		for _, name := range []string{MethodSeasonalNaive, MethodSeasonalMean, MethodNaive2, MethodSES, MethodHolt, MethodDamped, MethodTheta, MethodComb, MethodHoltWinters, MethodHoltWintersDamped, MethodHoltWintersMul, MethodHoltWintersMulDamped} {
			out = append(out, one(name, 0))
		}
	}
	for _, long := range seasons[1:] {
		for _, name := range []string{MethodSeasonalNaive, MethodSeasonalMean, MethodSES, MethodDamped, MethodTheta, MethodHoltWinters} {
			out = append(out, one(name, long))
		}
		// A short cycle's last round and a long cycle's smooth shape
		// make up for each other's errors.
		if m > 1 {
			out = append(out,
				spec{{MethodSeasonalNaive, 0}, {MethodSeasonalNaive, long}},
				spec{{MethodSeasonalNaive, 0}, {MethodSES, long}})
		}
	}
	return out
}

// Candidates lists, as Result.Method names them, the methods that the
// automatic choice tries for a series with these seasons.
func Candidates(seasons []int) []string {
	var names []string
	for _, c := range candidates(seasons) {
		names = append(names, c.String())
	}
	return names
}

// choose picks the candidate with the lowest scaled absolute error over the
// validation folds, or the mean of the best two when they are close (see
// combineRatio). A history too short for a single fold gets Comb, the M4
// benchmark that is hardest to beat without evidence.
func choose(y []float64, seasons []int, h int) spec {
	m := seasons[0]
	cands := candidates(seasons)
	errs := make([]float64, len(cands))
	folds := 0
	for k := 1; k <= validationFolds; k++ {
		train := len(y) - k*h
		if train < max(2*m, minPoints) {
			break
		}
		folds++
		s := newSeries(y[:train], seasons)
		scale := seasonalScale(y[:train], m)
		for i, c := range cands {
			f, ok := s.forecast(c, h)
			if !ok {
				errs[i] = math.Inf(1)
				continue
			}
			e := 0.0
			for j, v := range f.point {
				e += math.Abs(y[train+j] - v)
			}
			errs[i] += e / scale
		}
	}
	if folds == 0 {
		return spec{{MethodComb, 0}}
	}
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return errs[order[a]] < errs[order[b]] })
	best := order[0]
	if math.IsInf(errs[best], 1) {
		return spec{{MethodComb, 0}}
	}
	if len(order) > 1 && errs[order[1]] <= combineRatio*errs[best] {
		return append(append(spec{}, cands[best]...), cands[order[1]]...)
	}
	return cands[best]
}

// seasonalScale is the in-sample mean absolute error of the seasonal naive
// forecast (the naive forecast when m is 1 or the series too short): MASE's
// denominator, and the unit in which choose compares errors.
func seasonalScale(y []float64, m int) float64 {
	if len(y) <= m {
		m = 1
	}
	s, count := 0.0, 0
	for t := m; t < len(y); t++ {
		s += math.Abs(y[t] - y[t-m])
		count++
	}
	if count == 0 || s == 0 {
		return 1
	}
	return s / float64(count)
}
