package openai

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// The watchdog ends a stream silent for longer than its limits, and only
// then: not while the client takes a chunk, and not while events keep coming.
func TestWatchdog(t *testing.T) {
	const limit = 100 * time.Millisecond
	watch := func() (*watchdog, chan bool) {
		expired := make(chan bool, 1)
		w := newWatchdog(limit, limit, func(started bool) error { expired <- started; return nil })
		t.Cleanup(w.stop)
		return w, expired
	}

	start := time.Now()
	_, expired := watch()
	if started := <-expired; started || time.Since(start) < limit {
		t.Errorf("no first byte: expired after %s, started %v", time.Since(start), started)
	}

	// Events every quarter of the limit, then a client that takes three
	// limits to take a chunk, then silence.
	w, expired := watch()
	for range 8 {
		time.Sleep(limit / 4)
		w.event()
		w.emit()
		w.emitted()
	}
	w.emit()
	time.Sleep(3 * limit)
	silent := time.Now()
	w.emitted()
	select {
	case <-expired:
		t.Fatal("expired while events came or while the client took a chunk")
	default:
	}
	if started := <-expired; !started || time.Since(silent) < limit {
		t.Errorf("silence: expired after %s, started %v", time.Since(silent), started)
	}
}

// closeCounter counts its Close calls.
type closeCounter struct{ n atomic.Int32 }

func (c *closeCounter) Close() error { c.n.Add(1); return nil }

// A limit passed closes what the watchdog watches, and err says why; what it
// is handed once the limit passed is not closed, but refused with the cause.
func TestWatchdogCloses(t *testing.T) {
	silent := errors.New("silent")
	w := newWatchdog(20*time.Millisecond, 20*time.Millisecond, func(bool) error { return silent })
	defer w.stop()
	var body closeCounter
	if err := w.watch(&body); err != nil {
		t.Fatalf("watch before the limit: %v", err)
	}
	eventually(t, "the watched body was not closed", func() bool { return body.n.Load() == 1 })
	if err := w.err(); err != silent {
		t.Errorf("err: got %v", err)
	}
	var late closeCounter
	if err := w.watch(&late); err != silent {
		t.Errorf("watch after the limit: got %v", err)
	}
	time.Sleep(40 * time.Millisecond)
	if late.n.Load() != 0 || body.n.Load() != 1 {
		t.Errorf("closed %d and %d times", body.n.Load(), late.n.Load())
	}
}
