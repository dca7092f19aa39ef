//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package openai

import "syscall"

// peek looks at a socket's receive queue without waiting and without
// reading: empty when there is nothing (EAGAIN); otherwise there are bytes,
// an end of file or an error to read.
func peek(fd uintptr) (empty bool) {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
}

// waitReadable blocks until c has something to read (bytes, an end of file
// or an error), without reading it.
func waitReadable(c syscall.RawConn) bool {
	// The poller wakes on bytes that arrive after a read found none: peek
	// first, so that bytes already here are not waited for.
	c.Read(func(fd uintptr) bool { return !peek(fd) })
	return true
}
