package openai

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"aigrid/internal/offstack"
)

// transport is an HTTP/1.1 client of one upstream origin that does each
// exchange in the caller's goroutine: it writes the request, reads the
// response and its body (chunked or not) there, and gives the connection
// back to a pool of keep-alive connections when the body was read to its
// end. net/http's Transport keeps two goroutines (a read and a write loop)
// and their buffers for every open connection; a grid holding thousands of
// streams open pays for that on each. Cancellation closes the connection
// through context.AfterFunc, so no goroutine waits on a request either.
//
// Requests to any other origin (a redirect elsewhere) go through other, a
// standard http.Transport. Providers reached through a proxy use the standard
// transport for everything: see New.
type transport struct {
	scheme, host string // of the origin, as in its URL
	addr         string // host:port to dial
	tlsConfig    *tls.Config
	dialer       net.Dialer
	// connectTimeout bounds the TLS handshake (the dialer bounds the dial);
	// headerTimeout bounds the wait for the response headers once the
	// request is written.
	connectTimeout, headerTimeout time.Duration
	maxIdle                       int
	idleTimeout                   time.Duration
	other                         *http.Transport

	// dials holds a token for each dial in flight (see maxDials).
	dials chan struct{}

	mu    sync.Mutex
	idle  []*pconn // oldest first; taken from the end
	reap  *time.Timer
	armed bool // reap is scheduled
}

// pconn is one connection to the origin.
type pconn struct {
	conn      net.Conn
	raw       net.Conn              // the TCP connection, under TLS or not
	sys       syscall.RawConn       // raw's file descriptor, to peek at and wait on
	peekFD    func(fd uintptr) bool // peeks into empty; made once, as a closure passed on allocates
	empty     bool
	br        *bufio.Reader
	read      int64 // bytes read from conn for this request, for the retry decision
	limit     int64 // when not 0, read may not pass it: the response headers are being read
	reused    bool  // served a request before
	idleSince time.Time
}

// maxHeaderBytes bounds an upstream's response headers, so that a hostile or
// broken one cannot make the grid buffer without end.
const maxHeaderBytes = 1 << 20

var errHeadersTooLarge = errors.New("openai: the upstream's response headers are larger than 1 MiB")

// readable reports whether the TCP connection has something to read now
// (bytes, an end of file or an error), without waiting and without reading.
func (pc *pconn) readable() bool {
	if pc.sys == nil {
		return false
	}
	err := pc.sys.Read(pc.peekFD)
	return !pc.empty || err != nil
}

func (pc *pconn) Read(p []byte) (int, error) {
	if pc.limit > 0 {
		if pc.read >= pc.limit {
			return 0, errHeadersTooLarge
		}
		p = p[:min(int64(len(p)), pc.limit-pc.read)]
	}
	n, err := pc.conn.Read(p)
	pc.read += int64(n)
	return n, err
}

// readBufferBytes is each connection's read buffer, held for a stream's whole
// life. Small: it holds a header line or a chunk's framing, and one ordinary
// streamed event with it; longer pieces of a body go straight to the reader's
// own buffer (bufio reads past a buffer that is smaller than the read).
const readBufferBytes = 512

// writeBufferBytes holds a typical request in one write; requests are written
// once, so the buffer goes back to a pool instead of staying with the connection.
const writeBufferBytes = 1 << 10

// requestWriter is a pooled write buffer that counts what reached the connection.
type requestWriter struct {
	bw   *bufio.Writer
	conn net.Conn
	n    int64
}

func (w *requestWriter) Write(p []byte) (int, error) {
	n, err := w.conn.Write(p)
	w.n += int64(n)
	return n, err
}

var writerPool = sync.Pool{New: func() any {
	w := &requestWriter{}
	w.bw = bufio.NewWriterSize(w, writeBufferBytes)
	return w
}}

// errHeaderTimeout reads like net/http's own, so that transportError tells
// both transports' header timeouts the same way.
var errHeaderTimeout = timeoutError("timeout awaiting response headers")

type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return true }

var errBodyClosed = errors.New("openai: read on a closed response body")

func newTransport(base *url.URL, connect, header time.Duration, other *http.Transport) *transport {
	port := base.Port()
	if port == "" {
		port = "80"
		if base.Scheme == "https" {
			port = "443"
		}
	}
	t := &transport{
		scheme: base.Scheme, host: base.Host,
		addr:           net.JoinHostPort(base.Hostname(), port),
		dialer:         net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second},
		connectTimeout: connect, headerTimeout: header,
		// Streams hold a connection each: keep enough idle ones for a busy offer.
		maxIdle:     256,
		idleTimeout: 90 * time.Second,
		other:       other,
		dials:       make(chan struct{}, maxDials),
	}
	if base.Scheme == "https" {
		// System roots; HTTP/1.1 only, since this client speaks nothing else.
		t.tlsConfig = &tls.Config{ServerName: base.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	t.reap = time.AfterFunc(time.Hour, t.reapIdle)
	t.reap.Stop()
	return t
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != t.scheme || req.URL.Host != t.host {
		return t.other.RoundTrip(req)
	}
	ctx := req.Context()
	for retried := false; ; retried = true {
		pc, err := t.get(ctx)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		resp, wrote, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if retried || !retryable(req, pc, wrote, err) {
			return nil, err
		}
		if req, err = again(req); err != nil {
			return nil, err
		}
	}
}

// again returns req to be sent once more: a copy with its body anew, as the
// caller's request is not changed.
func again(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil {
		return req, nil
	}
	cp := *req
	var err error
	if cp.Body, err = req.GetBody(); err != nil {
		return nil, err
	}
	return &cp, nil
}

// retryable says whether a request that failed on pc may be sent again on a
// fresh connection. Only a reused connection qualifies, and only when nothing
// of the response came back and not for want of time: the server closed a
// keep-alive connection just as the request went out. Then the request is
// sent again if the server cannot have seen it (nothing was written), or if
// sending it twice is harmless (an idempotent method, as GET /models of the
// probes). A completion that was written is not sent again here: the server
// may be generating it, and the dispatcher, which knows whether the client
// got anything, decides.
func retryable(req *http.Request, pc *pconn, wrote int64, err error) bool {
	var ne net.Error
	if !pc.reused || pc.read > 0 || errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false // the body cannot be sent again
	}
	if wrote == 0 {
		return true
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// exchange writes req on pc and reads the response headers. It returns how
// many bytes of the request reached the connection.
func (t *transport) exchange(ctx context.Context, pc *pconn, req *http.Request) (*http.Response, int64, error) {
	// Cancelling the request closes the connection, which ends a blocked
	// read or write; stop tells whether that happened.
	stop := context.AfterFunc(ctx, func() { pc.conn.Close() })
	fail := func(err error) error {
		stop()
		pc.conn.Close()
		return err
	}
	pc.read = 0
	// The request goes out and the headers come back within the header
	// timeout: an upstream that stops reading the request is as silent as
	// one that does not answer.
	deadline := time.Now().Add(t.headerTimeout)
	pc.conn.SetDeadline(deadline)
	w := writerPool.Get().(*requestWriter)
	w.conn, w.n = pc.conn, 0
	var err error
	offstack.Run(func() {
		if err = req.Write(w.bw); err == nil {
			err = w.bw.Flush()
		}
	})
	wrote := w.n
	w.bw.Reset(w)
	w.conn = nil
	writerPool.Put(w)
	// (net/http reports a failed write of the body as a failed read of it,
	// which does not say why: the clock does.)
	if err != nil && !time.Now().Before(deadline) {
		err = errHeaderTimeout
	}
	writeErr := err
	if err != nil && (wrote == 0 || ctx.Err() != nil) {
		return nil, wrote, fail(err)
	}

	// A server may answer before it has read the whole request (refusing a
	// body too large) and then stop reading: its answer counts, not the
	// write it broke.
	pc.limit = maxHeaderBytes
	if pc.conn == pc.raw {
		// The wait for the answer, as long as the upstream takes to start,
		// is spent here, in the caller; parsing the headers goes deep (and
		// so does a TLS read: then it all runs off the caller's stack). An
		// error is met again by the next read.
		pc.br.Peek(1)
	}
	var resp *http.Response
	offstack.Run(func() { resp, err = readResponse(pc.br, req) })
	pc.limit = 0
	if err != nil {
		var ne net.Error
		if writeErr != nil {
			err = writeErr
		} else if errors.As(err, &ne) && ne.Timeout() {
			err = errHeaderTimeout
		}
		return nil, wrote, fail(err)
	}
	pc.conn.SetDeadline(time.Time{})
	b := &body{rc: resp.Body, t: t, pc: pc, stop: stop, keepAlive: writeErr == nil && !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		b.finish(true)
		return resp, wrote, nil
	}
	resp.Body = b
	return resp, wrote, nil
}

// readResponse reads the final response, skipping informational ones
// (103 Early Hints and the like), as net/http does.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for range 5 {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
	return nil, errors.New("openai: too many informational responses")
}

// body is a response body that gives its connection back to the pool when it
// was read to the end, and closes it otherwise.
type body struct {
	rc        io.ReadCloser
	t         *transport
	pc        *pconn
	stop      func() bool
	keepAlive bool
	eof       bool
	done      atomic.Bool
	reading   atomic.Bool // a Read is under way: Close must not read too
}

func (b *body) Read(p []byte) (int, error) {
	b.reading.Store(true)
	defer b.reading.Store(false)
	if b.done.Load() && !b.eof {
		return 0, errBodyClosed
	}
	n, err := b.rc.Read(p)
	if err == io.EOF && !b.eof {
		// The trailer is read too: the connection is at the next response.
		b.eof = true
		if b.done.CompareAndSwap(false, true) {
			b.finish(true)
		}
	}
	return n, err
}

// plain reports whether the body comes over plain TCP, whose socket tells
// whether there is something to read without reading it. (TLS keeps records
// of its own.)
func (b *body) plain() bool { return b.pc.conn == b.pc.raw && b.pc.sys != nil }

// idleWait blocks until a plain body's connection has something to read, when
// nothing is buffered. It reports whether it waited.
func (b *body) idleWait() bool {
	if b.done.Load() || b.pc.br.Buffered() > 0 {
		return false
	}
	return waitReadable(b.pc.sys)
}

// ready reports whether a read of a plain body would find bytes at hand, in
// the connection's buffer or on its socket.
func (b *body) ready() bool {
	return !b.done.Load() && (b.pc.br.Buffered() > 0 || b.pc.readable())
}

// A stream stopped at its [DONE] event has only the chunked body's last line
// left, here already or on its way. Close reads that much, briefly, to keep
// the connection; a body with more to come costs its connection, since
// reading the rest of a stream could take minutes.
const (
	drainBytes = 4 << 10
	drainWait  = 5 * time.Millisecond
)

// Close ends the body.
func (b *body) Close() error {
	if !b.done.CompareAndSwap(false, true) {
		return nil
	}
	complete := false
	if b.keepAlive && !b.reading.Load() && b.pc.conn.SetReadDeadline(time.Now().Add(drainWait)) == nil {
		_, err := io.CopyN(io.Discard, b.rc, drainBytes)
		complete = err == io.EOF && b.pc.conn.SetReadDeadline(time.Time{}) == nil
	}
	b.finish(complete)
	return nil
}

func (b *body) finish(complete bool) {
	// A request whose cancellation already fired has its connection closed.
	if b.stop() && complete && b.keepAlive {
		b.t.put(b.pc)
		return
	}
	b.pc.conn.Close()
}

// maxDials bounds the dials (and TLS handshakes) in flight to one upstream.
// A burst of new streams would otherwise dial once for each at the same
// moment, each on an offstack worker whose stack the dial grows to 8 KiB and
// which ends afterwards, leaving that stack as a hole in the runtime's stack
// spans beside the streams' live stacks: bench/gateway's 1,000 streams
// started 666 such dials. The bound also spares the upstream a flood of
// simultaneous handshakes. On loopback a dial takes tens of microseconds, so
// waiting for a turn costs little; across a 50 ms round trip, a cold burst of
// 640 new connections takes about half a second to open.
const maxDials = 64

// get returns a live idle connection, or dials a new one once fewer than
// maxDials are in flight, taking instead a connection that came back idle
// while it waited for its turn.
func (t *transport) get(ctx context.Context) (*pconn, error) {
	if pc := t.takeIdle(); pc != nil {
		return pc, nil
	}
	select {
	case t.dials <- struct{}{}:
	default:
		// Waiting for a turn counts against the connect timeout, as the
		// dial itself would.
		wait := time.NewTimer(t.connectTimeout)
		select {
		case t.dials <- struct{}{}:
			wait.Stop()
		case <-wait.C:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: dialWaitTimeout{}}
		case <-ctx.Done():
			wait.Stop()
			return nil, context.Cause(ctx)
		}
	}
	defer func() { <-t.dials }()
	if pc := t.takeIdle(); pc != nil {
		return pc, nil
	}
	var pc *pconn
	var err error
	offstack.Run(func() { pc, err = t.dial(ctx) })
	return pc, err
}

// dialWaitTimeout is the error of a call that waited the whole connect
// timeout for a turn to dial: to the caller, a dial that timed out.
type dialWaitTimeout struct{}

func (dialWaitTimeout) Error() string {
	return "no turn to dial the upstream within the connect timeout (64 dials in flight)"
}
func (dialWaitTimeout) Timeout() bool   { return true }
func (dialWaitTimeout) Temporary() bool { return true }

// takeIdle returns a live idle connection, or nil when there is none.
func (t *transport) takeIdle() *pconn {
	for {
		t.mu.Lock()
		n := len(t.idle)
		if n == 0 {
			t.mu.Unlock()
			return nil
		}
		pc := t.idle[n-1]
		t.idle[n-1] = nil
		t.idle = t.idle[:n-1]
		t.mu.Unlock()
		// A connection the server closed while it was idle (its own
		// keep-alive timeout) shows it as end of file or as unasked-for
		// bytes (such as a 408 before closing).
		if time.Since(pc.idleSince) < t.idleTimeout && !pc.readable() {
			return pc
		}
		pc.conn.Close()
	}
}

func (t *transport) dial(ctx context.Context) (*pconn, error) {
	raw, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{conn: raw, raw: raw}
	if sc, ok := raw.(syscall.Conn); ok {
		pc.sys, _ = sc.SyscallConn()
		pc.peekFD = func(fd uintptr) bool {
			pc.empty = peek(fd)
			return true
		}
	}
	if t.tlsConfig != nil {
		tc := tls.Client(raw, t.tlsConfig)
		raw.SetDeadline(time.Now().Add(t.connectTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		raw.SetDeadline(time.Time{})
		pc.conn = tc
	}
	pc.br = bufio.NewReaderSize(pc, readBufferBytes)
	return pc, nil
}

// put keeps pc for the next request, if there is room.
func (t *transport) put(pc *pconn) {
	pc.reused, pc.idleSince = true, time.Now()
	t.mu.Lock()
	// Bytes the server sent past the response make the connection unusable.
	if len(t.idle) >= t.maxIdle || pc.br.Buffered() > 0 {
		t.mu.Unlock()
		pc.conn.Close()
		return
	}
	t.idle = append(t.idle, pc)
	if !t.armed {
		t.armed = true
		t.reap.Reset(t.idleTimeout)
	}
	t.mu.Unlock()
}

// reapIdle closes the connections idle for longer than the idle timeout,
// and schedules itself for the next one to expire.
func (t *transport) reapIdle() {
	now := time.Now()
	t.mu.Lock()
	i := 0
	for i < len(t.idle) && now.Sub(t.idle[i].idleSince) >= t.idleTimeout {
		i++
	}
	expired := append([]*pconn(nil), t.idle[:i]...)
	n := copy(t.idle, t.idle[i:])
	clear(t.idle[n:])
	t.idle = t.idle[:n]
	if t.armed = len(t.idle) > 0; t.armed {
		t.reap.Reset(t.idleTimeout - now.Sub(t.idle[0].idleSince))
	}
	t.mu.Unlock()
	for _, pc := range expired {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes the connections no request is using.
func (t *transport) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, pc := range idle {
		pc.conn.Close()
	}
	t.other.CloseIdleConnections()
}
