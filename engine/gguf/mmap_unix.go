//go:build linux || darwin

package gguf

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of fd read-only; the pages are loaded on first touch,
// so opening a large model costs no reads up front.
func mapFile(fd *os.File, size int) ([]byte, func() error, error) {
	b, err := syscall.Mmap(int(fd.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
