package dispatch

import (
	"sync/atomic"
	"time"
)

// An offer that fails breakerThreshold times in a row is left out of
// dispatch for breakerCooldown; then calls go to it again, and one more
// failure keeps it out for another cooldown.
const (
	breakerThreshold = 3
	breakerCooldown  = 10 * time.Second
)

// breaker is a passive circuit breaker fed by the outcome of real calls.
type breaker struct {
	failures  atomic.Int32
	openUntil atomic.Int64 // unix nanoseconds; 0 when closed
}

func (b *breaker) allow(now time.Time) bool {
	return now.UnixNano() >= b.openUntil.Load()
}

func (b *breaker) succeed() {
	b.failures.Store(0)
	b.openUntil.Store(0)
}

func (b *breaker) fail(now time.Time) {
	if b.failures.Add(1) >= breakerThreshold {
		b.openUntil.Store(now.Add(breakerCooldown).UnixNano())
	}
}
