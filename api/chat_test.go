package api

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aigrid"
	"aigrid/dispatch"
	"aigrid/internal/wirecount"
	"aigrid/provider/openai"
	"aigrid/sqlite"
)

// chatFunc is a dispatcher that serves every chat with one function.
type chatFunc func(emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error)

func (f chatFunc) Chat(_ context.Context, _ *aigrid.Call, _ *aigrid.ChatRequest, emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
	return f(emit)
}

func (chatFunc) Embed(context.Context, *aigrid.Call, *aigrid.EmbeddingRequest) (*aigrid.EmbeddingResponse, error) {
	return nil, aigrid.Errorf(aigrid.EInvalid, "no embeddings here")
}

func (chatFunc) Models(*aigrid.Tenant) []string { return []string{"chat"} }

// streamServer serves d with one tenant key, and counts its writes.
func streamServer(t *testing.T, d aigrid.Dispatcher) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	store, err := sqlite.Open(filepath.Join(t.TempDir(), "aigrid.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	tenant := &aigrid.Tenant{Name: "clinic"}
	if err := store.CreateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKey(ctx, &aigrid.Key{TenantID: tenant.ID, Hint: "x", Hash: aigrid.HashKey("sk-test-0001")}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(New(Config{Store: store, Dispatcher: d}))
	counted := wirecount.New(srv.Listener)
	srv.Listener = counted
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &counted.Writes
}

func postStream(t *testing.T, srv *httptest.Server) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer sk-test-0001")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	return resp
}

func content(s string, more bool) *aigrid.ChatChunk {
	return &aigrid.ChatChunk{Choices: []aigrid.ChunkChoice{{Delta: aigrid.Delta{Content: &s}}}, More: more}
}

func finish(more bool) *aigrid.ChatChunk {
	stop := "stop"
	return &aigrid.ChatChunk{Choices: []aigrid.ChunkChoice{{FinishReason: &stop}}, More: more}
}

func usage() *aigrid.ChatChunk {
	return &aigrid.ChatChunk{Choices: []aigrid.ChunkChoice{}, Usage: &aigrid.Usage{PromptTokens: 2, CompletionTokens: 3, TotalTokens: 5}}
}

// A chunk the provider had to wait for reaches the client before the
// provider sends the next: the client gets chunk k while the upstream holds
// k+1 back until it has been read.
func TestStreamFlushesEachChunk(t *testing.T) {
	const n = 4
	read := make(chan int, n)
	srv, _ := streamServer(t, chatFunc(func(emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
		for k := range n {
			if err := emit(content("w"+strconv.Itoa(k), false)); err != nil {
				return nil, err
			}
			select {
			case got := <-read:
				if got != k {
					return nil, aigrid.Errorf(aigrid.EInternal, "client read chunk %d after chunk %d was sent", got, k)
				}
			case <-time.After(5 * time.Second):
				return nil, aigrid.Errorf(aigrid.EInternal, "chunk %d did not reach the client", k)
			}
		}
		emit(finish(false))
		emit(usage())
		return &aigrid.ChatResponse{}, nil
	}))
	resp := postStream(t, srv)
	defer resp.Body.Close()
	k, tail := readPaced(resp.Body, n, read)
	if k != n || len(tail) != 3 || !strings.Contains(tail[0], `"finish_reason":"stop"`) ||
		!strings.Contains(tail[1], `"total_tokens":5`) || tail[2] != "data: [DONE]\n" {
		t.Errorf("%d content chunks, then %q", k, tail)
	}
}

// A completion that arrives whole (every chunk but the last with More set)
// leaves in one network write, with the end of the chunked body; before,
// the first chunk, the last batch, [DONE] and the end took one each.
func TestStreamBurstOneWrite(t *testing.T) {
	srv, writes := streamServer(t, chatFunc(func(emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
		for k := range 8 {
			if err := emit(content("w"+strconv.Itoa(k), true)); err != nil {
				return nil, err
			}
		}
		emit(finish(true))
		emit(usage())
		return &aigrid.ChatResponse{}, nil
	}))
	for range 3 {
		before := writes.Load()
		resp := postStream(t, srv)
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if got := writes.Load() - before; got != 1 || strings.Count(body.String(), "data: ") != 11 || !strings.HasSuffix(body.String(), "data: [DONE]\n\n") {
			t.Fatalf("%d writes for %q", got, body.String())
		}
	}
}

// Through the whole path (dispatch, the openai provider, its transport and
// event reader, the writer), a real upstream that waits after each chunk
// sees the client receive it before it sends the next.
func TestStreamSlowUpstream(t *testing.T) {
	const n = 4
	read := make(chan int, n)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for k := range n {
			fmt.Fprintf(w, "data: {\"id\":\"u\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"w%d\"},\"finish_reason\":null}]}\n\n", k)
			w.(http.Flusher).Flush()
			select {
			case got := <-read:
				if got != k {
					return
				}
			case <-time.After(5 * time.Second):
				return // chunk k did not reach the client: the stream ends early
			}
		}
		io.WriteString(w, "data: {\"id\":\"u\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n")
		io.WriteString(w, "data: {\"id\":\"u\",\"choices\":[],\"usage\":{\"prompt_tokens\":2,\"completion_tokens\":4,\"total_tokens\":6}}\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	d := dispatch.New(func(cfg *aigrid.ProviderConfig) (aigrid.Provider, error) { return openai.New(cfg) }, nil, dispatch.Settings{})
	defer d.Close()
	if err := d.Set(&aigrid.ProviderConfig{Name: "up", Kind: aigrid.KindOpenAI, BaseURL: up.URL + "/v1",
		Offers: []aigrid.Offer{{Model: "m", Serves: []string{"chat"}}}}); err != nil {
		t.Fatal(err)
	}
	srv, _ := streamServer(t, d)
	resp := postStream(t, srv)
	defer resp.Body.Close()
	k, tail := readPaced(resp.Body, n, read)
	if k != n || len(tail) != 3 || !strings.Contains(tail[0], `"finish_reason":"stop"`) ||
		!strings.Contains(tail[1], `"total_tokens":6`) || tail[2] != "data: [DONE]\n" {
		t.Errorf("%d content chunks in time, then %q", k, tail)
	}
}

// readPaced reads a stream's events: while the next is content chunk k
// ("wk") of the first n, it tells read that k arrived, so that the sender
// may go on; every other event is returned in tail.
func readPaced(body io.Reader, n int, read chan<- int) (k int, tail []string) {
	r := bufio.NewReader(body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return k, tail
		}
		switch {
		case !strings.HasPrefix(line, "data: "):
		case k < n && strings.Contains(line, `"content":"w`+strconv.Itoa(k)+`"`):
			read <- k
			k++
		default:
			tail = append(tail, line)
		}
	}
}

// Raw choices go out as they came; a final chunk of them waits for [DONE],
// and the usage it carries is left out for a client that did not ask for it.
func TestStreamRawChoices(t *testing.T) {
	text := `[{"index":0,"delta":{"content":"\u00e9 </b>"},"finish_reason":null}]`
	stop := `[{"index":0,"delta":{},"finish_reason":"stop"}]`
	srv, writes := streamServer(t, chatFunc(func(emit func(*aigrid.ChatChunk) error) (*aigrid.ChatResponse, error) {
		if err := emit(&aigrid.ChatChunk{Raw: aigrid.RawChoices{JSON: []byte(text), Count: 1, Output: true}}); err != nil {
			return nil, err
		}
		return &aigrid.ChatResponse{}, emit(&aigrid.ChatChunk{Raw: aigrid.RawChoices{JSON: []byte(stop), Count: 1, Finished: 1},
			Usage: &aigrid.Usage{PromptTokens: 2, CompletionTokens: 1, TotalTokens: 3}})
	}))
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer sk-test-0001")
	before := writes.Load()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if len(events) != 3 || !strings.HasSuffix(events[0], `"model":"chat","choices":`+text+"}") ||
		!strings.HasSuffix(events[1], `"model":"chat","choices":`+stop+"}") || events[2] != "data: [DONE]" {
		t.Errorf("streamed %q", events)
	}
	// One write for the first chunk, flushed; one for the rest.
	if got := writes.Load() - before; got != 2 {
		t.Errorf("%d writes", got)
	}
}
