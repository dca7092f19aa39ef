package engine

import (
	"context"
	"fmt"
	"slices"
	"time"

	"aigrid"
	"aigrid/engine/model"
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

// take admits t, giving a generation the kept cache that shares the longest
// start with its prompt, and drops kept caches to make room. s.mu is held.
func (s *Scheduler) take(t *ticket) {
	t.taken = true
	s.reserved += t.need
	if q := t.seq; q != nil {
		s.running++
		s.reuse(q)
		s.admitted = append(s.admitted, q)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	s.evict()
}

// release gives back a ticket's tokens, keeps the cache of a finished
// generation for the prompts that will start the same way, and admits
// whoever now fits.
func (s *Scheduler) release(t *ticket, keep *model.Seq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved -= t.need
	if t.seq != nil {
		s.running--
	}
	if keep != nil {
		if keep.Len() >= minReuse && !s.closed {
			s.kept = append(s.kept, keep)
			s.keptTokens += keep.Len()
		} else {
			keep.Free()
		}
	}
	s.evict()
	s.admitWaiting()
}

// minReuse is the shortest shared start of a prompt worth a kept cache.
const minReuse = 16

// reuse hands q the kept cache sharing the longest start with its prompt,
// cut to that start; the last prompt token is always computed, for its
// logits. s.mu is held.
func (s *Scheduler) reuse(q *seqState) {
	best, n := -1, 0
	for i, seq := range s.kept {
		c := commonPrefix(seq.Tokens(), q.prompt[:len(q.prompt)-1])
		if c > n {
			best, n = i, c
		}
	}
	if n < minReuse {
		return
	}
	seq := s.kept[best]
	s.kept = slices.Delete(s.kept, best, best+1)
	s.keptTokens -= seq.Len()
	seq.Truncate(n)
	q.seq, q.fed, q.cached = seq, n, n
}

// evict frees kept caches, the least recently kept first, until the budget
// holds them beside the admitted requests' reservations. s.mu is held.
func (s *Scheduler) evict() {
	n := 0
	for n < len(s.kept) && s.reserved+s.keptTokens > s.budget {
		s.keptTokens -= s.kept[n].Len()
		s.kept[n].Free()
		n++
	}
	s.kept = slices.Delete(s.kept, 0, n)
}

func commonPrefix(a, b []int32) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
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
