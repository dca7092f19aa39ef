package serveproc

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// The process's own CPU time grows while it spins.
func TestCPUTime(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("CPUTime reads /proc, which this system lacks")
	}
	before := CPUTime(os.Getpid())
	for end := time.Now().Add(60 * time.Millisecond); time.Now().Before(end); {
	}
	if after := CPUTime(os.Getpid()); after <= before {
		t.Errorf("CPU time %v after spinning, %v before", after, before)
	}
	if CPUTime(0) != 0 {
		t.Error("pid 0 must read as no CPU time")
	}
}
