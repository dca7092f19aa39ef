package meter

import "time"

// gcra is the generic cell rate algorithm: a rate of limit units per period
// with a burst of the whole period's allowance. Its state is one time, the
// theoretical arrival time (tat), so checking costs no allocation or timer.
type gcra struct {
	tat time.Time
}

// rateCheck is the outcome of asking for cost units.
type rateCheck struct {
	ok         bool
	tat        time.Time     // the state to keep if the caller commits
	remaining  int64         // units left in the period after this one
	reset      time.Duration // until the full allowance is back
	retryAfter time.Duration // when refused: until cost units fit
}

// check asks for cost units at now without changing the state.
func (g *gcra) check(now time.Time, limit int64, period time.Duration, cost int64) rateCheck {
	tat := g.tat
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(span(cost, limit, period))
	if next.Sub(now) > period {
		free := period - tat.Sub(now)
		return rateCheck{ok: false, tat: g.tat, remaining: unitsIn(free, limit, period),
			reset: tat.Sub(now), retryAfter: next.Sub(now) - period}
	}
	return rateCheck{ok: true, tat: next, remaining: unitsIn(period-next.Sub(now), limit, period), reset: next.Sub(now)}
}

// span is how long cost units take at limit units per period. Rate limits
// need no exactness to the nanosecond, and floating point keeps any limit,
// however large, from dividing to a zero interval.
func span(cost, limit int64, period time.Duration) time.Duration {
	return time.Duration(float64(period) * float64(cost) / float64(limit))
}

// unitsIn is how many units fit in d.
func unitsIn(d time.Duration, limit int64, period time.Duration) int64 {
	return int64(float64(d) / float64(period) * float64(limit))
}

// give returns units taken by a call that used fewer than it reserved;
// negative units, used beyond what the call reserved (its prompt longer than
// estimated), are taken now, even past the limit: they were spent, and the
// calls after wait for them.
func (g *gcra) give(now time.Time, limit int64, period time.Duration, units int64) {
	if units < 0 {
		if g.tat.Before(now) {
			g.tat = now
		}
		g.tat = g.tat.Add(span(-units, limit, period))
		return
	}
	g.tat = g.tat.Add(-span(units, limit, period))
	if g.tat.Before(now) {
		g.tat = now
	}
}
