package tensor

import (
	"sync"
	"sync/atomic"
)

// Pool runs products on a fixed set of goroutines: the caller's plus threads-1
// workers started once, so a product costs a channel send per worker rather
// than goroutine creation. A Pool runs one product at a time; concurrent callers
// wait their turn.
type Pool struct {
	mu      sync.Mutex
	threads int
	start   chan struct{}
	wg      sync.WaitGroup

	// The product being run, read by the workers between start and wg.Done.
	job  job
	next atomic.Int64
	acts acts
}

// NewPool starts a pool that computes on threads goroutines (at least one).
func NewPool(threads int) *Pool {
	p := &Pool{threads: max(1, threads)}
	p.start = make(chan struct{}, p.threads)
	for range p.threads - 1 {
		go p.work()
	}
	return p
}

// Threads is the number of goroutines a product runs on.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers; the pool must not be used afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.start)
}

func (p *Pool) work() {
	for range p.start {
		p.runChunks()
		p.wg.Done()
	}
}

// parallel runs p.job over rows in chunks of grain rows, taken in order from a
// shared counter so that a thread slowed by a neighbour on the machine takes
// fewer chunks instead of holding everyone up.
func (p *Pool) parallel(rows, grain int) {
	p.job.rows, p.job.grain = rows, grain
	p.next.Store(0)
	helpers := max(0, min(p.threads, (rows+grain-1)/grain)-1)
	p.wg.Add(helpers)
	for range helpers {
		p.start <- struct{}{}
	}
	p.runChunks()
	p.wg.Wait()
}

func (p *Pool) runChunks() {
	j := &p.job
	for {
		hi := int(p.next.Add(int64(j.grain)))
		lo := hi - j.grain
		if lo >= j.rows {
			return
		}
		j.rowRange(lo, min(hi, j.rows))
	}
}
