//go:build !linux

package tensor

import "runtime"

// yield lets other goroutines run.
func yield() { runtime.Gosched() }
