//go:build !(linux || darwin)

package model

// allocKV allocates n zeroed float32 on the Go heap where there is no mmap.
func allocKV(n int) []float32 { return make([]float32, n) }

// freeKV leaves the memory to the collector.
func freeKV([]float32) {}
