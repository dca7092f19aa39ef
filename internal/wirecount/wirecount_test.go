package wirecount

import (
	"io"
	"net"
	"testing"
)

// Two writes by the server count two, whatever the client reads.
func TestCountsWrites(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := New(raw)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write([]byte("one "))
		c.Write([]byte("two"))
		c.Close()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "one two" {
		t.Fatalf("read %q, %v", got, err)
	}
	if n := ln.Writes.Load(); n != 2 {
		t.Errorf("%d writes counted, want 2", n)
	}
}
