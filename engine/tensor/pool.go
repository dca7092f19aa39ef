package tensor

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool runs products on a fixed set of goroutines: the caller's plus threads-1
// workers started once. A Pool runs one product at a time; concurrent callers
// wait their turn.
//
// A decoding step is some 170 products of a few tens to hundreds of
// microseconds each, so the hand-off must cost far less than a goroutine wake-up
// through the scheduler (tens of microseconds on a busy machine): the workers
// spin on a generation counter for a while after each product and only then
// park on a condition variable, and the caller spins until they are done.
type Pool struct {
	mu      sync.Mutex
	threads int

	// The product being run, read by the workers between a bump of gen and
	// their decrement of pending.
	job     job
	next    atomic.Int64
	acts    acts
	parts   []Product
	scratch []scratch // per thread

	gen     atomic.Uint32 // bumped to start each product
	pending atomic.Int32  // workers not yet done with the current one
	closed  atomic.Bool

	sleepMu  sync.Mutex
	wake     *sync.Cond
	sleepers atomic.Int32
}

// spinFor is how long an idle worker polls before parking: longer than the
// gaps between the products of a step (norms, attention, sampling).
const spinFor = time.Millisecond

// NewPool starts a pool that computes on threads goroutines (at least one).
func NewPool(threads int) *Pool {
	p := &Pool{threads: max(1, threads)}
	p.scratch = make([]scratch, p.threads)
	p.wake = sync.NewCond(&p.sleepMu)
	for th := 1; th < p.threads; th++ {
		go p.work(th)
	}
	return p
}

// Threads is the number of goroutines a product runs on.
func (p *Pool) Threads() int { return p.threads }

// Close stops the workers; the pool must not be used afterwards.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed.Store(true)
	p.start()
}

// Run calls fn over [0, n) in chunks of grain, taken in order by the pool's
// threads; th is the calling thread's index (0 for the caller), for per-thread
// scratch memory.
func (p *Pool) Run(n, grain int, fn func(th, lo, hi int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.job = job{fn: fn}
	p.parallel(n, max(1, grain))
	p.job = job{}
}

func (p *Pool) work(th int) {
	seen := uint32(0)
	for {
		seen = p.await(seen)
		if p.closed.Load() {
			return
		}
		p.runChunks(th)
		p.pending.Add(-1)
	}
}

// await returns the generation after seen, spinning for spinFor before
// parking.
func (p *Pool) await(seen uint32) uint32 {
	var t0 time.Time
	for i := 0; ; i++ {
		if g := p.gen.Load(); g != seen {
			return g
		}
		if i%256 != 255 {
			continue
		}
		yield()
		if t0.IsZero() {
			t0 = time.Now()
		} else if time.Since(t0) > spinFor {
			break
		}
	}
	// Park. The caller bumps gen before it reads sleepers and this reads gen
	// after raising sleepers, so one of the two sees the other.
	p.sleepMu.Lock()
	p.sleepers.Add(1)
	for p.gen.Load() == seen {
		p.wake.Wait()
	}
	p.sleepers.Add(-1)
	p.sleepMu.Unlock()
	return p.gen.Load()
}

// start releases the workers on the job set in p.job.
func (p *Pool) start() {
	p.pending.Store(int32(p.threads - 1))
	p.gen.Add(1)
	if p.sleepers.Load() > 0 {
		p.sleepMu.Lock()
		p.wake.Broadcast()
		p.sleepMu.Unlock()
	}
}

// parallel runs p.job over rows in chunks of grain rows, taken in order from a
// shared counter so that a thread slowed by a neighbour on the machine takes
// fewer chunks instead of holding everyone up.
func (p *Pool) parallel(rows, grain int) {
	p.job.rows, p.job.grain = rows, grain
	p.next.Store(0)
	if p.threads == 1 || rows <= grain {
		p.runChunks(0)
		return
	}
	p.start()
	p.runChunks(0)
	for i := 0; p.pending.Load() != 0; i++ {
		if i%256 == 255 {
			yield()
		}
	}
}

func (p *Pool) runChunks(th int) {
	j := &p.job
	for {
		hi := int(p.next.Add(int64(j.grain)))
		lo := hi - j.grain
		if lo >= j.rows {
			return
		}
		switch {
		case j.fn != nil:
			j.fn(th, lo, min(hi, j.rows))
		case j.parts != nil:
			j.partRange(&p.scratch[th], lo, min(hi, j.rows))
		default:
			j.rowRange(&p.scratch[th], lo, min(hi, j.rows))
		}
	}
}
