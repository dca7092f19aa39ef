// The race detector does not see the collector's cleanup goroutine as
// synchronised with the test reading what it wrote.

//go:build !race

package model

import (
	"runtime"
	"testing"
	"time"
)

// A sequence dropped without Free gives its mapping back once collected.
func TestSeqCleanup(t *testing.T) {
	m := tinyModel(t, tiny)
	s := m.NewSeq()
	s.reserve(40)
	mem := s.mem
	s = nil
	for range 100 {
		runtime.GC()
		time.Sleep(time.Millisecond)
		if mem.b == nil {
			return
		}
	}
	t.Fatal("the mapping of a dropped sequence was not released")
}
