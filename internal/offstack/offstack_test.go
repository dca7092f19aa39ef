package offstack

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestRunPanic(t *testing.T) {
	defer func() {
		if v := recover(); v != "deep" {
			t.Errorf("recovered %v, want the panic of the function run", v)
		}
	}()
	Run(func() { panic("deep") })
	t.Error("Run returned after a panic")
}

// A call that blocks does not hold up the others, and results come back to
// the caller that asked.
func TestRunConcurrent(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{})
	go Run(func() { close(blocked); <-release })
	<-blocked
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			var got int
			Run(func() { got = i * i })
			if got != i*i {
				t.Errorf("call %d got %d", i, got)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("calls waited for a blocked one")
	}
	close(release)
}

// The workers that a burst started end once it is over, but for a few.
func TestRunIdle(t *testing.T) {
	release := make(chan struct{})
	var started, wg sync.WaitGroup
	for range 50 {
		started.Add(1)
		wg.Go(func() { Run(func() { started.Done(); <-release }) })
	}
	started.Wait()
	close(release)
	wg.Wait()
	// A worker counts itself idle before it sees there are too many.
	for deadline := time.Now().Add(5 * time.Second); idle.Load() > maxIdle; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want at most %d", idle.Load(), maxIdle)
		}
	}
}

func BenchmarkRun(b *testing.B) {
	for b.Loop() {
		Run(func() {})
	}
}

// Compute runs no more calls at once than its workers; the rest wait for
// one, and all complete; a panic comes back to the caller.
func TestComputeBounded(t *testing.T) {
	release := make(chan struct{})
	var running, most atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			Compute(func() {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-release
				running.Add(-1)
			})
		})
	}
	for deadline := time.Now().Add(5 * time.Second); running.Load() < int32(computeWorkers); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls running, want %d", running.Load(), computeWorkers)
		}
	}
	close(release)
	wg.Wait()
	if got := most.Load(); got != int32(computeWorkers) {
		t.Errorf("%d calls ran at once, want %d", got, computeWorkers)
	}
	defer func() {
		if v := recover(); v != "deep" {
			t.Errorf("recovered %v, want the panic of the function run", v)
		}
	}()
	Compute(func() { panic("deep") })
}
