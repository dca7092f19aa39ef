package openai

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// watchdog ends a stream whose upstream goes silent: the first event must
// come within firstByte of the start, each later one within idle of the
// client taking the one before (a client slow to take a chunk is not the
// upstream's silence). The stream marks its progress in atomics and the
// timer, set once, reads them when it fires and sets itself again for what
// is left: a chunk costs two atomic stores and a clock read, not two timer
// updates.
//
// When a limit passes, the watchdog keeps the error that says why and closes
// what it was handed to watch (the response body), which ends a read waiting
// on it. A stream so needs no cancel context of its own, which would be held
// for its whole life with a map of children in the context above it.
type watchdog struct {
	start           time.Time
	firstByte, idle time.Duration
	expire          func(started bool) error // says why the stream ends; called once, from the timer
	timer           *time.Timer
	started         atomic.Bool  // an event came
	emitting        atomic.Bool  // the client is taking a chunk
	last            atomic.Int64 // when the client last took a chunk, from start
	stopped         atomic.Bool

	mu     sync.Mutex
	cause  error     // what expire said, once a limit passed
	target io.Closer // closed when a limit passes
}

func newWatchdog(firstByte, idle time.Duration, expire func(started bool) error) *watchdog {
	w := &watchdog{start: time.Now(), firstByte: firstByte, idle: idle, expire: expire}
	w.timer = time.AfterFunc(firstByte, w.fire)
	return w
}

func (w *watchdog) fire() {
	if w.stopped.Load() {
		return
	}
	if w.emitting.Load() {
		w.timer.Reset(w.idle)
		return
	}
	limit, started := w.firstByte, w.started.Load()
	if started {
		limit = w.idle
	}
	if quiet := time.Since(w.start) - time.Duration(w.last.Load()); quiet < limit {
		w.timer.Reset(limit - quiet)
		return
	}
	cause := w.expire(started)
	w.mu.Lock()
	w.cause = cause
	target := w.target
	w.mu.Unlock()
	if target != nil {
		target.Close()
	}
}

// watch hands the watchdog what to close when a limit passes. If one passed
// already, it returns why, and c is left to the caller.
func (w *watchdog) watch(c io.Closer) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target = c
	return w.cause
}

// err says why the watchdog ended the stream, or nil if it did not.
func (w *watchdog) err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cause
}

// event marks an event read from the upstream.
func (w *watchdog) event() { w.started.Store(true) }

// emit marks the client taking a chunk, and emitted the end of it.
func (w *watchdog) emit() { w.emitting.Store(true) }

func (w *watchdog) emitted() {
	w.last.Store(int64(time.Since(w.start)))
	w.emitting.Store(false)
}

func (w *watchdog) stop() {
	w.stopped.Store(true)
	w.timer.Stop()
}
