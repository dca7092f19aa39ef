package alerts

import "math"

// The EARS thresholds (Hutwagner et al. 2003; Fricker, Hegler and Dunfee,
// Statistics in Medicine 27:3407, 2008): C1 and C2 flag a count more than 3
// baseline standard deviations above the baseline mean; C3 flags when its
// sum exceeds 2.
const (
	ThresholdC1 = 3.0
	ThresholdC2 = 3.0
	ThresholdC3 = 2.0
)

// MinSD is the smallest baseline standard deviation EARS divides by. A flat
// baseline (seven equal counts) has none, and the published statistics are
// then undefined; with a floor of one case, a jump of more than 3 cases over
// a flat baseline flags, as an epidemiologist would expect.
const MinSD = 1.0

// baselineLen is the EARS baseline: 7 periods.
const baselineLen = 7

// Score is one EARS statistic for the last period of a series.
type Score struct {
	Stat float64 `json:"stat"` // C1 or C2: (count - mean) / sd; C3: the sum
	Mean float64 `json:"mean"` // the baseline mean: the expected count
	SD   float64 `json:"sd"`   // the baseline standard deviation, at least MinSD
	Flag bool    `json:"flag"` // Stat exceeds the method's threshold
}

// C1 scores the last count of x against the 7 periods just before it.
// ok is false when x holds fewer than 8 periods.
func C1(x []float64) (s Score, ok bool) {
	return lagged(x, 0, ThresholdC1)
}

// C2 scores the last count of x against 7 periods ending 3 periods before
// it: the 2-period gap keeps the start of an outbreak out of its baseline.
// ok is false when x holds fewer than 10 periods.
func C2(x []float64) (s Score, ok bool) {
	return lagged(x, 2, ThresholdC2)
}

// C3 sums the excess of C2 over 1 standard deviation for the last period
// and the two before it: C3 = Σ max(0, C2(i) − 1), i = t−2..t, so that
// counts moderately high for three periods flag where no single one would.
// Mean and SD are those of the last period's C2. ok is false when x holds
// fewer than 12 periods.
func C3(x []float64) (s Score, ok bool) {
	n := len(x)
	if n < baselineLen+5 {
		return Score{}, false
	}
	for i := n - 2; i <= n; i++ {
		c2, _ := C2(x[:i])
		s.Stat += math.Max(0, c2.Stat-1)
		s.Mean, s.SD = c2.Mean, c2.SD
	}
	s.Flag = s.Stat > ThresholdC3
	return s, true
}

// lagged is C1 (lag 0) and C2 (lag 2): the baseline is the 7 periods that
// end lag periods before the last one.
func lagged(x []float64, lag int, threshold float64) (Score, bool) {
	n := len(x)
	if n < baselineLen+lag+1 {
		return Score{}, false
	}
	base := x[n-1-lag-baselineLen : n-1-lag]
	var sum float64
	for _, v := range base {
		sum += v
	}
	mean := sum / baselineLen
	var ss float64
	for _, v := range base {
		ss += (v - mean) * (v - mean)
	}
	sd := math.Max(math.Sqrt(ss/(baselineLen-1)), MinSD)
	stat := (x[n-1] - mean) / sd
	return Score{Stat: stat, Mean: mean, SD: sd, Flag: stat > threshold}, true
}
