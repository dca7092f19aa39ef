package openai

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testServer is an httptest server that counts the connections made to it
// and those it saw closed.
type testServer struct {
	*httptest.Server
	opened, closed atomic.Int64
}

func startServer(t *testing.T, tls bool, h http.HandlerFunc) *testServer {
	t.Helper()
	s := &testServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			s.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			s.closed.Add(1)
		}
	}
	if tls {
		// Offered, so that the test sees the client ask for HTTP/1.1 only.
		s.EnableHTTP2 = true
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func testTransport(t *testing.T, base string, roots *httptest.Server) *transport {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := newTransport(u, time.Second, 5*time.Second, &http.Transport{})
	if roots != nil {
		tr.tlsConfig.RootCAs = roots.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func do(t *testing.T, tr *transport, method, url, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return string(b)
}

func idleCount(tr *transport) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle)
}

// eventually waits for cond, which the other side of a socket makes true.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

// echo answers with the request body, chunked unless asked for a length.
func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if r.URL.Query().Has("length") {
		w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		w.Write(b)
		return
	}
	for _, part := range strings.SplitAfter(string(b), " ") {
		io.WriteString(w, part)
		w.(http.Flusher).Flush()
	}
}

func TestTransportKeepAlive(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tls), func(t *testing.T) {
			var protos []string
			var mu sync.Mutex
			srv := startServer(t, tls, func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				protos = append(protos, r.Proto)
				mu.Unlock()
				if r.Method == http.MethodGet {
					w.Header().Set("X-Long", strings.Repeat("a", 3000))
					io.WriteString(w, `{"data":[]}`)
					return
				}
				echo(w, r)
			})
			var roots *httptest.Server
			if tls {
				roots = srv.Server
			}
			tr := testTransport(t, srv.URL, roots)
			for i, u := range []string{"/chunked", "/length?length", "/chunked", "/length?length"} {
				// Longer than every buffer on the way, and chunked in small pieces.
				want := fmt.Sprintf("request %d of a few words ", i) + strings.Repeat("word ", 500)
				if got := do(t, tr, http.MethodPost, srv.URL+u, want); got != want {
					t.Errorf("%s: body %q, want %q", u, got, want)
				}
			}
			resp, err := (&http.Client{Transport: tr}).Get(srv.URL + "/models")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != `{"data":[]}` || len(resp.Header.Get("X-Long")) != 3000 {
				t.Errorf("GET body %q, header of %d bytes", b, len(resp.Header.Get("X-Long")))
			}
			if n := srv.opened.Load(); n != 1 {
				t.Errorf("%d connections for sequential requests, want 1", n)
			}
			for _, p := range protos {
				if p != "HTTP/1.1" {
					t.Errorf("spoke %s", p)
				}
			}
		})
	}
}

func TestTransportPartialBodyNotReused(t *testing.T) {
	srv := startServer(t, false, echo)
	tr := testTransport(t, srv.URL, nil)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(strings.Repeat("word ", 1000)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(resp.Body, make([]byte, 10))
	resp.Body.Close()
	if idleCount(tr) != 0 {
		t.Error("a connection with unread body was pooled")
	}
	eventually(t, "the half-read connection stayed open", func() bool { return srv.closed.Load() == 1 })
	if got := do(t, tr, http.MethodPost, srv.URL, "again"); got != "again" {
		t.Errorf("body %q", got)
	}
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestTransportCancelMidStream(t *testing.T) {
	ended := make(chan struct{})
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		defer close(ended)
		for {
			io.WriteString(w, "data: tick\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	tr := testTransport(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	cancel()
	// The blocked read ends: the connection is closed under it.
	if _, err := io.Copy(io.Discard, br); err == nil {
		t.Error("the body read to its end after cancellation")
	}
	resp.Body.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the server kept streaming after the cancellation")
	}
	eventually(t, "the connection stayed open", func() bool { return srv.closed.Load() == 1 })
	if idleCount(tr) != 0 {
		t.Error("a cancelled connection was pooled")
	}
}

func TestTransportIdleTimeout(t *testing.T) {
	srv := startServer(t, false, echo)
	tr := testTransport(t, srv.URL, nil)
	tr.idleTimeout = 50 * time.Millisecond
	do(t, tr, http.MethodPost, srv.URL, "one")
	if idleCount(tr) != 1 {
		t.Fatal("the connection was not pooled")
	}
	eventually(t, "the idle connection outlived its timeout", func() bool { return srv.closed.Load() == 1 && idleCount(tr) == 0 })
	do(t, tr, http.MethodPost, srv.URL, "two")
	if n := srv.opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestTransportMaxIdle(t *testing.T) {
	srv := startServer(t, false, echo)
	tr := testTransport(t, srv.URL, nil)
	tr.maxIdle = 1
	var bodies []io.ReadCloser
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"?length", strings.NewReader("x"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp.Body)
	}
	for _, b := range bodies {
		io.ReadAll(b)
		b.Close()
	}
	if n := idleCount(tr); n != 1 {
		t.Errorf("%d idle connections, want 1", n)
	}
	eventually(t, "the connections over the limit stayed open", func() bool { return srv.closed.Load() == 2 })
}

func TestTransportInformational(t *testing.T) {
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	tr := testTransport(t, srv.URL, nil)
	if got := do(t, tr, http.MethodPost, srv.URL, ""); got != "final" {
		t.Errorf("body %q", got)
	}
}

func TestTransportRedirectElsewhere(t *testing.T) {
	target := startServer(t, false, echo)
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/moved", http.StatusPermanentRedirect)
	})
	tr := testTransport(t, srv.URL, nil)
	if got := do(t, tr, http.MethodPost, srv.URL, "follow me"); got != "follow me" {
		t.Errorf("body %q", got)
	}
}

// rawServer answers requests on each connection as script says for the
// connection's number: "ok" answers, "drop" closes without answering, "close"
// answers and then closes (without saying so in the response).
type rawServer struct {
	addr     string
	requests atomic.Int64
}

func startRawServer(t *testing.T, script func(conn, req int) string) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &rawServer{addr: ln.Addr().String()}
	go func() {
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(n int) {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					s.requests.Add(1)
					action := script(n, i)
					if action == "drop" {
						return
					}
					fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
					if action == "close" {
						return
					}
				}
			}(n)
		}
	}()
	return s
}

func TestTransportServerClosedIdle(t *testing.T) {
	srv := startRawServer(t, func(conn, req int) string {
		if conn == 0 {
			return "close"
		}
		return "ok"
	})
	tr := testTransport(t, "http://"+srv.addr, nil)
	do(t, tr, http.MethodPost, "http://"+srv.addr, "{}")
	tr.mu.Lock()
	pc := tr.idle[0]
	tr.mu.Unlock()
	eventually(t, "the server's close was not seen", func() bool { return pc.readable() })
	// Not a retry: the closed connection is left for a fresh one before
	// anything is sent.
	if got := do(t, tr, http.MethodPost, "http://"+srv.addr, "{}"); got != "ok" {
		t.Errorf("body %q", got)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("the server saw %d requests, want 2", n)
	}
}

func TestTransportRetry(t *testing.T) {
	// The first connection answers once, then drops the next request unanswered.
	script := func(conn, req int) string {
		if conn == 0 && req == 1 {
			return "drop"
		}
		return "ok"
	}
	for _, c := range []struct {
		method   string
		retried  bool
		requests int64
	}{
		{http.MethodGet, true, 3},
		// A completion may be running upstream: not sent twice.
		{http.MethodPost, false, 2},
	} {
		t.Run(c.method, func(t *testing.T) {
			srv := startRawServer(t, script)
			tr := testTransport(t, "http://"+srv.addr, nil)
			do(t, tr, c.method, "http://"+srv.addr, "")
			req, _ := http.NewRequest(c.method, "http://"+srv.addr, strings.NewReader(""))
			resp, err := tr.RoundTrip(req)
			if c.retried {
				if err != nil {
					t.Fatalf("not retried: %v", err)
				}
				resp.Body.Close()
			} else if err == nil {
				t.Fatal("retried a request the server may have acted on")
			}
			if n := srv.requests.Load(); n != c.requests {
				t.Errorf("the server saw %d requests, want %d", n, c.requests)
			}
		})
	}
}

func TestTransportHeaderTimeout(t *testing.T) {
	release := make(chan struct{})
	var slow atomic.Int64
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			<-release
		}
	})
	defer close(release)
	tr := testTransport(t, srv.URL, nil)
	tr.headerTimeout = 50 * time.Millisecond
	do(t, tr, http.MethodGet, srv.URL, "") // pooled: the next request is on a reused connection
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/slow", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errHeaderTimeout) {
		t.Errorf("got %v, want the header timeout", err)
	}
	// A slow server is not a closed connection: not asked twice.
	if n := slow.Load(); n != 1 {
		t.Errorf("the slow request was sent %d times", n)
	}
}

// TestTransportRequestNotRead checks that an upstream that stops reading a
// request is given up within the header timeout, as one that does not answer.
func TestTransportRequestNotRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() }) // held open, never read
		}
	}()
	tr := testTransport(t, "http://"+ln.Addr().String(), nil)
	tr.headerTimeout = 100 * time.Millisecond
	// Larger than what the sockets of both ends buffer.
	body := strings.Repeat("x", 64<<20)
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+"/v1/chat/completions", strings.NewReader(body))
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, errHeaderTimeout) {
			t.Errorf("got %v, want the header timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("still writing after 5s") // the cleanup closes the connection
	}
}

// TestTransportStoppedAtDone checks that a stream read up to its last event,
// but not to the end of its chunked body, keeps its connection.
func TestTransportStoppedAtDone(t *testing.T) {
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		for _, e := range []string{"data: {}\n\n", "data: [DONE]\n\n"} {
			io.WriteString(w, e)
			w.(http.Flusher).Flush()
		}
		// The body's last chunk follows when the handler returns, a moment
		// after the client has read [DONE].
		time.Sleep(time.Millisecond)
	})
	tr := testTransport(t, srv.URL, nil)
	for range 20 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		events := newSSEReader(resp.Body, resp.Body.(*body))
		for {
			data, err := events.next()
			if err != nil {
				t.Fatal(err)
			}
			if string(data) == "[DONE]" {
				break
			}
		}
		resp.Body.Close()
	}
	// One, but a loaded machine may be slower than the wait for the last chunk.
	if n := srv.opened.Load(); n > 5 {
		t.Errorf("%d connections for 20 streams, want 1", n)
	}
}

// TestTransportEarlyResponse checks that a response the server sends before
// it has read the whole request (a refusal of a body too large) reaches the
// caller, rather than the broken write.
func TestTransportEarlyResponse(t *testing.T) {
	srv := startServer(t, false, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"too large"}}`, http.StatusRequestEntityTooLarge)
	})
	tr := testTransport(t, srv.URL, nil)
	big := strings.Repeat("x", 16<<20)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(big))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestTransportHeadersTooLarge(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Endless: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	tr := testTransport(t, "http://"+ln.Addr().String(), nil)
	req, _ := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String(), nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errHeadersTooLarge) {
		t.Errorf("got %v, want the header limit", err)
	}
}

// A burst of requests that each need a new connection dials at most
// maxDials at a time; the others wait for a turn (and, when their context
// ends first, give up without dialing), and all are served.
func TestTransportDialsBounded(t *testing.T) {
	srv := startServer(t, false, echo)
	tr := testTransport(t, srv.URL, nil)
	var inFlight, most atomic.Int64
	release := make(chan struct{})
	tr.dialer.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
		return nil
	}
	const burst = maxDials + 40
	errs := make(chan error, burst)
	for range burst {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"?length", strings.NewReader("x"))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	eventually(t, "the first dials did not start", func() bool { return inFlight.Load() >= maxDials })
	// Every slot is taken: a request whose context ends while it waits
	// returns its context's error, having dialed nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a request that waited for a dial past its deadline: %v", err)
	}
	// Waiting counts against the connect timeout, as a dial would.
	other := testTransport(t, srv.URL, nil)
	other.connectTimeout = 20 * time.Millisecond
	for range maxDials {
		other.dials <- struct{}{} // every turn taken
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	var netErr net.Error
	if _, err := other.RoundTrip(req); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Errorf("a request that waited for a dial past the connect timeout: %v, want a timeout", err)
	}
	time.Sleep(20 * time.Millisecond) // time for more dials to start, were they not bounded
	close(release)
	for range burst {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := most.Load(); m != maxDials {
		t.Errorf("%d dials at once, want the bound, %d", m, maxDials)
	}
}
