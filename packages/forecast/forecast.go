// Package forecast is aigrid's forecasting package: point forecasts and
// prediction intervals for univariate series, with the method chosen per
// series among the M4 competition's statistical benchmarks and their seasonal
// extensions by how well each would have forecast the series' own recent
// past. Handler serves it over HTTP.
package forecast

import (
	"math"
	"sort"

	"aigrid"
)

// Limits on what one series may ask for.
const (
	MaxHorizon = 10000 // steps ahead, and at most HorizonPerPoint × the series length
	// HorizonPerPoint bounds the horizon by the data: extrapolating further than
	// ten times the history says nothing the history supports.
	HorizonPerPoint = 10
	// MaxSeason is the longest cycle: a week of 5-minute steps.
	MaxSeason = 2016
	// MaxSeasons bounds the cycles of one series: the main one and longer ones.
	MaxSeasons = 3
	// minPoints is the shortest history: two differences give the naive
	// forecast's error a spread at all.
	minPoints = 3
	// maxFitPoints is how much of a long history the methods see: the most
	// recent four of the longest cycles (three for the seasonality test, one
	// for the validation folds) keep fitting time bounded.
	maxFitPoints = 4 * MaxSeason
	maxAbsValue  = 1e15 // beyond this, squared errors lose all precision
)

// DefaultLevels are the interval coverages when a request names none.
var DefaultLevels = []float64{80, 95}

// Options say what to forecast.
type Options struct {
	Horizon int // steps ahead, at least 1
	// Seasons are the periods of the series' cycles in steps: the main one
	// first (24 for hourly data, 7 for daily, 12 for monthly, 1 for none), then
	// any longer ones (168 for the week in hourly data). Empty means [1].
	Seasons []int
	// Levels are the prediction intervals' coverages in percent, each in (0, 100).
	Levels []float64
	// Method is "auto" (or empty) to choose per series, or a method as
	// Result.Method names it: "theta", "ses@168", "seasonal_naive+ses@168".
	Method string
}

// DefaultSeasons are the cycles tried for a main period m: hourly data
// (m = 24) usually has a weekly cycle as well as a daily one, and half-hourly
// data (m = 48) likewise.
func DefaultSeasons(m int) []int {
	switch m {
	case 24, 48:
		return []int{m, 7 * m}
	}
	return []int{max(m, 1)}
}

// Result is the forecast of one series.
type Result struct {
	// Method is the method that made the forecast, as Options.Method names it.
	Method string
	// Seasonal reports whether the seasonality test found the main cycle.
	Seasonal  bool
	Point     []float64  // Horizon point forecasts
	Intervals []Interval // one per requested level, in the order asked
}

// Interval is a prediction interval at each step ahead.
type Interval struct {
	Level        float64
	Lower, Upper []float64
}

// Methods lists the single methods Options.Method accepts (beside "auto").
func Methods() []string {
	var names []string
	for name := range methods {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Validate checks options against a series of n points; n = 0 checks
// only what does not depend on the series.
func (o Options) Validate(n int) error {
	switch {
	case o.Horizon < 1:
		return aigrid.ParamErrorf("horizon", "Horizon must be at least 1, got %d.", o.Horizon)
	case o.Horizon > MaxHorizon:
		return aigrid.ParamErrorf("horizon", "Horizon must be at most %d, got %d.", MaxHorizon, o.Horizon)
	case n > 0 && o.Horizon > HorizonPerPoint*n:
		return aigrid.ParamErrorf("horizon", "Horizon %d is more than %d times the %d points of history.", o.Horizon, HorizonPerPoint, n)
	case len(o.Seasons) > MaxSeasons:
		return aigrid.ParamErrorf("season", "At most %d seasons, got %d.", MaxSeasons, len(o.Seasons))
	}
	for i, m := range o.Seasons {
		if m < 1 || m > MaxSeason {
			return aigrid.ParamErrorf("season", "Season must be between 1 and %d, got %d.", MaxSeason, m)
		}
		if i > 0 && m <= o.Seasons[i-1] {
			return aigrid.ParamErrorf("season", "Seasons must be listed main period first, then longer cycles, in increasing order; got %v.", o.Seasons)
		}
	}
	if m := o.mainSeason(); n > 0 && m > 1 && n < 2*m {
		return aigrid.ParamErrorf("season", "A season of %d needs at least %d points (two cycles), got %d; send a longer series or season 1.", m, 2*m, n)
	}
	for _, l := range o.Levels {
		if !(l > 0 && l < 100) {
			return aigrid.ParamErrorf("level", "Each level must be a percentage strictly between 0 and 100, got %v.", l)
		}
	}
	if o.Method != "" && o.Method != MethodAuto {
		if _, ok := parseSpec(o.Method, o.seasons()); !ok {
			return methodError(o.Method, o.seasons())
		}
	}
	return nil
}

func (o Options) seasons() []int {
	if len(o.Seasons) == 0 {
		return []int{1}
	}
	return o.Seasons
}

func (o Options) mainSeason() int { return o.seasons()[0] }

// checkSeries reports what makes a series unfit to forecast with opts.
func checkSeries(values []float64, opts Options) error {
	if len(values) < minPoints {
		return aigrid.ParamErrorf("series", "A series needs at least %d points, got %d.", minPoints, len(values))
	}
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxAbsValue {
			return aigrid.ParamErrorf("series", "Value %d (%v) is not a finite number of magnitude at most 1e15.", i, v)
		}
	}
	return opts.Validate(len(values))
}

// Forecast forecasts values (equally spaced, oldest first) opts.Horizon steps ahead.
func Forecast(values []float64, opts Options) (Result, error) {
	if err := checkSeries(values, opts); err != nil {
		return Result{}, err
	}
	y := values[max(0, len(values)-maxFitPoints):]
	seasons := opts.seasons()
	var sp spec
	if opts.Method == "" || opts.Method == MethodAuto {
		sp = choose(y, seasons, opts.Horizon)
	} else {
		sp, _ = parseSpec(opts.Method, seasons)
	}
	s := newSeries(y, seasons)
	f, ok := s.forecast(sp, opts.Horizon)
	if !ok {
		// A method that does not apply (a cycle the test rejects, too short
		// a history) falls back to the naive forecast, and says so.
		sp = spec{{MethodNaive, 0}}
		f, _ = s.forecast(sp, opts.Horizon)
	}
	res := Result{Method: sp.String(), Seasonal: s.at(part{}).seasonal, Point: f.point}
	levels := opts.Levels
	if levels == nil {
		levels = DefaultLevels
	}
	for _, level := range levels {
		z := math.Sqrt2 * math.Erfinv(level/100)
		iv := Interval{Level: level, Lower: make([]float64, len(f.point)), Upper: make([]float64, len(f.point))}
		for k, v := range f.point {
			iv.Lower[k], iv.Upper[k] = v-z*f.sd[k], v+z*f.sd[k]
		}
		res.Intervals = append(res.Intervals, iv)
	}
	return res, nil
}
