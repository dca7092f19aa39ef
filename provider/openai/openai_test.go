package openai

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
	"aigrid/internal/upstreamtest"
)

func chatReq(stream bool) *aigrid.ChatRequest {
	return &aigrid.ChatRequest{Model: "chat", Stream: stream, Messages: []aigrid.Message{
		{Role: aigrid.RoleSystem, Content: aigrid.TextContent("be brief")},
		{Role: aigrid.RoleUser, Content: aigrid.TextContent("hello there grid")},
	}}
}

func newProvider(t *testing.T, up *upstreamtest.Server, timeouts aigrid.Timeouts) *Provider {
	t.Helper()
	t.Setenv("UP_KEY", "sk-upstream-secret")
	p, err := New(&aigrid.ProviderConfig{Name: "up1", Kind: aigrid.KindOpenAI, BaseURL: up.URL, APIKeyEnv: "UP_KEY", Timeouts: timeouts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestChat(t *testing.T) {
	up := upstreamtest.New(t, "sk-upstream-secret", map[string]upstreamtest.Behaviour{"small-chat": {}})
	p := newProvider(t, up, aigrid.Timeouts{})
	req := chatReq(false)
	resp, err := p.Chat(context.Background(), &aigrid.Offer{Model: "small-chat"}, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content.String(); got != "You said: hello there grid" {
		t.Errorf("reply %q", got)
	}
	if u := resp.Usage; u.PromptTokens != 5 || u.CompletionTokens != 5 || u.TotalTokens != 10 {
		t.Errorf("usage %+v", u)
	}
	if req.Model != "chat" {
		t.Error("the caller's request was changed")
	}
	sent := up.Requests()[0]
	var body map[string]any
	json.Unmarshal(sent.Body, &body)
	if body["model"] != "small-chat" || sent.Header.Get("Authorization") != "Bearer sk-upstream-secret" {
		t.Errorf("sent model %v, auth %q", body["model"], sent.Header.Get("Authorization"))
	}
}

func collect(t *testing.T, p *Provider, model string, req *aigrid.ChatRequest) ([]*aigrid.ChatChunk, *aigrid.ChatResponse, error) {
	t.Helper()
	var chunks []*aigrid.ChatChunk
	resp, err := p.Chat(context.Background(), &aigrid.Offer{Model: model}, req, func(c *aigrid.ChatChunk) error {
		// The provider reuses its chunk: keep a copy.
		var kept aigrid.ChatChunk
		b, _ := json.Marshal(c)
		json.Unmarshal(b, &kept)
		chunks = append(chunks, &kept)
		return nil
	})
	return chunks, resp, err
}

func TestStream(t *testing.T) {
	up := upstreamtest.New(t, "sk-upstream-secret", map[string]upstreamtest.Behaviour{
		"small-chat": {Reply: "one two three four"},
		"quiet":      {Reply: "one two three four", NoUsage: true},
	})
	p := newProvider(t, up, aigrid.Timeouts{})
	chunks, resp, err := collect(t, p, "small-chat", chatReq(true))
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
	}
	if text.String() != "one two three four" {
		t.Errorf("streamed %q", text.String())
	}
	last := chunks[len(chunks)-1]
	if last.Usage == nil || len(last.Choices) != 0 {
		t.Errorf("the usage chunk was not passed on: %+v", last)
	}
	if resp.Usage.CompletionTokens != 4 || resp.Usage.PromptTokens != 5 || resp.Usage.Estimated {
		t.Errorf("usage %+v", resp.Usage)
	}
	var sent aigrid.ChatRequest
	json.Unmarshal(up.Requests()[0].Body, &sent)
	if sent.StreamOptions == nil || !sent.StreamOptions.IncludeUsage {
		t.Error("usage was not asked of the upstream")
	}

	_, resp, err = collect(t, p, "quiet", chatReq(true))
	if err != nil {
		t.Fatal(err)
	}
	// Estimated: "one two three four" is 18 characters, 5 tokens at four characters a token.
	if resp.Usage.CompletionTokens != 5 || resp.Usage.PromptTokens != chatReq(false).EstimatePromptTokens() || !resp.Usage.Estimated {
		t.Errorf("estimated usage %+v", resp.Usage)
	}
}

func TestToolCalls(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {ToolArguments: `{"city":"Kisumu"}`}})
	p := newProvider(t, up, aigrid.Timeouts{})
	req := chatReq(true)
	req.Tools = []aigrid.Tool{{Type: "function", Function: aigrid.FunctionDecl{Name: "get_weather"}}}
	chunks, _, err := collect(t, p, "small-chat", req)
	if err != nil {
		t.Fatal(err)
	}
	var args, name, finish string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil || *tc.Index != 0 {
					t.Errorf("tool call delta without index 0: %+v", tc)
				}
				name += tc.Function.Name
				args += tc.Function.Arguments
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if name != "get_weather" || args != `{"city":"Kisumu"}` || finish != "tool_calls" {
		t.Errorf("name %q args %q finish %q", name, args, finish)
	}
	req.Stream = false
	resp, err := p.Chat(context.Background(), &aigrid.Offer{Model: "small-chat"}, req, nil)
	if err != nil || resp.Choices[0].Message.ToolCalls[0].Function.Arguments != `{"city":"Kisumu"}` || resp.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("non-streamed tool call: %+v %v", resp, err)
	}
}

func TestErrors(t *testing.T) {
	up := upstreamtest.New(t, "sk-upstream-secret", map[string]upstreamtest.Behaviour{
		"bad":      {Status: 400, ErrorMessage: "max_tokens is too large for key sk-upstream-secret"},
		"denied":   {Status: 401, ErrorMessage: "bad key sk-upstream-secret"},
		"limited":  {Status: 429, ErrorMessage: "slow down"},
		"broken":   {Status: 500, ErrorMessage: "Traceback: secret internals"},
		"toobig":   {Status: 413, ErrorMessage: "too big"},
		"slow":     {FirstByteDelay: 2 * time.Second},
		"stall":    {StallAfter: 2},
		"drop":     {DropAfter: 2},
		"slowbody": {ChunkDelay: 2 * time.Second},
	})
	p := newProvider(t, up, aigrid.Timeouts{FirstByte: aigrid.Duration(300 * time.Millisecond), Idle: aigrid.Duration(300 * time.Millisecond)})
	cases := []struct {
		model, code, contains string
		stream                bool
	}{
		{"bad", aigrid.EInvalid, "max_tokens is too large", false},
		{"denied", aigrid.EUpstream, "rejected the grid's credentials", false},
		{"limited", aigrid.ERateLimited, "rate-limiting", false},
		{"broken", aigrid.EUpstream, "status 500", false},
		{"toobig", aigrid.ETooLarge, "too large", false},
		{"missing", aigrid.EUpstream, "does not know", false},
		{"slow", aigrid.EUpstream, "first byte", false},
		{"slow", aigrid.EUpstream, "first byte", true},
		{"stall", aigrid.EUpstream, "went silent", true},
		{"slowbody", aigrid.EUpstream, "went silent", true},
		{"drop", aigrid.EUpstream, "", true},
	}
	for _, c := range cases {
		_, _, err := collect(t, p, c.model, chatReq(c.stream))
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(e.Message, c.contains) {
			t.Errorf("%s (stream %v): got %v, want %s error with %q", c.model, c.stream, err, c.code, c.contains)
			continue
		}
		for _, leak := range []string{"sk-upstream-secret", "Traceback"} {
			if strings.Contains(e.Message, leak) {
				t.Errorf("%s: message leaks %q: %s", c.model, leak, e.Message)
			}
		}
		if c.model == "limited" && e.RetryAfter != 7*time.Second {
			t.Errorf("Retry-After %v, want 7s", e.RetryAfter)
		}
	}
}

func TestUnreachable(t *testing.T) {
	p, err := New(&aigrid.ProviderConfig{Name: "gone", Kind: aigrid.KindOpenAI, BaseURL: "http://127.0.0.1:9/v1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Chat(context.Background(), &aigrid.Offer{Model: "m"}, chatReq(false), nil)
	if aigrid.ErrorCode(err) != aigrid.EUpstream || !strings.Contains(err.Error(), "could not be reached") {
		t.Errorf("got %v", err)
	}
	if _, err := New(&aigrid.ProviderConfig{Name: "x", BaseURL: "ftp://x"}); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("bad base_url accepted: %v", err)
	}
}

// TestCancel checks that a client going away ends the upstream request at once.
func TestCancel(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {Reply: strings.Repeat("word ", 100), ChunkDelay: 50 * time.Millisecond}})
	p := newProvider(t, up, aigrid.Timeouts{})
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err := p.Chat(ctx, &aigrid.Offer{Model: "small-chat"}, chatReq(true), func(*aigrid.ChatChunk) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	select {
	case m := <-up.Ended():
		if m != "small-chat" {
			t.Errorf("ended %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request went on after the client left")
	}
}

func TestEmitError(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {}})
	p := newProvider(t, up, aigrid.Timeouts{})
	stop := errors.New("client gone")
	_, err := p.Chat(context.Background(), &aigrid.Offer{Model: "small-chat"}, chatReq(true), func(*aigrid.ChatChunk) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("got %v", err)
	}
}

func TestEmbed(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"embed-small": {Dimensions: 4}, "embed-quiet": {Dimensions: 4, NoUsage: true}})
	p := newProvider(t, up, aigrid.Timeouts{})
	var req aigrid.EmbeddingRequest
	json.Unmarshal([]byte(`{"model":"embed","input":["jambo dunia","habari"]}`), &req)
	resp, err := p.Embed(context.Background(), &aigrid.Offer{Model: "embed-small"}, &req)
	if err != nil {
		t.Fatal(err)
	}
	var vec []float32
	json.Unmarshal(resp.Data[1].Embedding, &vec)
	want := upstreamtest.Vector("habari", 4)
	if len(resp.Data) != 2 || len(vec) != 4 || vec[0] != want[0] || resp.Usage.PromptTokens != 3 || resp.Usage.Estimated {
		t.Errorf("embeddings %s, usage %+v", resp.Data[1].Embedding, resp.Usage)
	}
	// Uncounted, the inputs are estimated: 17 characters, 5 tokens.
	if resp, err := p.Embed(context.Background(), &aigrid.Offer{Model: "embed-quiet"}, &req); err != nil || resp.Usage.PromptTokens != 5 || !resp.Usage.Estimated {
		t.Errorf("an upstream that counts nothing: %+v, %v", resp, err)
	}
	req.EncodingFormat = "base64"
	resp, err = p.Embed(context.Background(), &aigrid.Offer{Model: "embed-small"}, &req)
	if err != nil || resp.Data[0].Embedding[0] != '"' {
		t.Errorf("base64 embedding %s %v", resp.Data[0].Embedding, err)
	}
}

func TestProbe(t *testing.T) {
	up := upstreamtest.New(t, "sk-upstream-secret", map[string]upstreamtest.Behaviour{"m": {}})
	if err := newProvider(t, up, aigrid.Timeouts{}).Probe(context.Background()); err != nil {
		t.Error(err)
	}
	p, _ := New(&aigrid.ProviderConfig{Name: "nokey", BaseURL: up.URL})
	if err := p.Probe(context.Background()); aigrid.ErrorCode(err) != aigrid.EUpstream {
		t.Errorf("probe without key: %v", err)
	}
}

// TestCompressed checks that responses read whole are offered compression and
// decompressed, and that streams are not offered it.
func TestCompressed(t *testing.T) {
	var streamGzip, embedGzip atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		gz := strings.Contains(r.Header.Get("Accept-Encoding"), "gzip")
		var body string
		status := http.StatusOK
		switch {
		case bytes.Contains(raw, []byte(`"stream":true`)):
			streamGzip.Store(gz)
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
			return
		case r.URL.Path == "/v1/embeddings":
			embedGzip.Store(gz)
			body = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,0.25]}],"usage":{"prompt_tokens":2,"total_tokens":2}}`
		case bytes.Contains(raw, []byte(`"model":"broken"`)):
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "not gzip at all")
			return
		default:
			status, body = http.StatusBadRequest, `{"error":{"message":"messages must not be empty"}}`
		}
		if !gz {
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		zw := gzip.NewWriter(w)
		io.WriteString(zw, body)
		zw.Close()
	}))
	defer srv.Close()
	p, err := New(&aigrid.ProviderConfig{Name: "up1", BaseURL: srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var req aigrid.EmbeddingRequest
	json.Unmarshal([]byte(`{"model":"embed","input":["jambo"]}`), &req)
	resp, err := p.Embed(context.Background(), &aigrid.Offer{Model: "e"}, &req)
	if err != nil || len(resp.Data) != 1 || string(resp.Data[0].Embedding) != "[0.5,0.25]" || !embedGzip.Load() {
		t.Fatalf("embeddings %+v, %v, compression offered: %v", resp, err, embedGzip.Load())
	}
	_, err = p.Chat(context.Background(), &aigrid.Offer{Model: "m"}, chatReq(false), nil)
	if aigrid.ErrorCode(err) != aigrid.EInvalid || !strings.Contains(err.Error(), "messages must not be empty") {
		t.Errorf("compressed error body: %v", err)
	}
	_, err = p.Chat(context.Background(), &aigrid.Offer{Model: "broken"}, chatReq(false), nil)
	if aigrid.ErrorCode(err) != aigrid.EUpstream || !strings.Contains(err.Error(), "does not decompress") {
		t.Errorf("broken compression: %v", err)
	}
	if _, _, err := collect(t, p, "m", chatReq(true)); err != nil {
		t.Fatal(err)
	}
	if streamGzip.Load() {
		t.Error("a stream was offered compression")
	}
}

// TestRedirect checks that a completion the upstream redirects (within its own
// origin, which the grid's transport serves without net/http's client) is sent
// to where it was moved, body and all.
func TestRedirect(t *testing.T) {
	var moved atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/chat/completions" {
			http.Redirect(w, r, "/v2/chat/completions", http.StatusTemporaryRedirect)
			return
		}
		raw, _ := io.ReadAll(r.Body)
		if !bytes.Contains(raw, []byte(`"model":"m"`)) {
			http.Error(w, `{"error":{"message":"no model"}}`, http.StatusBadRequest)
			return
		}
		moved.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	p, err := New(&aigrid.ProviderConfig{Name: "up1", BaseURL: srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	chunks, _, err := collect(t, p, "m", chatReq(true))
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 || *chunks[0].Choices[0].Delta.Content != "hi" || moved.Load() != 1 {
		t.Errorf("%d chunks, %d requests where it moved", len(chunks), moved.Load())
	}
}

// A completion that arrives whole marks every chunk as having the next at
// hand, also where an event straddles the end of the read buffer: the rest of
// it is on the socket already.
func TestStreamBurstMore(t *testing.T) {
	var events strings.Builder
	const n = 100
	for i := range n {
		fmt.Fprintf(&events, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word%d \"},\"finish_reason\":null}]}\n\n", i)
	}
	events.WriteString("data: [DONE]\n\n")
	if events.Len() < burstBufferBytes+sseBufferBytes {
		t.Fatalf("the burst (%d bytes) must cross the read buffer's end", events.Len())
	}
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
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		// One write: the whole answer is on the grid's socket at once.
		fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s", events.Len(), events.String())
		io.Copy(io.Discard, c)
	}()
	p, err := New(&aigrid.ProviderConfig{Name: "burst", Kind: aigrid.KindOpenAI, BaseURL: "http://" + ln.Addr().String() + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	got, alone := 0, 0
	_, err = p.Chat(context.Background(), &aigrid.Offer{Model: "m"}, chatReq(true), func(c *aigrid.ChatChunk) error {
		if got++; !c.More {
			alone++
		}
		return nil
	})
	if err != nil || got != n || alone != 0 {
		t.Errorf("%d chunks, %d of them without More (want %d, 0): %v", got, alone, n, err)
	}
}

// A chunk whose successor the upstream has not sent yet goes without More,
// so that the client gets it at once.
func TestStreamSpacedNoMore(t *testing.T) {
	emitted := make(chan struct{}, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d\"},\"finish_reason\":null}]}\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-emitted:
			case <-time.After(5 * time.Second):
				return
			}
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	defer up.Close()
	p, err := New(&aigrid.ProviderConfig{Name: "spaced", Kind: aigrid.KindOpenAI, BaseURL: up.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var more []bool
	_, err = p.Chat(context.Background(), &aigrid.Offer{Model: "m"}, chatReq(true), func(c *aigrid.ChatChunk) error {
		more = append(more, c.More)
		emitted <- struct{}{}
		return nil
	})
	if err != nil || fmt.Sprint(more) != "[false false false]" {
		t.Errorf("More of the chunks: %v (%v)", more, err)
	}
}

// Chunks whose choices are relayed raw are metered as decoded ones are: an
// upstream that counts nothing is estimated from their text, unescaped, and
// one that ends without [DONE] after its choices finished has ended well.
func TestStreamRawChoices(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, choices := range []string{
			`[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`,
			`[{"index":0,"delta":{"content":"h\u00e9llo "},"logprobs":null,"finish_reason":null}]`,
			`[{"index":0,"delta":{"content":"w\u00f6rld"},"logprobs":null,"finish_reason":null}]`,
			`[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]`,
		} {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":%s}\n\n", choices)
		}
	}))
	defer srv.Close()
	p, err := New(&aigrid.ProviderConfig{Name: "up1", BaseURL: srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var raw []string
	resp, err := p.Chat(context.Background(), &aigrid.Offer{Model: "m"}, chatReq(true), func(c *aigrid.ChatChunk) error {
		raw = append(raw, string(c.Raw.JSON))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// "héllo wörld" is 13 bytes: 4 tokens at four characters a token.
	if resp.Usage.CompletionTokens != 4 || len(raw) != 4 || raw[1] != `[{"index":0,"delta":{"content":"h\u00e9llo "},"finish_reason":null}]` {
		t.Errorf("usage %+v, relayed %q", resp.Usage, raw)
	}
}
