//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package openai

import "syscall"

// peek cannot look at a socket on this system and reports it empty: a
// connection the server closed while idle is found when the request on it
// fails, and retried then when that is safe (see retryable); a streamed chunk
// that came with the next in one burst is flushed on its own.
func peek(uintptr) (empty bool) { return true }

// waitReadable cannot wait without reading on this system: a stream keeps its
// read buffer while it waits.
func waitReadable(syscall.RawConn) bool { return false }
