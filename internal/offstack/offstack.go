// Package offstack runs calls that need a deep stack on worker goroutines, so
// that the goroutine that asks keeps a small one.
//
// A goroutine's stack doubles when a call needs more than it has, and the
// runtime halves it again only when, at a collection, less than a quarter of
// it is in use. A handler that goes deep once (encoding/json on a request, a
// TLS handshake) and then waits a long time (a stream) keeps the doubled
// stack for the whole wait: with thousands of open streams, that is much of a
// server's memory. Run moves such a call to a worker whose stack has grown
// already and serves every caller in turn.
package offstack

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// call is one call handed to a worker.
type call struct {
	f        func()
	panicked any
	done     chan struct{}
}

var (
	// calls is unbuffered: a send succeeds only to a worker waiting for work.
	calls = make(chan *call)
	// idle counts the workers waiting; past maxIdle a worker ends, so that a
	// burst of calls leaves no crowd of goroutines behind.
	idle    atomic.Int32
	maxIdle = int32(2 * runtime.GOMAXPROCS(0))
	pool    = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}
)

// Run runs f on a worker goroutine and waits for it to return; a panic in f
// is raised again in the caller. A call that blocks (on the network) holds
// only its own worker: when none is waiting, Run starts another. f must not
// call runtime.Goexit.
func Run(f func()) {
	c := pool.Get().(*call)
	c.f = f
	select {
	case calls <- c:
	default:
		go work(c)
	}
	wait(c)
}

// wait waits for c's call to return, gives c back to the pool, and raises
// the call's panic again.
func wait(c *call) {
	<-c.done
	panicked := c.panicked
	c.f, c.panicked = nil, nil
	pool.Put(c)
	if panicked != nil {
		panic(panicked)
	}
}

// computeCalls is served by computeWorkers workers of its own, started by
// the first Compute call, which never end.
var (
	computeCalls   = make(chan *call)
	computeWorkers = 2 * runtime.GOMAXPROCS(0)
	startCompute   sync.Once
)

// Compute is Run for a call that waits on nothing but the CPU (decoding,
// encoding). It waits for one of a few workers kept for such calls, as it
// would for the CPU anyway, rather than start a worker when none is idle: a
// burst of a thousand requests started one for most of their decodes, which
// ended afterwards, each leaving the stack it had grown as a free slot in
// the runtime's stack spans, megabytes of them in all.
func Compute(f func()) {
	startCompute.Do(func() {
		for range computeWorkers {
			go func() {
				for c := range computeCalls {
					c.run()
					c.done <- struct{}{}
				}
			}()
		}
	})
	c := pool.Get().(*call)
	c.f = f
	computeCalls <- c
	wait(c)
}

func work(c *call) {
	for {
		c.run()
		c.done <- struct{}{} // c belongs to its caller again
		if idle.Add(1) > maxIdle {
			idle.Add(-1)
			return
		}
		c = <-calls
		idle.Add(-1)
	}
}

func (c *call) run() {
	defer func() { c.panicked = recover() }()
	c.f()
}
