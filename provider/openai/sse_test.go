package openai

import (
	"io"
	"strings"
	"testing"
)

func events(t *testing.T, stream string) ([]string, error) {
	t.Helper()
	r := newSSEReader(strings.NewReader(stream), nil)
	var out []string
	for {
		data, err := r.next()
		if err != nil {
			if err == io.EOF {
				return out, nil
			}
			return out, err
		}
		out = append(out, string(data))
	}
}

func TestSSEReader(t *testing.T) {
	long := strings.Repeat("x", 100_000)
	cases := []struct {
		name, in string
		want     []string
	}{
		{"plain", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{`{"a":1}`, "[DONE]"}},
		{"no space", "data:{\"a\":1}\n\n", []string{`{"a":1}`}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		{"comments and fields", ": keep-alive\n\nevent: message\nid: 7\ndata: a\nretry: 10\n\n", []string{"a"}},
		{"multi-line data", "data: a\ndata: b\n\n", []string{"a\nb"}},
		{"blank lines between", "\n\n\ndata: a\n\n\n\ndata: b\n\n", []string{"a", "b"}},
		{"last event unterminated", "data: a\n\ndata: b", []string{"a", "b"}},
		{"long line", "data: " + long + "\n\n", []string{long}},
		{"only comments", ": ping\n: ping\n", nil},
	}
	for _, c := range cases {
		got, err := events(t, c.in)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if strings.Join(got, "|") != strings.Join(c.want, "|") || len(got) != len(c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSSETooLarge(t *testing.T) {
	huge := "data: " + strings.Repeat("y", maxEventBytes+10) + "\n\n"
	if _, err := events(t, huge); err != errEventTooLarge {
		t.Errorf("got %v, want errEventTooLarge", err)
	}
}

func FuzzSSE(f *testing.F) {
	f.Add("data: {\"a\":1}\n\ndata: [DONE]\n\n")
	f.Add(": c\r\nevent: x\r\ndata: a\r\ndata:b\r\n\r\n")
	f.Add("data")
	f.Add("\r\r\n\n:")
	f.Fuzz(func(t *testing.T, in string) {
		r := newSSEReader(strings.NewReader(in), nil)
		for i := 0; i <= len(in)+1; i++ {
			data, err := r.next()
			if err != nil {
				return
			}
			if len(data) > len(in) {
				t.Fatalf("event of %d bytes from %d bytes of input", len(data), len(in))
			}
		}
		t.Fatal("the reader did not end")
	})
}

func TestSSEPending(t *testing.T) {
	for in, want := range map[string]bool{
		"data: a\n\ndata: b\n\n":         true,
		"data: a\n\ndata: b":             false,
		"data: a\n\n: keepalive\n\n":     false,
		"data: a\r\n\r\ndata: b\r\n\r\n": true,
		"data: a\n\n":                    false,
	} {
		r := newSSEReader(strings.NewReader(in), nil)
		if _, err := r.next(); err != nil {
			t.Fatal(err)
		}
		if got := r.pending(); got != want {
			t.Errorf("%q: pending %v, want %v", in, got, want)
		}
	}
}

// netFuncs is a netSource made of functions; a nil one reports false.
type netFuncs struct{ wait, isReady func() bool }

func (n netFuncs) idleWait() bool { return n.wait != nil && n.wait() }
func (n netFuncs) ready() bool    { return n.isReady != nil && n.isReady() }

// pieces is a source that gives its pieces one read at a time, as a socket
// gives what has arrived.
type pieces []string

func (p *pieces) Read(b []byte) (int, error) {
	if len(*p) == 0 {
		return 0, io.EOF
	}
	n := copy(b, (*p)[0])
	if (*p)[0] = (*p)[0][n:]; (*p)[0] == "" {
		*p = (*p)[1:]
	}
	return n, nil
}

// An event that the buffer holds only a part of is pending when the rest is
// at the source already; a source that would wait, or bytes that are only a
// keep-alive, do not count.
func TestSSEPendingReady(t *testing.T) {
	for _, c := range []struct {
		src   pieces
		ready bool
		want  bool
	}{
		{pieces{"data: a\n\ndata: b", "\n\n"}, true, true},
		{pieces{"data: a\n\ndata: b", "\n\n"}, false, false},
		{pieces{"data: a\n\n", "data: b\n\n"}, true, true},
		{pieces{"data: a\n\n", ": keep-alive\n\n", "data: b\n\n"}, true, false},
		{pieces{"data: a\n\ndata: b", "c"}, true, false},
		{pieces{"data: a\n\n"}, true, false},
	} {
		name := strings.Join(c.src, "|")
		src := c.src
		r := newSSEReader(&src, netFuncs{isReady: func() bool { return c.ready && len(src) > 0 }})
		if data, err := r.next(); err != nil || string(data) != "a" {
			t.Fatalf("%q: %q, %v", name, data, err)
		}
		if got := r.pending(); got != c.want {
			t.Errorf("%q (ready %v): pending %v, want %v", name, c.ready, got, c.want)
		}
		if data, err := r.next(); c.want && (err != nil || string(data) != "b") {
			t.Errorf("%q: then %q, %v", name, data, err)
		}
	}
}

// TestSSEReaderWait checks that a stream waiting for its next event holds no
// read buffer, and waits only when nothing is buffered.
func TestSSEReaderWait(t *testing.T) {
	var r *sseReader
	waits := 0
	r = newSSEReader(strings.NewReader("data: a\n\ndata: b\n\n"), netFuncs{wait: func() bool {
		waits++
		if r.r != nil {
			t.Error("a read buffer is held while waiting")
		}
		return true
	}})
	defer r.close()
	var got []string
	for {
		data, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(data))
	}
	// Once before the first read; the second event came with the first.
	if strings.Join(got, ",") != "a,b" || waits != 2 {
		t.Errorf("events %q after %d waits, want a,b after 2", got, waits)
	}
}
