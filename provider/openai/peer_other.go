//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package openai

import "syscall"

// peerClosed cannot peek at a socket on this system: a connection the server
// closed while idle is found when the request on it fails, and retried then
// when that is safe (see retryable).
func peerClosed(syscall.RawConn) bool { return false }

// waitReadable cannot wait without reading on this system: a stream keeps its
// read buffer while it waits.
func waitReadable(syscall.RawConn) bool { return false }
