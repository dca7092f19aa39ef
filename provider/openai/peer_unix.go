//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package openai

import (
	"net"
	"syscall"
)

// peerClosed reports whether an idle connection can no longer carry a
// request: the server closed it (end of file), or sent something unasked
// (such as a 408 before closing). It peeks without waiting and reads nothing.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read (EAGAIN) is the one good answer.
		closed = err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
		return true
	})
	return closed || err != nil
}
