package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"aigrid"
)

// ticket is one request's claim on the key/value cache budget: need tokens,
// held from admission until the request ends.
type ticket struct {
	need  int
	seq   *seqState     // a generation, handed to the loop once admitted; nil for an embedding
	ready chan struct{} // closed when a waiting ticket is admitted or refused
	err   error         // why a waiting ticket was refused
	taken bool
}

// admit reserves t.need tokens of cache, waiting in FIFO order behind earlier
// requests for at most Options.MaxWait. A request that finds no room in time
// fails with EUnavailable and a Retry-After.
func (s *Scheduler) admit(ctx context.Context, t *ticket) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	if len(s.waiting) == 0 && s.fits(t) {
		s.take(t)
		s.mu.Unlock()
		return nil
	}
	t.ready = make(chan struct{})
	s.waiting = append(s.waiting, t)
	s.mu.Unlock()

	timer := time.NewTimer(s.opt.MaxWait)
	defer timer.Stop()
	var err error
	select {
	case <-t.ready:
		return t.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		e := aigrid.Errorf(aigrid.EUnavailable, "The model %s is busy: its memory for conversations (%d tokens) stayed full for %s. Try again shortly.",
			s.name, s.budget, s.opt.MaxWait)
		e.RetryAfter = s.retryAfter()
		err = e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.taken || t.err != nil {
		// Admitted (or refused) while the wait ended: that answer stands, and a
		// generation whose caller is gone is dropped by the loop.
		return t.err
	}
	s.waiting = slices.DeleteFunc(s.waiting, func(w *ticket) bool { return w == t })
	// The head of the queue may have been what held the others back.
	s.admitWaiting()
	return err
}

// fits reports whether t can be admitted now. s.mu is held.
func (s *Scheduler) fits(t *ticket) bool {
	if s.reserved+t.need > s.budget {
		return false
	}
	return t.seq == nil || s.running < s.opt.MaxBatch
}

// take admits t. s.mu is held.
func (s *Scheduler) take(t *ticket) {
	t.taken = true
	s.reserved += t.need
	if t.seq != nil {
		s.running++
		s.admitted = append(s.admitted, t.seq)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// release gives back a ticket's tokens and admits whoever now fits.
func (s *Scheduler) release(t *ticket) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= t.need
	if t.seq != nil {
		s.running--
	}
	s.admitWaiting()
}

// admitWaiting admits waiting tickets in order while the first one fits: a
// large request is not overtaken forever by small ones. s.mu is held.
func (s *Scheduler) admitWaiting() {
	n := 0
	for _, t := range s.waiting {
		if !s.fits(t) {
			break
		}
		s.take(t)
		close(t.ready)
		n++
	}
	s.waiting = slices.Delete(s.waiting, 0, n)
}

// retryAfter estimates when room may come back: when the running generation
// nearest its end is done, at the recent pace of steps.
func (s *Scheduler) retryAfter() time.Duration {
	left := int(s.minLeft.Load())
	step := time.Duration(s.stepNanos.Load())
	d := time.Duration(left) * step
	return min(max(d, time.Second), time.Minute)
}

var errClosed = aigrid.Errorf(aigrid.EUnavailable, "The model is being unloaded; try again.")

// contextError is the 400 of a request that cannot fit in the context.
func (s *Scheduler) contextError(prompt, maxTokens int) error {
	if maxTokens > 0 {
		return &aigrid.Error{Code: aigrid.EInvalid, Param: "messages", Message: fmt.Sprintf(
			"This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the messages, %d in the completion). Please reduce the length of the messages or completion.",
			s.ctxLen, prompt+maxTokens, prompt, maxTokens)}
	}
	return &aigrid.Error{Code: aigrid.EInvalid, Param: "messages", Message: fmt.Sprintf(
		"This model's maximum context length is %d tokens. However, your messages resulted in %d tokens. Please reduce the length of the messages.",
		s.ctxLen, prompt)}
}
