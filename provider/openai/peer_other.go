//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package openai

import "net"

// peerClosed cannot peek at a socket on this system: a connection the server
// closed while idle is found when the request on it fails, and retried then
// when that is safe (see retryable).
func peerClosed(net.Conn) bool { return false }
