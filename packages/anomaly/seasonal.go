package anomaly

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
)

// Seasonal scores a reading against the readings at the same phase of the
// series' last cycles: a day of 5-minute readings is 288, and a day whose
// shape changes stands out even when each of its readings is ordinary. The
// cycle is the highest autocorrelation peak of the first FitAfter readings,
// if it is strong enough; a series without one leaves this detector silent.
// The reading is compared with the median of the readings within ±jitter of
// its phase in each of the last Cycles cycles, in units of the running mean
// absolute deviation from that median. Each point costs O(Cycles·jitter).
type Seasonal struct {
	s seasonalState
}

type seasonalState struct {
	FitAfter int       `json:"fit_after"`
	Cycles   int       `json:"cycles"`
	Fitted   bool      `json:"fitted"`
	Period   int       `json:"period"` // 0 when there is no cycle
	Buf      []float64 `json:"buf"`    // the readings until fitted; then the last Cycles·Period+jitter
	N        int       `json:"n"`      // deviations seen
	Dev      float64   `json:"dev"`    // their running mean
}

const (
	seasonJitter = 2    // readings either side of the phase: cycles drift a little
	seasonACF    = 0.5  // autocorrelation a cycle needs
	minSeason    = 4    // shortest cycle, in readings
	maxSeasonFit = 4096 // readings the cycle is looked for in, at most
	seasonRate   = 0.01 // of the running deviation
	minSeasonDev = 10   // deviations seen before scoring
)

// NewSeasonal returns the detector, which looks for a cycle in the first
// fitAfter readings (at most 4096) and compares with the last `cycles` cycles.
func NewSeasonal(fitAfter, cycles int) *Seasonal {
	return &Seasonal{s: seasonalState{FitAfter: min(max(fitAfter, 0), maxSeasonFit), Cycles: max(cycles, 1)}}
}

// Period returns the cycle found, in readings, or 0.
func (d *Seasonal) Period() int { return d.s.Period }

// update returns the log tail probability of x's deviation from its phase,
// and whether there was a cycle to compare with, and adds x.
func (d *Seasonal) update(x float64) (float64, bool) {
	s := &d.s
	if !s.Fitted {
		s.Buf = append(s.Buf, x)
		if len(s.Buf) >= s.FitAfter {
			s.Fitted = true
			s.Period = findPeriod(s.Buf)
			s.Buf = slices.Clone(s.Buf[max(len(s.Buf)-s.keep(), 0):])
		}
		return 0, false
	}
	if s.Period == 0 {
		return 0, false
	}
	// x would sit at index n; its phase c cycles back is n - c·Period.
	n := len(s.Buf)
	near := make([]float64, 0, s.Cycles*(2*seasonJitter+1))
	for c := 1; c <= s.Cycles; c++ {
		for j := -seasonJitter; j <= seasonJitter; j++ {
			if k := n - c*s.Period + j; k >= 0 && k < n {
				near = append(near, s.Buf[k])
			}
		}
	}
	lp, ok := 0.0, false
	if len(near) > 0 {
		slices.Sort(near)
		med := (near[(len(near)-1)/2] + near[len(near)/2]) / 2
		dev := math.Abs(x - med)
		if ok = s.N >= minSeasonDev; ok {
			// 1.2533 turns a mean absolute deviation into a normal σ.
			scale := max(1.2533*s.Dev, 1e-9*(1+math.Abs(med)))
			lp = logTwoSided(dev / scale)
		}
		s.N++
		s.Dev += max(seasonRate, 1/float64(s.N)) * (dev - s.Dev)
	}
	if n == s.keep() {
		copy(s.Buf, s.Buf[1:])
		s.Buf[n-1] = x
	} else {
		s.Buf = append(s.Buf, x)
	}
	return lp, ok
}

func (s *seasonalState) keep() int { return s.Cycles*s.Period + seasonJitter }

// findPeriod returns the lag of the highest autocorrelation peak between
// minSeason and half the readings, if it reaches seasonACF, else 0.
func findPeriod(xs []float64) int {
	n := len(xs)
	if n < 2*minSeason+2 {
		return 0
	}
	mean := 0.0
	for _, v := range xs {
		mean += v
	}
	mean /= float64(n)
	v0 := 0.0
	for _, v := range xs {
		v0 += (v - mean) * (v - mean)
	}
	if v0 == 0 {
		return 0
	}
	acf := make([]float64, n/2+1)
	for lag := minSeason - 1; lag <= n/2; lag++ {
		c := 0.0
		for i := lag; i < n; i++ {
			c += (xs[i] - mean) * (xs[i-lag] - mean)
		}
		acf[lag] = c / v0
	}
	best, period := seasonACF, 0
	for lag := minSeason; lag < n/2; lag++ {
		if acf[lag] > acf[lag-1] && acf[lag] >= acf[lag+1] && acf[lag] >= best {
			best, period = acf[lag], lag
		}
	}
	return period
}

// MarshalJSON saves the detector.
func (d *Seasonal) MarshalJSON() ([]byte, error) { return json.Marshal(&d.s) }

// UnmarshalJSON restores a detector saved by MarshalJSON.
func (d *Seasonal) UnmarshalJSON(b []byte) error {
	var s seasonalState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	ok := s.FitAfter >= 0 && s.FitAfter <= maxSeasonFit && s.Cycles >= 1 && s.Cycles <= 100 &&
		s.Period >= 0 && s.Period <= maxSeasonFit/2 && (s.Fitted || s.Period == 0) && s.N >= 0 && s.Dev >= 0
	if s.Fitted {
		ok = ok && len(s.Buf) <= s.keep()
	} else {
		ok = ok && len(s.Buf) < max(s.FitAfter, 1)
	}
	if !ok {
		return errors.New("anomaly: corrupt seasonal state")
	}
	d.s = s
	return nil
}
