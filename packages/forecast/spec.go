package forecast

import (
	"strconv"
	"strings"

	"aigrid"
)

// A spec names a forecast: one method at one seasonal period, or the mean of
// several. It is written "theta" (at the main period), "ses@168" (at a longer
// period) or "seasonal_naive+ses@168" (a combination), in Result.Method and in
// Options.Method alike.
type spec []part

type part struct {
	name   string
	period int // 0: the main period
}

func (s spec) String() string {
	var b strings.Builder
	for i, p := range s {
		if i > 0 {
			b.WriteByte('+')
		}
		b.WriteString(p.name)
		if p.period > 0 {
			b.WriteByte('@')
			b.WriteString(strconv.Itoa(p.period))
		}
	}
	return b.String()
}

// parseSpec reads a method name as Options.Method gives it; ok is false for
// an unknown method or a period that is not one of the series' seasons.
func parseSpec(text string, seasons []int) (spec, bool) {
	var s spec
	for _, item := range strings.Split(text, "+") {
		name, at, hasPeriod := strings.Cut(item, "@")
		if _, known := methods[name]; !known {
			return nil, false
		}
		p := part{name: name}
		if hasPeriod {
			period, err := strconv.Atoi(at)
			if err != nil || period < 1 || !contains(seasons[1:], period) {
				return nil, false
			}
			p.period = period
		}
		s = append(s, p)
	}
	return s, len(s) > 0
}

// methodError says what is wrong with a method parseSpec refused: a name it
// does not know, or a period that is not one of the request's longer cycles.
func methodError(text string, seasons []int) error {
	for _, item := range strings.Split(text, "+") {
		name, at, hasPeriod := strings.Cut(item, "@")
		if _, known := methods[name]; !known {
			break
		}
		if period, err := strconv.Atoi(at); hasPeriod && (err != nil || period < 1 || !contains(seasons[1:], period)) {
			if len(seasons) < 2 {
				return aigrid.ParamErrorf("method", "Method %q works at a longer cycle (%q), but season %v gives none: list it after the main period, as in \"season\": [%d, %s].", text, item, seasons, seasons[0], at)
			}
			return aigrid.ParamErrorf("method", "Method %q works at a longer cycle (%q), which is not one of season %v's: use one of %v after @.", text, item, seasons, seasons[1:])
		}
	}
	return aigrid.ParamErrorf("method", "Method %q is not %q or one of %v (optionally @PERIOD for a longer season, joined by + to average).", text, MethodAuto, Methods())
}

func contains(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// series is one history with its preparations at each period, made once and
// shared by every method that forecasts it.
type series struct {
	y       []float64
	seasons []int // the main period first, then longer cycles
	preps   map[int]*prepared
}

func newSeries(y []float64, seasons []int) *series {
	return &series{y: y, seasons: seasons, preps: map[int]*prepared{}}
}

// at returns the series prepared at a part's period.
func (s *series) at(p part) *prepared {
	period := p.period
	if period == 0 {
		period = s.seasons[0]
	}
	if prep, ok := s.preps[period]; ok {
		return prep
	}
	prep := prepare(s.y, period)
	s.preps[period] = prep
	return prep
}

// forecast makes spec's forecast h steps ahead.
func (s *series) forecast(sp spec, h int) (fit, bool) {
	if len(sp) == 1 {
		return methods[sp[0].name](s.at(sp[0]), h)
	}
	parts := make([]func() (fit, bool), len(sp))
	for i, p := range sp {
		parts[i] = func() (fit, bool) { return methods[p.name](s.at(p), h) }
	}
	return mean(h, parts...)
}
