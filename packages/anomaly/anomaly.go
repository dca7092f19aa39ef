// Package anomaly detects anomalies in streams of sensor readings. Each series
// has a Detector, an ensemble of five streaming detectors (a robust z-score
// on a rolling window, Wang et al.'s relative entropy test on histograms, the
// error of a one-step forecast, the deviation from the same phase of the
// series' daily or other cycle, and the excess over the highest and lowest
// readings of a long memory). Each detector's surprise is calibrated against
// its own history on the series, the most surprised one speaks for the
// ensemble, and a point that is no more surprising than one shortly before
// it is damped, so that one event raises one flag. Every point gets a score
// in [0, 1] and a flag. A Detector's state marshals to JSON, so that a series
// survives a restart. Package serves detectors to tenants over HTTP and
// Listener over MQTT; docs/packages/anomaly.md describes them and the NAB
// benchmark.
package anomaly

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// Config sets a Detector's parameters. Zero fields take DefaultConfig's values.
type Config struct {
	// Window is the robust z-score's rolling window, in points.
	Window int `json:"window"`
	// EntropyWindow and Bins are the relative entropy detector's window and
	// number of quantisation bins.
	EntropyWindow int `json:"entropy_window"`
	Bins          int `json:"bins"`
	// Alpha and Beta are the forecast's level and trend smoothing.
	Alpha float64 `json:"alpha"`
	Beta  float64 `json:"beta"`
	// History is how many past surprises each detector is calibrated against.
	History int `json:"history"`
	// Warmup is how many points the detectors learn from before scoring
	// (their scores are 0); the relative entropy's bin range is fixed then.
	Warmup int `json:"warmup"`
	// Suppress is how many points back a point must out-surprise to keep its
	// full score.
	Suppress int `json:"suppress"`
	// Threshold is the score at and above which a point is flagged.
	Threshold float64 `json:"threshold"`
}

// DefaultConfig returns the parameters measured on the NAB corpus (see
// docs/packages/anomaly.md).
func DefaultConfig() Config {
	return Config{
		Window: 100, EntropyWindow: 52, Bins: 5, Alpha: 0.3, Beta: 0.05,
		History: 1000, Warmup: 150, Suppress: 100, Threshold: 0.4,
	}
}

// Limits of a Config, so that a tenant cannot ask for a state of gigabytes.
const (
	maxWindow  = 10_000
	maxHistory = 100_000
	maxWarmup  = 10_000_000
	// MaxValue bounds the magnitude of a value: beyond it the detectors'
	// squares would overflow.
	MaxValue = 1e100
)

// withDefaults fills zero fields from DefaultConfig and checks the rest.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	for _, f := range []struct{ v, def *int }{
		{&c.Window, &d.Window}, {&c.EntropyWindow, &d.EntropyWindow}, {&c.Bins, &d.Bins},
		{&c.History, &d.History}, {&c.Warmup, &d.Warmup}, {&c.Suppress, &d.Suppress},
	} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	for _, f := range []struct{ v, def *float64 }{{&c.Alpha, &d.Alpha}, {&c.Beta, &d.Beta}, {&c.Threshold, &d.Threshold}} {
		if *f.v == 0 {
			*f.v = *f.def
		}
	}
	switch {
	case c.Window < minRobust || c.Window > maxWindow:
		return c, fmt.Errorf("window must be between %d and %d", minRobust, maxWindow)
	case c.EntropyWindow < 2 || c.EntropyWindow > maxWindow:
		return c, fmt.Errorf("entropy_window must be between 2 and %d", maxWindow)
	case c.Bins < 2 || c.Bins > 100:
		return c, errors.New("bins must be between 2 and 100")
	case !(c.Alpha > 0 && c.Alpha <= 1) || !(c.Beta > 0 && c.Beta <= 1):
		return c, errors.New("alpha and beta must be in (0, 1]")
	case c.History < minCalibrate || c.History > maxHistory:
		return c, fmt.Errorf("history must be between %d and %d", minCalibrate, maxHistory)
	case c.Warmup < 0 || c.Warmup > maxWarmup:
		return c, fmt.Errorf("warmup must be between 0 and %d", maxWarmup)
	case c.Suppress < 0 || c.Suppress > maxWindow:
		return c, fmt.Errorf("suppress must be between 0 and %d", maxWindow)
	case !(c.Threshold > 0 && c.Threshold <= 1):
		return c, errors.New("threshold must be in (0, 1]")
	}
	return c, nil
}

// Result is one point's verdict.
type Result struct {
	Score float64 `json:"score"` // in [0, 1]; higher is more anomalous
	Flag  bool    `json:"flag"`  // Score >= Config.Threshold
}

// Detector is the ensemble for one series. It is not safe for concurrent use.
type Detector struct {
	s detectorState
}

// The ensemble's calibrated members, in the order of detectorState.Cal;
// the extremes detector is the fifth member.
const (
	robustMember = iota
	entropyMember
	forecastMember
	seasonalMember
	calibrated
	members = calibrated + 1
)

type detectorState struct {
	Config   Config                  `json:"config"`
	N        int                     `json:"n"` // points seen
	Last     float64                 `json:"last"`
	Flags    int                     `json:"flags"`
	Robust   *RobustZ                `json:"robust"`
	Entropy  *RelativeEntropy        `json:"entropy"`
	Forecast *Forecast               `json:"forecast"`
	Seasonal *Seasonal               `json:"seasonal"`
	Extremes *Extremes               `json:"extremes"`
	Cal      [calibrated]*calibrator `json:"cal"`
	Recent   []float64               `json:"recent"` // undamped scores of the last Suppress points
	Head     int                     `json:"head"`
}

// New returns a Detector for a new series.
func New(c Config) (*Detector, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	d := &Detector{s: detectorState{
		Config:   c,
		Robust:   NewRobustZ(c.Window),
		Entropy:  NewRelativeEntropy(c.EntropyWindow, c.Bins, max(c.Warmup, c.EntropyWindow)),
		Forecast: NewForecast(c.Alpha, c.Beta, 0),
		Seasonal: NewSeasonal(c.Warmup, seasonCycles),
		Extremes: NewExtremes(extremesBlock, extremesBlocks),
		Recent:   make([]float64, 0, c.Suppress),
	}}
	for i := range d.s.Cal {
		d.s.Cal[i] = newCalibrator(c.History)
	}
	return d, nil
}

// Config returns the detector's parameters.
func (d *Detector) Config() Config { return d.s.Config }

// Points returns how many points the detector has seen.
func (d *Detector) Points() int { return d.s.N }

// Period returns the cycle the detector found in the warm-up, in readings,
// or 0 (none yet, or none).
func (d *Detector) Period() int { return d.s.Seasonal.Period() }

// Flags returns how many points the detector has flagged.
func (d *Detector) Flags() int { return d.s.Flags }

// LastScore returns the score of the last point, 0 before any.
func (d *Detector) LastScore() float64 { return d.s.Last }

// scoreHalf is the surprise, in decades of calibrated p-value, that scores 0.5.
const scoreHalf = 5.0

// seasonCycles is how many past cycles the seasonal detector compares with.
const seasonCycles = 3

// The extremes detector's memory: 100 blocks of 100 readings (a month of
// 5-minute readings).
const extremesBlock, extremesBlocks = 100, 100

// extremesGain is how much more a robust σ beyond the range of the memory
// counts than a σ away from the median: a new extreme is rarer than a far
// reading (measured on NAB: 1 scores 67.2, 2 scores 68.2, 5 raises false
// alarms in steady noise just after the warm-up, when the range is short).
const extremesGain = 2.0

// suppressDamp multiplies the score of a point that a recent one out-surprised.
const suppressDamp = 0.5

// Update scores a value and learns from it. Values must be finite and at most
// MaxValue in magnitude.
func (d *Detector) Update(x float64) (Result, error) {
	if math.IsNaN(x) || math.Abs(x) > MaxValue {
		return Result{}, fmt.Errorf("value %v is not a finite number of magnitude at most %g", x, MaxValue)
	}
	s := &d.s
	s.N++
	// Each member's surprise, calibrated on its own history: a robust z-score
	// on a square wave is surprised all day, and should not be believed.
	// A member that cannot score yet stays out of its calibrator, whose
	// history would otherwise start with a run of zeros that makes its first
	// real surprise look enormous.
	var lps [calibrated]float64
	var ok [calibrated]bool
	lps[robustMember], ok[robustMember] = s.Robust.update(x)
	lps[entropyMember], ok[entropyMember] = s.Entropy.update(x)
	lps[forecastMember], ok[forecastMember] = s.Forecast.update(x)
	lps[seasonalMember], ok[seasonalMember] = s.Seasonal.update(x)
	lp := 0.0
	for i, l := range lps {
		if ok[i] {
			lp = min(lp, s.Cal[i].update(-l/math.Ln10))
		}
	}
	// The extremes detector measures in the robust z-score's scale (of the
	// window that now holds x) and speaks uncalibrated: its surprise is zero
	// at most points, and against such a history any new record, however
	// slight, would look enormous, while its nominal probability already says
	// how far beyond a month's range the reading is.
	if ok[robustMember] {
		_, scale := s.Robust.medianScale()
		if e, ok := s.Extremes.update(x, scale/extremesGain); ok {
			lp = min(lp, e)
		}
	} else {
		s.Extremes.update(x, 1)
	}
	// The most surprised member speaks for all, with Bonferroni's correction.
	lp = min(lp+math.Log(members), 0)
	l := max(-lp/math.Ln10, 0) // not -0
	score := l / (l + scoreHalf)
	// An event keeps surprising the detectors for a while: only a point that
	// out-surprises the recent ones keeps its full score, so that one event
	// raises one flag. Warm-up scores count as recent, so that the first
	// scored points are not flagged merely for being first.
	if s.Config.Suppress > 0 {
		top := 0.0
		for _, v := range s.Recent {
			top = max(top, v)
		}
		if len(s.Recent) < s.Config.Suppress {
			s.Recent = append(s.Recent, score)
		} else {
			s.Recent[s.Head] = score
			s.Head = (s.Head + 1) % s.Config.Suppress
		}
		if score <= top {
			score *= suppressDamp
		}
	}
	if s.N <= s.Config.Warmup {
		score = 0
	}
	s.Last = score
	r := Result{Score: score, Flag: score >= s.Config.Threshold}
	if r.Flag {
		s.Flags++
	}
	return r, nil
}

// MarshalBinary saves the detector's state (JSON).
func (d *Detector) MarshalBinary() ([]byte, error) { return json.Marshal(&d.s) }

// MarshalJSON saves the detector's state.
func (d *Detector) MarshalJSON() ([]byte, error) { return d.MarshalBinary() }

// UnmarshalJSON restores a detector saved by MarshalJSON or MarshalBinary.
func (d *Detector) UnmarshalJSON(b []byte) error { return d.UnmarshalBinary(b) }

// UnmarshalBinary restores a detector saved by MarshalBinary.
func (d *Detector) UnmarshalBinary(b []byte) error {
	var s detectorState
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("anomaly: corrupt state: %w", err)
	}
	c, err := s.Config.withDefaults()
	ok := err == nil && c == s.Config && s.N >= 0 && s.Flags >= 0 && s.Flags <= s.N &&
		s.Robust != nil && s.Entropy != nil && s.Forecast != nil && s.Seasonal != nil && s.Extremes != nil &&
		len(s.Recent) <= c.Suppress && s.Head >= 0 && (s.Head == 0 || s.Head < len(s.Recent)) &&
		(len(s.Recent) == c.Suppress || s.Head == 0)
	for _, cal := range s.Cal {
		ok = ok && cal != nil
	}
	if !ok {
		return errors.New("anomaly: corrupt state")
	}
	d.s = s
	return nil
}
