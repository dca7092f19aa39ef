//go:build linux || darwin

package model

import (
	"syscall"
	"unsafe"
)

// allocKV maps n zeroed float32 outside the Go heap. Pages become resident
// only when written, so spare capacity costs address space, not memory.
func allocKV(n int) []float32 {
	b, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		// As the Go heap does when the system refuses memory.
		panic("model: cannot map the key/value cache: " + err.Error())
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// freeKV unmaps what allocKV mapped.
func freeKV(f []float32) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(f))), 4*len(f))
	if err := syscall.Munmap(b); err != nil {
		panic("model: cannot unmap the key/value cache: " + err.Error())
	}
}
