package tensor

import (
	"runtime"
	"syscall"
)

// yield lets other goroutines run, and other threads of the machine: a thread
// spinning for a worker that the OS has preempted would otherwise hold the
// core that worker needs until its time slice ends.
func yield() {
	runtime.Gosched()
	syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
}
