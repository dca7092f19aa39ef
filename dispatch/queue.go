package dispatch

import (
	"container/list"
	"context"
	"sync"
)

// Token weights of the virtual token counter: an output token costs the
// upstream about twice an input token (Sheng et al., OSDI 2024, use 1 and 2).
const (
	inputWeight  = 1
	outputWeight = 2
)

// slots are an offer's capacity and the calls waiting for it. When the offer
// is full, calls wait, and a freed slot goes to the emergency calls first, in
// order of arrival, then to the waiting tenant that has received the least
// service: the virtual token counter of "Fairness in Serving Large Language
// Models" (Sheng et al., OSDI 2024), each tenant's counter growing by the
// tokens it is served divided by its class's weight.
type slots struct {
	mu        sync.Mutex
	capacity  int // 0: no limit
	inFlight  int
	emergency list.List             // of *waiter
	waiting   map[string]*list.List // tenant → its waiters, oldest first
	counters  map[string]float64    // tenant → virtual service received
	active    map[string]int        // tenant → its calls in flight
	queued    int
}

type waiter struct {
	tenant  string
	ready   chan struct{}
	granted bool
	elem    *list.Element
	list    *list.List
}

func newSlots(capacity int) *slots {
	return &slots{capacity: capacity, waiting: map[string]*list.List{}, counters: map[string]float64{}, active: map[string]int{}}
}

// tryAcquire takes a slot for the tenant if one is free and nobody waits for it.
func (s *slots) tryAcquire(tenant string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued == 0 && (s.capacity == 0 || s.inFlight < s.capacity) {
		s.inFlight++
		s.active[tenant]++
		return true
	}
	return false
}

// enqueue puts a call in line; it reports false when maxQueue calls wait already.
func (s *slots) enqueue(tenant string, emergency bool, maxQueue int) (*waiter, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued >= maxQueue {
		return nil, false
	}
	w := &waiter{tenant: tenant, ready: make(chan struct{})}
	if emergency {
		w.list = &s.emergency
	} else {
		l := s.waiting[tenant]
		if l == nil && s.active[tenant] == 0 {
			// A tenant that was idle joins at the least counter of those
			// waiting: service it did not ask for while away is not owed to it.
			if low, ok := s.lowestWaiting(); ok && s.counters[tenant] < low {
				s.counters[tenant] = low
			}
		}
		if l == nil {
			l = list.New()
			s.waiting[tenant] = l
		}
		w.list = l
	}
	w.elem = w.list.PushBack(w)
	s.queued++
	s.grant()
	return w, true
}

// wait blocks until the waiter holds a slot or ctx ends.
func (s *slots) wait(ctx context.Context, w *waiter) error {
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		// The slot came as the wait ended: hand it on.
		s.free(w.tenant)
	} else {
		s.remove(w)
	}
	return context.Cause(ctx)
}

// release frees the tenant's slot and gives it to the next in line.
func (s *slots) release(tenant string) {
	s.mu.Lock()
	s.free(tenant)
	s.mu.Unlock()
}

// free frees a slot. Called with mu held.
func (s *slots) free(tenant string) {
	s.inFlight--
	if s.active[tenant]--; s.active[tenant] <= 0 {
		delete(s.active, tenant)
	}
	s.grant()
}

// charge adds served tokens to a tenant's counter.
func (s *slots) charge(tenant string, weight float64, tokens float64) {
	s.mu.Lock()
	s.counters[tenant] += tokens / weight
	s.mu.Unlock()
}

// grant hands free slots to waiters. Called with mu held.
func (s *slots) grant() {
	for s.queued > 0 && (s.capacity == 0 || s.inFlight < s.capacity) {
		var w *waiter
		if front := s.emergency.Front(); front != nil {
			w = front.Value.(*waiter)
		} else {
			tenant := ""
			low := 0.0
			for t := range s.waiting {
				if c := s.counters[t]; tenant == "" || c < low || c == low && t < tenant {
					tenant, low = t, c
				}
			}
			w = s.waiting[tenant].Front().Value.(*waiter)
		}
		s.remove(w)
		w.granted = true
		s.inFlight++
		s.active[w.tenant]++
		close(w.ready)
	}
}

func (s *slots) remove(w *waiter) {
	if w.elem == nil {
		return
	}
	w.list.Remove(w.elem)
	w.elem = nil
	s.queued--
	if w.list != &s.emergency && w.list.Len() == 0 {
		delete(s.waiting, w.tenant)
	}
}

func (s *slots) lowestWaiting() (float64, bool) {
	low, found := 0.0, false
	for t := range s.waiting {
		if c := s.counters[t]; !found || c < low {
			low, found = c, true
		}
	}
	return low, found
}

// load returns the calls in flight and waiting, and the capacity.
func (s *slots) load() (inFlight, queued, capacity int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight, s.queued, s.capacity
}
