// Package openai is the provider for any upstream that speaks the OpenAI HTTP
// API (vLLM, SGLang, llama.cpp server, Ollama, DeepSeek, Qwen, Zhipu, ...):
// a streaming proxy with pooled connections and a timeout for every phase.
package openai

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"aigrid"
	"aigrid/internal/offstack"
)

var (
	_ aigrid.Provider = (*Provider)(nil)
	_ aigrid.Embedder = (*Provider)(nil)
)

// Provider is one OpenAI-compatible upstream.
type Provider struct {
	name    string
	baseURL string
	apiKey  string
	// chatURL and embeddingsURL are parsed once; authorization is the
	// header's value, shared by every request (see post).
	chatURL, embeddingsURL *url.URL
	authorization          []string
	timeouts               aigrid.Timeouts
	client                 *http.Client
}

// New returns a provider for the configured upstream.
func New(cfg *aigrid.ProviderConfig) (*Provider, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, aigrid.Errorf(aigrid.EInvalid, "provider %q: base_url %q must be an absolute http or https URL", cfg.Name, cfg.BaseURL)
	}
	key := cfg.APIKey
	if key == "" && cfg.APIKeyEnv != "" {
		key = os.Getenv(cfg.APIKeyEnv)
	}
	t := cfg.Timeouts.WithDefaults()
	std := stdTransport(t)
	var rt http.RoundTripper = std
	// A proxy named by the environment (HTTP_PROXY, HTTPS_PROXY, NO_PROXY,
	// read once per process) is spoken to by the standard transport;
	// direct connections, the usual case, by the grid's own.
	if proxy, err := std.Proxy(&http.Request{URL: u}); err != nil {
		return nil, aigrid.Errorf(aigrid.EInvalid, "provider %q: proxy from the environment: %v", cfg.Name, err)
	} else if proxy == nil {
		rt = newTransport(u, time.Duration(t.Connect), time.Duration(t.FirstByte), std)
	}
	p := &Provider{
		name:     cfg.Name,
		baseURL:  strings.TrimSuffix(cfg.BaseURL, "/"),
		apiKey:   key,
		timeouts: t,
		client:   &http.Client{Transport: rt},
	}
	if key != "" {
		p.authorization = []string{"Bearer " + key}
	}
	if p.chatURL, err = url.Parse(p.baseURL + "/chat/completions"); err == nil {
		p.embeddingsURL, err = url.Parse(p.baseURL + "/embeddings")
	}
	if err != nil {
		return nil, aigrid.Errorf(aigrid.EInvalid, "provider %q: base_url %q: %v", cfg.Name, cfg.BaseURL, err)
	}
	return p, nil
}

// stdTransport is net/http's transport with the provider's timeouts, for
// upstreams behind a proxy and for redirects to another origin.
func stdTransport(t aigrid.Timeouts) *http.Transport {
	dialer := &net.Dialer{Timeout: time.Duration(t.Connect), KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   time.Duration(t.Connect),
		ResponseHeaderTimeout: time.Duration(t.FirstByte),
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		WriteBufferSize:       1 << 10,
		ForceAttemptHTTP2:     true,
	}
}

// Close drops the idle connections to the upstream.
func (p *Provider) Close() { p.client.CloseIdleConnections() }

// Chat runs a chat completion upstream.
func (p *Provider) Chat(ctx context.Context, offer *aigrid.Offer, req *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	up := *req // a shallow copy: the caller's request is not changed
	up.Model = offer.Model
	if up.Stream {
		// Always ask for usage, so that the grid can meter the stream.
		up.StreamOptions = &aigrid.StreamOptions{IncludeUsage: true}
		return p.stream(ctx, &up, req, emit)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.timeouts.Total))
	defer cancel()
	resp, err := p.post(ctx, p.chatURL, &up, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out aigrid.ChatResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, p.readError(ctx, err)
	}
	if out.Usage == nil {
		out.Usage = req.EstimateUsage(out.CompletionChars())
	}
	return &out, nil
}

// stream relays a streamed completion chunk by chunk.
func (p *Provider) stream(ctx context.Context, up, orig *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	// The first chunk must come within the first-byte timeout, every later one
	// within the idle timeout of the one before.
	firstByte, idle := time.Duration(p.timeouts.FirstByte), time.Duration(p.timeouts.Idle)
	watchdog := newWatchdog(firstByte, idle, func(started bool) error {
		if started {
			return aigrid.Errorf(aigrid.EUpstream, "provider %s went silent for %s in the middle of a stream", p.name, idle)
		}
		return aigrid.Errorf(aigrid.EUpstream, "provider %s timed out waiting for the first byte after %s", p.name, firstByte)
	})
	defer watchdog.stop()
	// The grid's transport bounds the exchange itself (connecting, then the
	// request and the headers within the first-byte timeout), and the
	// watchdog closes the body; net/http's, for upstreams behind a proxy, is
	// ended through a context that the watchdog cancels.
	_, direct := p.client.Transport.(*transport)
	if !direct {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		watchdog.watch(cancelCloser(cancel))
	}

	resp, err := p.post(ctx, p.chatURL, up, false)
	if err != nil {
		if werr := watchdog.err(); werr != nil {
			return nil, werr
		}
		return nil, err
	}
	defer resp.Body.Close()
	if direct {
		if err := watchdog.watch(resp.Body); err != nil {
			return nil, err
		}
	}

	out := &aigrid.ChatResponse{}
	chars, finished := 0, false
	var src netSource
	if b, ok := resp.Body.(*body); ok && b.plain() {
		src = b
	}
	events := newSSEReader(resp.Body, src)
	defer events.close()
	var chunks chunkDecoder
	for {
		data, err := events.next()
		if err != nil {
			if werr := watchdog.err(); werr != nil {
				return nil, werr
			}
			if err == io.EOF && finished {
				break // some servers end without [DONE]
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, aigrid.Errorf(aigrid.EUpstream, "provider %s closed the stream early", p.name)
			}
			return nil, p.readError(ctx, err)
		}
		watchdog.event()
		if bytes.Equal(data, []byte("[DONE]")) {
			break
		}
		if bytes.HasPrefix(data, []byte(`{"error"`)) {
			return nil, p.streamError(data)
		}
		chunk, err := chunks.decode(data)
		if err != nil {
			return nil, aigrid.Errorf(aigrid.EUpstream, "provider %s sent a chunk that is not valid JSON", p.name)
		}
		if chunk.Raw.JSON != nil {
			chars += chunks.chars
			finished = finished || chunk.Raw.Finished > 0
		}
		for i := range chunk.Choices {
			c := &chunk.Choices[i]
			chars += deltaChars(&c.Delta)
			if c.FinishReason != nil {
				finished = true
			}
		}
		if chunk.Usage != nil {
			out.Usage = chunk.Usage
		}
		out.ID, out.Model, out.Created = chunk.ID, chunk.Model, chunk.Created
		chunk.More = events.pending()
		watchdog.emit()
		err = emit(chunk)
		watchdog.emitted()
		if err != nil {
			return nil, err
		}
	}
	if out.Usage == nil {
		out.Usage = orig.EstimateUsage(chars)
	}
	return out, nil
}

// cancelCloser cancels a context when closed.
type cancelCloser context.CancelCauseFunc

func (c cancelCloser) Close() error {
	c(errSilenced)
	return nil
}

// errSilenced is the cause of a stream's context cancelled by its watchdog,
// which keeps the error that says why.
var errSilenced = errors.New("openai: the upstream went silent")

// Embed computes embeddings upstream.
func (p *Provider) Embed(ctx context.Context, offer *aigrid.Offer, req *aigrid.EmbeddingRequest) (*aigrid.EmbeddingResponse, error) {
	up := *req
	up.Model = offer.Model
	ctx, cancel := context.WithTimeout(ctx, time.Duration(p.timeouts.Total))
	defer cancel()
	resp, err := p.post(ctx, p.embeddingsURL, &up, true)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out aigrid.EmbeddingResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, p.readError(ctx, err)
	}
	if out.Usage.PromptTokens == 0 {
		chars := 0
		for _, t := range req.Input.Texts {
			chars += len(t)
		}
		for _, t := range req.Input.Tokens {
			chars += 4 * len(t)
		}
		out.Usage.PromptTokens = (chars + 3) / 4
		out.Usage.TotalTokens = out.Usage.PromptTokens
		out.Usage.Estimated = true
	}
	return &out, nil
}

// Probe checks that the upstream answers GET /models.
func (p *Provider) Probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.baseURL+"/models", nil)
	if err != nil {
		return err
	}
	p.authorize(req)
	resp, err := p.client.Do(req)
	if err != nil {
		return p.transportError(ctx, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return p.statusError(resp)
	}
	return nil
}

func (p *Provider) authorize(req *http.Request) {
	if p.authorization != nil {
		req.Header["Authorization"] = p.authorization[:1:1]
	}
}

// The header values of every request, in canonical form, shared: nothing
// changes a request's header values in place, and a slice whose capacity is
// its length is never appended to in place.
var (
	jsonOnly    = []string{"application/json"}
	jsonOrSSE   = []string{"application/json, text/event-stream"}
	gzipEncoded = []string{"gzip"}
)

// post sends body as JSON and returns a 200 response, or the error the status
// maps to. A response read whole (not a stream) may come compressed; a stream
// is not offered that, since a decompressor's window (32 KiB) would be held
// for its whole life.
//
// A stream's handler keeps its goroutine's stack for the stream's whole life
// (see package offstack). Under the handler, dispatch and provider frames
// (about 5 KiB) the exchange's deep steps (encoding the request, dialing and
// the TLS handshake, writing the request, reading the response headers: 2-4
// KiB each) would double it from 8 to 16 KiB, so they run off its stack; the
// wait for the upstream's answer, which lasts as long as the upstream takes
// to start, stays on it.
func (p *Provider) post(ctx context.Context, u *url.URL, body any, whole bool) (*http.Response, error) {
	var b []byte
	var err error
	offstack.Compute(func() { b, err = encodeRequest(body) })
	if err != nil {
		return nil, fmt.Errorf("openai: encode request: %w", err)
	}
	// The URL was parsed in New: the request gets a copy of it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "", bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("openai: %w", err)
	}
	req.URL = new(*u)
	req.Host = u.Host
	req.Header["Content-Type"] = jsonOnly[:1:1]
	req.Header["Accept"] = jsonOrSSE[:1:1]
	if whole {
		req.Header["Accept-Encoding"] = gzipEncoded[:1:1]
	}
	p.authorize(req)
	resp, err := p.do(req)
	if err != nil {
		return nil, p.transportError(ctx, err)
	}
	if whole && resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			resp.Body.Close()
			return nil, p.readError(ctx, err)
		}
		resp.Body = gzipBody{zr, resp.Body}
	}
	// A chunked body keeps its response (for the trailer), and the response
	// its request: let the request and its encoded prompt go for the rest of
	// a stream.
	resp.Request = nil
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, p.statusError(resp)
	}
	if !whole {
		// Nothing reads a stream's headers once its status is known; a hosted
		// upstream sends a few dozen, which the stream would hold to its end.
		resp.Header = nil
	}
	return resp, nil
}

// encodeRequest encodes a request body: a chat request by hand, the rest
// through encoding/json.
func encodeRequest(body any) ([]byte, error) {
	r, ok := body.(*aigrid.ChatRequest)
	if !ok {
		return json.Marshal(body)
	}
	size := 256
	for i := range r.Messages {
		if c := r.Messages[i].Content; c != nil {
			size += len(c.Text) + 32
		}
	}
	return appendChatRequest(make([]byte, 0, size), r)
}

// do sends req. On the grid's own transport it runs in the caller's
// goroutine, which the transport keeps shallow; a redirect, and every
// request through net/http's transport, goes through the client off the
// caller's stack.
func (p *Provider) do(req *http.Request) (*http.Response, error) {
	if t, ok := p.client.Transport.(*transport); ok {
		resp, err := t.RoundTrip(req)
		if err != nil || !redirect(resp) {
			return resp, err
		}
		// The upstream did not act on it: the client sends it again and follows.
		resp.Body.Close()
		if req, err = again(req); err != nil {
			return nil, err
		}
	}
	var resp *http.Response
	var err error
	offstack.Run(func() { resp, err = p.client.Do(req) })
	return resp, err
}

// redirect reports whether http.Client would follow the response.
func redirect(resp *http.Response) bool {
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return resp.Header.Get("Location") != ""
	}
	return false
}

// gzipBody is a compressed response body, read through its decompressor.
type gzipBody struct {
	*gzip.Reader
	body io.ReadCloser
}

func (g gzipBody) Close() error { return g.body.Close() }

// transportError explains a failure to get a response at all.
func (p *Provider) transportError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		if e, ok := cause.(*aigrid.Error); ok {
			return e
		}
		if errors.Is(cause, context.DeadlineExceeded) {
			return aigrid.Errorf(aigrid.EUpstream, "provider %s did not answer within %s", p.name, time.Duration(p.timeouts.Total))
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // the client went away: not the provider's fault
	}
	var netErr net.Error
	switch {
	case errors.Is(err, errHeaderTimeout) || errors.As(err, &netErr) && netErr.Timeout() && strings.Contains(err.Error(), "awaiting response headers"):
		return aigrid.Errorf(aigrid.EUpstream, "provider %s timed out waiting for the first byte after %s", p.name, time.Duration(p.timeouts.FirstByte))
	case errors.As(err, &netErr) && netErr.Timeout():
		return aigrid.Errorf(aigrid.EUpstream, "provider %s timed out connecting after %s", p.name, time.Duration(p.timeouts.Connect))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return aigrid.Errorf(aigrid.EUpstream, "provider %s could not be reached", p.name)
	}
	return aigrid.Errorf(aigrid.EUpstream, "provider %s failed: the connection broke", p.name)
}

// readError explains a failure while reading a response body.
func (p *Provider) readError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil {
		return p.transportError(ctx, err)
	}
	if errors.Is(err, errEventTooLarge) {
		return aigrid.Errorf(aigrid.EUpstream, "provider %s sent an oversized event", p.name)
	}
	if errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) {
		return aigrid.Errorf(aigrid.EUpstream, "provider %s sent a compressed response that does not decompress", p.name)
	}
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return aigrid.Errorf(aigrid.EUpstream, "provider %s sent a response that is not valid JSON", p.name)
	}
	return aigrid.Errorf(aigrid.EUpstream, "provider %s failed: the connection broke", p.name)
}

// upstreamError is OpenAI's error body, as upstreams send it.
type upstreamError struct {
	Error struct {
		Message string `json:"message"`
	} `json:"error"`
}

// statusError maps an upstream's error status to the error a client sees.
// The upstream's body is never passed on whole: only the message of a
// request error, which is about the client's own request.
func (p *Provider) statusError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch code := resp.StatusCode; {
	case code == http.StatusBadRequest || code == http.StatusUnprocessableEntity:
		msg := p.clean(raw)
		if msg == "" {
			msg = "the request was refused as invalid"
		}
		return aigrid.Errorf(aigrid.EInvalid, "provider %s: %s", p.name, msg)
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return aigrid.Errorf(aigrid.EUpstream, "provider %s rejected the grid's credentials", p.name)
	case code == http.StatusNotFound:
		return aigrid.Errorf(aigrid.EUpstream, "provider %s does not know the requested model or endpoint", p.name)
	case code == http.StatusRequestEntityTooLarge:
		return aigrid.Errorf(aigrid.ETooLarge, "provider %s refused the request as too large", p.name)
	case code == http.StatusTooManyRequests:
		e := aigrid.Errorf(aigrid.ERateLimited, "provider %s is rate-limiting the grid; try again shortly", p.name)
		e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"))
		return e
	}
	return aigrid.Errorf(aigrid.EUpstream, "provider %s failed with status %d", p.name, resp.StatusCode)
}

func (p *Provider) streamError(data []byte) error {
	if msg := p.clean(data); msg != "" {
		return aigrid.Errorf(aigrid.EUpstream, "provider %s failed mid-stream: %s", p.name, msg)
	}
	return aigrid.Errorf(aigrid.EUpstream, "provider %s failed mid-stream", p.name)
}

// clean extracts the message of an OpenAI error body, shortened, with the
// grid's upstream key blanked should the upstream echo it.
func (p *Provider) clean(raw []byte) string {
	var e upstreamError
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	msg := e.Error.Message
	if p.apiKey != "" {
		msg = strings.ReplaceAll(msg, p.apiKey, "[redacted]")
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

func retryAfter(h string) time.Duration {
	if secs, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return time.Second
}

func deltaChars(d *aigrid.Delta) int {
	n := 0
	if d.Content != nil {
		n += len(*d.Content)
	}
	if d.ReasoningContent != nil {
		n += len(*d.ReasoningContent)
	}
	for _, tc := range d.ToolCalls {
		n += len(tc.Function.Name) + len(tc.Function.Arguments)
	}
	return n
}
