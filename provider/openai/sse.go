package openai

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// maxEventBytes bounds one server-sent event, so that a hostile or broken
// upstream cannot make the grid buffer without end.
const maxEventBytes = 8 << 20

var errEventTooLarge = errors.New("an event of the stream is larger than 8 MiB")

// sseReader reads the data of server-sent events (the text/event-stream
// format): lines "data: ..." accumulate until a blank line ends the event;
// comments (":") and other fields (event, id, retry) are skipped.
type sseReader struct {
	src  io.Reader
	r    *bufio.Reader
	data []byte
	// net, when not nil, tells what src has to read without reading it.
	net  netSource
	pool *sync.Pool // of r
}

// netSource is the network under a stream's source.
type netSource interface {
	// idleWait blocks until the source has something to read; it reports
	// false when it cannot tell, at once.
	idleWait() bool
	// ready reports whether the source has something to read now.
	ready() bool
}

// A stream holds a read buffer only while it reads. One whose source can
// wait for the network without reading (plain TCP: see netSource) gives it
// back in between, and takes a large one, which reads a burst of events in
// one system call; one that holds its buffer while it waits (TLS) takes a
// small one, as a busy grid holds thousands of streams. Longer events are
// gathered on the side.
const (
	burstBufferBytes = 8 << 10
	sseBufferBytes   = 2 << 10
)

var (
	burstBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, burstBufferBytes) }}
	sseBuffers   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, sseBufferBytes) }}
)

// newSSEReader reads events from r; net, when not nil, is the network under
// r, which can wait without reading.
func newSSEReader(r io.Reader, net netSource) *sseReader {
	s := &sseReader{src: r, net: net, pool: &sseBuffers}
	if net != nil {
		s.pool = &burstBuffers
	}
	s.take()
	return s
}

func (s *sseReader) take() {
	s.r = s.pool.Get().(*bufio.Reader)
	s.r.Reset(s.src)
}

// close gives the read buffer back; the reader is not used after.
func (s *sseReader) close() {
	s.r.Reset(nil)
	s.pool.Put(s.r)
	s.r = nil
}

// next returns the data of the next event. The slice is valid until the next
// call. At the end of the stream it returns io.EOF, or io.ErrUnexpectedEOF if
// the stream ended inside an event.
func (s *sseReader) next() ([]byte, error) {
	if s.net != nil && s.r.Buffered() == 0 {
		// Nothing buffered: the next event is still on the network. Wait
		// for it without a buffer. (A read error the buffer held is met
		// again from the source.)
		s.close()
		s.net.idleWait()
		s.take()
	}
	s.data = s.data[:0]
	inEvent := false
	for {
		line, err := s.readLine()
		if err != nil {
			if err == io.EOF && inEvent {
				// A final event without its blank line still counts.
				return s.data, nil
			}
			return nil, err
		}
		if len(line) == 0 {
			if inEvent {
				return s.data, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte{':'})
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		if string(field) != "data" {
			continue
		}
		if inEvent {
			s.data = append(s.data, '\n')
		}
		if len(s.data)+len(value) > maxEventBytes {
			return nil, errEventTooLarge
		}
		s.data = append(s.data, value...)
		inEvent = true
	}
}

// pending reports whether the next event can be read without waiting on
// the network: it is buffered whole, or the source has bytes at hand (ready)
// and, read into the buffer, they complete it.
func (s *sseReader) pending() bool {
	if s.buffered() {
		return true
	}
	if s.net == nil || !s.net.ready() {
		return false
	}
	// One read, which does not wait; a buffer full of a part of an event
	// fails without reading. An error is met again by the next read.
	if _, err := s.r.Peek(s.r.Buffered() + 1); err != nil {
		return false
	}
	return s.buffered()
}

// buffered reports whether a whole next event with data is in the buffer.
func (s *sseReader) buffered() bool {
	buf, _ := s.r.Peek(s.r.Buffered())
	end := bytes.Index(buf, []byte("\n\n"))
	// Only an earlier CRLF blank line can come first: look before end, not
	// through the rest of the buffer.
	before := buf
	if end >= 0 {
		before = buf[:end]
	}
	if crlf := bytes.Index(before, []byte("\r\n\r\n")); crlf >= 0 {
		end = crlf
	}
	// An event without data (a keep-alive comment) does not count: reading
	// past it may wait on the network.
	return end >= 0 && bytes.Contains(buf[:end], []byte("data:"))
}

// readLine returns one line without its end (LF, CRLF or CR).
func (s *sseReader) readLine() ([]byte, error) {
	line, err := s.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// A long line: gather it in a buffer of its own.
		long := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull {
			if len(long) > maxEventBytes {
				return nil, errEventTooLarge
			}
			line, err = s.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil && (err != io.EOF || len(line) == 0) {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}
