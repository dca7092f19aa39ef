package dispatch

import (
	"sync"
	"time"
)

// An offer that fails breakerThreshold times in a row is opened: left out of
// dispatch for breakerCooldown. Then it half-opens: one call (or a successful
// active probe) tries it; success closes it, failure opens it again.
const (
	breakerThreshold = 3
	breakerCooldown  = 10 * time.Second
)

type breakerState int

const (
	closed   breakerState = iota
	open                  // failing: no calls until the cooldown ends
	halfOpen              // one trial call may go
	trial                 // the trial call is in flight
)

func (s breakerState) String() string {
	return [...]string{"closed", "open", "half-open", "half-open (trial in flight)"}[s]
}

// breaker is a circuit breaker fed by real calls and by active probes.
type breaker struct {
	mu        sync.Mutex
	state     breakerState
	failures  int
	openUntil time.Time
}

// allow reports whether a call may go to the offer now; a half-open breaker
// lets exactly one through.
func (b *breaker) allow(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == open && !now.Before(b.openUntil) {
		b.state = halfOpen
	}
	switch b.state {
	case closed:
		return true
	case halfOpen:
		b.state = trial
		return true
	}
	return false
}

// healthy reports, without taking a trial, whether calls may go now.
func (b *breaker) healthy(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state == closed || b.state == halfOpen || b.state == open && !now.Before(b.openUntil)
}

func (b *breaker) succeed() {
	b.mu.Lock()
	b.state, b.failures = closed, 0
	b.mu.Unlock()
}

func (b *breaker) fail(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	if b.state == trial || b.state == halfOpen || b.failures >= breakerThreshold {
		b.state, b.openUntil = open, now.Add(breakerCooldown)
	}
}

// cancelTrial gives back a trial that ended without telling anything about
// the offer (the client left, or the request was the client's fault).
func (b *breaker) cancelTrial() {
	b.mu.Lock()
	if b.state == trial {
		b.state = halfOpen
	}
	b.mu.Unlock()
}

// probed records an active probe: failure counts like a failed call; success
// half-opens an open breaker at once, without waiting for the cooldown.
func (b *breaker) probed(ok bool, now time.Time) {
	if !ok {
		b.fail(now)
		return
	}
	b.mu.Lock()
	if b.state == open {
		b.state = halfOpen
	}
	if b.state == closed {
		b.failures = 0
	}
	b.mu.Unlock()
}

func (b *breaker) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state.String()
}
