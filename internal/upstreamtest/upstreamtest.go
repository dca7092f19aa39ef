// Package upstreamtest runs a local server that speaks the OpenAI HTTP API, as
// vLLM, Ollama or a hosted provider would, for the end-to-end tests and the
// benchmarks of the grid. Each model it serves has a Behaviour: a normal
// answer, tool calls, an error status, a slow first byte, a stream that stalls
// or whose connection drops.
//
// Its answers are deterministic. Tokens are counted as whitespace-separated
// words: the prompt's tokens are the words of every message's text, the
// completion's the words of the reply, and a streamed reply sends one word a chunk.
package upstreamtest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"aigrid"
)

// Behaviour says how the server answers requests for one model.
type Behaviour struct {
	// Reply is the assistant's text; empty means "You said: " and the last user message.
	Reply string
	// ToolArguments, when the request has tools, makes the reply a call of the
	// first tool with these JSON arguments, streamed in several pieces.
	ToolArguments string
	// Status, when not 0 or 200, answers with this status and an OpenAI error body.
	Status       int
	ErrorMessage string
	// FirstByteDelay is slept before the response headers.
	FirstByteDelay time.Duration
	// ChunkDelay is slept between two chunks of a stream.
	ChunkDelay time.Duration
	// StallAfter > 0 sends that many chunks, then goes silent until the request ends.
	StallAfter int
	// DropAfter > 0 sends that many chunks, then closes the connection.
	DropAfter int
	// NoUsage leaves usage out, as some upstreams do.
	NoUsage bool
	// Dimensions of embeddings (default 8).
	Dimensions int
}

// Request is one request as the server received it.
type Request struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

// Server is a running upstream.
type Server struct {
	URL string // base URL, ending in /v1
	Key string // when set, requests must carry it as a bearer token

	srv *httptest.Server

	mu         sync.Mutex
	behaviours map[string]Behaviour
	requests   []Request
	active     int
	ended      chan string // models of requests whose context ended, in order
}

// New starts a server on loopback that serves the given models. It stops when the test ends.
func New(tb testingTB, key string, models map[string]Behaviour) *Server {
	s := &Server{Key: key, behaviours: map[string]Behaviour{}, ended: make(chan string, 1024)}
	for m, b := range models {
		s.behaviours[m] = b
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	mux.HandleFunc("GET /v1/models", s.models)
	s.srv = httptest.NewServer(s.record(mux))
	s.URL = s.srv.URL + "/v1"
	tb.Cleanup(s.Close)
	return s
}

// testingTB is the part of testing.TB the server needs.
type testingTB interface{ Cleanup(func()) }

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Set changes the behaviour of a model.
func (s *Server) Set(model string, b Behaviour) {
	s.mu.Lock()
	s.behaviours[model] = b
	s.mu.Unlock()
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Active returns how many chat requests are being answered now.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Ended receives the model of each chat request whose context ended before
// the server finished answering it (the gateway hung up).
func (s *Server) Ended() <-chan string { return s.ended }

func (s *Server) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.mu.Lock()
		s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
		s.mu.Unlock()
		if s.Key != "" && r.Header.Get("Authorization") != "Bearer "+s.Key {
			writeError(w, http.StatusUnauthorized, "Incorrect API key provided.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) behaviour(model string) (Behaviour, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.behaviours[model]
	return b, ok
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": nil}})
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var data []map[string]any
	for m := range s.behaviours {
		data = append(data, map[string]any{"id": m, "object": "model", "created": 0, "owned_by": "upstreamtest"})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}

// words counts tokens by this server's rule.
func words(s string) int { return len(strings.Fields(s)) }

func promptTokens(req *aigrid.ChatRequest) int {
	n := 0
	for i := range req.Messages {
		n += words(req.Messages[i].Content.String())
	}
	return n
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	var req aigrid.ChatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.")
		return
	}
	b, ok := s.behaviour(req.Model)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	s.mu.Lock()
	s.active++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		if r.Context().Err() != nil {
			s.ended <- req.Model
		}
	}()
	if b.FirstByteDelay > 0 && !sleep(r, b.FirstByteDelay) {
		return
	}
	if b.Status != 0 && b.Status != http.StatusOK {
		if b.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
		}
		writeError(w, b.Status, b.ErrorMessage)
		return
	}
	reply := b.Reply
	if reply == "" {
		reply = "You said: " + lastUser(&req)
	}
	var call *aigrid.ToolCall
	if len(req.Tools) > 0 && b.ToolArguments != "" {
		call = &aigrid.ToolCall{ID: "call_" + req.Tools[0].Function.Name, Type: "function",
			Function: aigrid.FunctionCall{Name: req.Tools[0].Function.Name, Arguments: b.ToolArguments}}
		reply = ""
	}
	usage := &aigrid.Usage{PromptTokens: promptTokens(&req), CompletionTokens: words(reply) + words(b.ToolArguments)*boolInt(call != nil)}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	if b.NoUsage {
		usage = nil
	}
	if req.Stream {
		s.stream(w, r, &req, b, reply, call, usage)
		return
	}
	msg := aigrid.Message{Role: aigrid.RoleAssistant}
	finish := aigrid.FinishStop
	if call != nil {
		msg.ToolCalls = []aigrid.ToolCall{*call}
		finish = aigrid.FinishToolCalls
	} else {
		msg.Content = aigrid.TextContent(reply)
	}
	choice := aigrid.Choice{Message: msg, FinishReason: finish}
	if req.Logprobs {
		choice.Logprobs = logprobs(strings.SplitAfter(reply, " "), req.TopLogprobs)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&aigrid.ChatResponse{ID: "chatcmpl-up", Object: "chat.completion", Created: time.Now().Unix(),
		Model: req.Model, Choices: []aigrid.Choice{choice}, Usage: usage})
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, req *aigrid.ChatRequest, b Behaviour, reply string, call *aigrid.ToolCall, usage *aigrid.Usage) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher := w.(http.Flusher)
	created := time.Now().Unix()
	sent := 0
	send := func(delta aigrid.Delta, finish *string, lp *aigrid.Logprobs) bool {
		if b.DropAfter > 0 && sent == b.DropAfter {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			return false
		}
		if b.StallAfter > 0 && sent == b.StallAfter {
			<-r.Context().Done()
			return false
		}
		if sent > 0 && b.ChunkDelay > 0 && !sleep(r, b.ChunkDelay) {
			return false
		}
		chunk := aigrid.ChatChunk{ID: "chatcmpl-up", Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []aigrid.ChunkChoice{{Delta: delta, FinishReason: finish, Logprobs: lp}}}
		writeEvent(w, &chunk)
		flusher.Flush()
		sent++
		return r.Context().Err() == nil
	}
	empty := ""
	if !send(aigrid.Delta{Role: aigrid.RoleAssistant, Content: &empty}, nil, nil) {
		return
	}
	finish := aigrid.FinishStop
	if call != nil {
		finish = aigrid.FinishToolCalls
		zero := 0
		head := aigrid.ToolCall{Index: &zero, ID: call.ID, Type: "function", Function: aigrid.FunctionCall{Name: call.Function.Name}}
		if !send(aigrid.Delta{ToolCalls: []aigrid.ToolCall{head}}, nil, nil) {
			return
		}
		for _, piece := range split(call.Function.Arguments, 3) {
			frag := aigrid.ToolCall{Index: &zero, Function: aigrid.FunctionCall{Arguments: piece}}
			if !send(aigrid.Delta{ToolCalls: []aigrid.ToolCall{frag}}, nil, nil) {
				return
			}
		}
	} else {
		for _, word := range strings.SplitAfter(reply, " ") {
			var lp *aigrid.Logprobs
			if req.Logprobs {
				lp = logprobs([]string{word}, req.TopLogprobs)
			}
			if !send(aigrid.Delta{Content: &word}, nil, lp) {
				return
			}
		}
	}
	if !send(aigrid.Delta{}, &finish, nil) {
		return
	}
	if usage != nil && req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		writeEvent(w, &aigrid.ChatChunk{ID: "chatcmpl-up", Object: "chat.completion.chunk", Created: created, Model: req.Model,
			Choices: []aigrid.ChunkChoice{}, Usage: usage})
	}
	io.WriteString(w, "data: [DONE]\n\n")
	flusher.Flush()
}

func writeEvent(w io.Writer, v any) {
	b, _ := json.Marshal(v)
	io.WriteString(w, "data: ")
	w.Write(b)
	io.WriteString(w, "\n\n")
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req aigrid.EmbeddingRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.")
		return
	}
	b, ok := s.behaviour(req.Model)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	if b.Status != 0 && b.Status != http.StatusOK {
		writeError(w, b.Status, b.ErrorMessage)
		return
	}
	dims := b.Dimensions
	if dims == 0 {
		dims = 8
	}
	inputs := req.Input.Texts
	for _, toks := range req.Input.Tokens {
		inputs = append(inputs, fmt.Sprint(toks))
	}
	resp := aigrid.EmbeddingResponse{Object: "list", Model: req.Model}
	for i, text := range inputs {
		vec := Vector(text, dims)
		var raw []byte
		if req.EncodingFormat == "base64" {
			buf := make([]byte, 4*len(vec))
			for j, v := range vec {
				binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
			}
			raw, _ = json.Marshal(base64.StdEncoding.EncodeToString(buf))
		} else {
			raw, _ = json.Marshal(vec)
		}
		resp.Data = append(resp.Data, aigrid.Embedding{Object: "embedding", Index: i, Embedding: raw})
		resp.Usage.PromptTokens += words(text)
	}
	resp.Usage.TotalTokens = resp.Usage.PromptTokens
	if b.NoUsage {
		resp.Usage = aigrid.Usage{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&resp)
}

// Vector is the embedding the server gives a text: unit length, seeded by the text's hash.
func Vector(text string, dims int) []float32 {
	h := fnv.New64a()
	h.Write([]byte(text))
	x := h.Sum64()
	vec := make([]float32, dims)
	var norm float64
	for i := range vec {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		v := float64(int64(x%2001)-1000) / 1000
		vec[i] = float32(v)
		norm += v * v
	}
	norm = math.Sqrt(norm)
	for i := range vec {
		if norm > 0 {
			vec[i] = float32(float64(vec[i]) / norm)
		}
	}
	return vec
}

func logprobs(tokens []string, top *int) *aigrid.Logprobs {
	lp := &aigrid.Logprobs{Content: []aigrid.TokenLogprob{}}
	for i, t := range tokens {
		entry := aigrid.TokenLogprob{Token: t, Logprob: -0.1 * float64(i%5+1), Bytes: byteList(t), TopLogprobs: []aigrid.TopLogprob{}}
		if top != nil {
			for k := 0; k < *top; k++ {
				alt := fmt.Sprintf("%s~%d", strings.TrimSpace(t), k)
				entry.TopLogprobs = append(entry.TopLogprobs, aigrid.TopLogprob{Token: alt, Logprob: entry.Logprob - float64(k+1), Bytes: byteList(alt)})
			}
		}
		lp.Content = append(lp.Content, entry)
	}
	return lp
}

func byteList(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}

func lastUser(req *aigrid.ChatRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == aigrid.RoleUser {
			return req.Messages[i].Content.String()
		}
	}
	return ""
}

// split cuts s into n pieces of about equal length.
func split(s string, n int) []string {
	var out []string
	size := (len(s) + n - 1) / n
	for len(s) > 0 {
		k := min(size, len(s))
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}

func sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
