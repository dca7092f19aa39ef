package anomaly

import (
	"encoding/json"
	"errors"
	"math"
)

// Forecast scores each value by its one-step forecast error. The forecast is
// Holt's linear method with a damped trend (level smoothing Alpha, trend
// smoothing Beta, damping 0.9); the error is scored against the running
// distribution of past errors (exponentially weighted mean and variance, with
// memory of about 1/Rate points). It catches what a window's median misses:
// a value that is ordinary for the window but not for where the series was
// heading. O(1) per point.
type Forecast struct {
	s forecastState
}

type forecastState struct {
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	Rate  float64 `json:"rate"`
	N     int     `json:"n"`
	Level float64 `json:"level"`
	Trend float64 `json:"trend"`
	Mean  float64 `json:"mean"` // of the errors
	Var   float64 `json:"var"`
}

const (
	damping     = 0.9
	minForecast = 10 // errors seen before Forecast scores
)

// NewForecast returns a forecast-error detector; parameters outside (0, 1]
// take the defaults 0.5, 0.05 and 0.01.
func NewForecast(alpha, beta, rate float64) *Forecast {
	def := func(v, d float64) float64 {
		if v > 0 && v <= 1 {
			return v
		}
		return d
	}
	return &Forecast{s: forecastState{Alpha: def(alpha, 0.5), Beta: def(beta, 0.05), Rate: def(rate, 0.01)}}
}

// Update scores x and learns from it: 1 minus the two-sided normal tail
// probability of the standardised forecast error.
func (d *Forecast) Update(x float64) float64 {
	lp, _ := d.update(x)
	return 1 - math.Exp(lp)
}

// update returns the log tail probability of x's forecast error, and whether
// enough errors were seen to give one, and learns from x.

func (d *Forecast) update(x float64) (float64, bool) {
	s := &d.s
	s.N++
	if s.N == 1 {
		s.Level = x
		return 0, false
	}
	f := s.Level + damping*s.Trend
	e := x - f
	lp := 0.0
	ok := s.N > minForecast
	if ok {
		sd := max(math.Sqrt(s.Var), 1e-9*(1+math.Abs(s.Level)))
		lp = logTwoSided(math.Abs(e-s.Mean) / sd)
	}
	// Early on the error statistics learn fast, then settle to Rate.
	r := max(s.Rate, 1/float64(s.N-1))
	diff := e - s.Mean
	s.Mean += r * diff
	s.Var = (1 - r) * (s.Var + r*diff*diff)
	level := s.Alpha*x + (1-s.Alpha)*f
	s.Trend = s.Beta*(level-s.Level) + (1-s.Beta)*damping*s.Trend
	s.Level = level
	return lp, ok
}

// MarshalJSON saves the detector.
func (d *Forecast) MarshalJSON() ([]byte, error) { return json.Marshal(&d.s) }

// UnmarshalJSON restores a detector saved by MarshalJSON.
func (d *Forecast) UnmarshalJSON(b []byte) error {
	var s forecastState
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	in := func(v float64) bool { return v > 0 && v <= 1 }
	if !in(s.Alpha) || !in(s.Beta) || !in(s.Rate) || s.N < 0 || s.Var < 0 {
		return errors.New("anomaly: corrupt forecast state")
	}
	d.s = s
	return nil
}
