package openai

import (
	"testing"
	"time"
)

// The watchdog ends a stream silent for longer than its limits, and only
// then: not while the client takes a chunk, and not while events keep coming.
func TestWatchdog(t *testing.T) {
	const limit = 100 * time.Millisecond
	watch := func() (*watchdog, chan bool) {
		expired := make(chan bool, 1)
		w := newWatchdog(limit, limit, func(started bool) { expired <- started })
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
