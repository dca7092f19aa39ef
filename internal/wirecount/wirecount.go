// Package wirecount counts the writes a server makes to its connections, for
// tests that hold a response to a number of network writes (each write wakes
// the client).
package wirecount

import (
	"net"
	"sync/atomic"
)

// Listener counts, in Writes, the Write calls made to the connections it
// accepts.
type Listener struct {
	net.Listener
	Writes atomic.Int64
}

// New wraps l.
func New(l net.Listener) *Listener { return &Listener{Listener: l} }

func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return conn{c, &l.Writes}, nil
}

type conn struct {
	net.Conn
	writes *atomic.Int64
}

func (c conn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
