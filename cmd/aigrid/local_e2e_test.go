package main

import (
	"context"
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"aigrid/engine/model"
)

// startLocalGrid serves a tiny random-weight model with a synthetic
// vocabulary through the embedded engine (the real vocabularies make the
// model too slow to write and run under -race; provider/local tests them).
// The offer holds one context of 512 tokens of cache at a time.
func startLocalGrid(t *testing.T) (*grid, openai.Client) {
	t.Helper()
	spec := model.Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2,
		Vocab: 400, Context: 512, Seed: 11, LogitScale: 10}
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	if err := model.WriteRandom(path, spec); err != nil {
		t.Fatal(err)
	}
	g := startGrid(t, `
providers:
  - name: here
    kind: local
    probe_interval: 50ms
    offers:
      - {model: tiny, path: `+path+`, serves: [chat], context_length: 512, max_concurrency: 1}
      - {model: tiny, path: `+path+`, serves: [embed], capabilities: [embeddings]}
tenants:
  - name: school
    keys: [`+tenantKey+`]
`)
	return g, openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey(tenantKey), option.WithMaxRetries(0))
}

func TestLocalChat(t *testing.T) {
	_, client := startLocalGrid(t)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "chat", Messages: user("habari ya asubuhi"),
		Temperature: openai.Float(0), MaxTokens: openai.Int(12), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2)}
	resp, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	c := resp.Choices[0]
	u := resp.Usage
	if u.PromptTokens < 10 || u.CompletionTokens < 1 || u.CompletionTokens > 12 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v", u)
	}
	if c.FinishReason != "length" && c.FinishReason != "stop" || resp.Model != "chat" {
		t.Errorf("finish %q model %q", c.FinishReason, resp.Model)
	}
	if n := len(c.Logprobs.Content); n < 1 || n > int(u.CompletionTokens) || len(c.Logprobs.Content[0].TopLogprobs) != 2 ||
		c.Logprobs.Content[0].Logprob > 0 || c.Logprobs.Content[0].TopLogprobs[0].Logprob < c.Logprobs.Content[0].TopLogprobs[1].Logprob {
		t.Errorf("logprobs %+v", c.Logprobs.Content)
	}

	// Streamed greedily: the same text, the usage at the end.
	params = openai.ChatCompletionNewParams{Model: "chat", Messages: user("habari ya asubuhi"), Temperature: openai.Float(0), MaxTokens: openai.Int(12)}
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != c.Message.Content || acc.Choices[0].FinishReason != c.FinishReason {
		t.Errorf("streamed %q (%s), whole %q (%s)", got, acc.Choices[0].FinishReason, c.Message.Content, c.FinishReason)
	}
	if acc.Usage.PromptTokens != u.PromptTokens || acc.Usage.CompletionTokens != u.CompletionTokens {
		t.Errorf("streamed usage %+v, whole %+v", acc.Usage, u)
	}

	// The end-of-text token ends the answer: finish "stop", no text.
	resp, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user("hi"),
		LogitBias: map[string]int64{"2": 100}})
	if err != nil {
		t.Fatal(err)
	}
	if c := resp.Choices[0]; c.FinishReason != "stop" || c.Message.Content != "" || resp.Usage.CompletionTokens != 1 {
		t.Errorf("at the end of text: %q (%s), usage %+v", c.Message.Content, c.FinishReason, resp.Usage)
	}

	// What the engine cannot do is a 400 that says so.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user("hi"),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "JSON") {
		t.Errorf("json_object: %v", err)
	}
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user(strings.Repeat("many words ", 300))})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "maximum context length is 512") {
		t.Errorf("too long: %v", err)
	} else if apiErr.Param != "messages" {
		t.Errorf("too long: param %q", apiErr.Param)
	}
}

func TestLocalEmbeddings(t *testing.T) {
	g, client := startLocalGrid(t)
	emb, err := client.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"mvua kubwa", "ukame"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 64 || emb.Usage.PromptTokens < 2 || emb.Model != "embed" {
		t.Fatalf("embeddings %+v", emb.Usage)
	}
	for _, d := range emb.Data {
		norm := 0.0
		for _, v := range d.Embedding {
			norm += v * v
		}
		if math.Abs(norm-1) > 1e-4 {
			t.Errorf("vector %d: norm² %g", d.Index, norm)
		}
	}

	// The grid's probes (every 50 ms here) find the provider up.
	time.Sleep(300 * time.Millisecond)
	var ex struct {
		Offers []struct {
			Health string `json:"health"`
			In     bool   `json:"in"`
		} `json:"offers"`
	}
	g.do("GET", "/admin/v1/dispatch/embed", g.adminKey, nil, &ex)
	if len(ex.Offers) != 1 || ex.Offers[0].Health != "closed" || !ex.Offers[0].In || strings.Contains(g.logs.String(), "probe failed") {
		t.Errorf("after probes: %+v", ex.Offers)
	}
}

// A client that leaves mid-stream frees the model at once: the offer holds one
// context of cache, which the next request needs whole.
func TestLocalDisconnect(t *testing.T) {
	_, client := startLocalGrid(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user("tell me a long story")})
	chunks := 0
	for stream.Next() {
		if chunks++; chunks == 3 {
			cancel()
			break
		}
	}
	stream.Close()
	if chunks != 3 {
		t.Fatalf("stream ended after %d chunks: %v", chunks, stream.Err())
	}
	start := time.Now()
	resp, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "chat", Messages: user("and now?"), MaxTokens: openai.Int(3)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Usage.CompletionTokens < 1 || time.Since(start) > 5*time.Second {
		t.Errorf("after the disconnect: %+v in %s", resp.Usage, time.Since(start))
	}
}

// A provider that cannot load is refused by the admin API and not stored:
// it was stored first, and the next start stopped on it. One stored that
// no longer loads (its model file moved away) is left out at the next start,
// which serves on, so that the operator can remove or fix it.
func TestBrokenProviderNeitherStoredNorFatal(t *testing.T) {
	const config = "admin_keys: [sk-admin-0123456789abcdef]\n"
	const admin = "sk-admin-0123456789abcdef"
	data := filepath.Join(t.TempDir(), "data")
	g := startGridIn(t, data, config)
	missing := `{"kind": "local", "offers": [{"model": "m", "path": "` + filepath.Join(t.TempDir(), "missing.gguf") + `", "serves": ["chat"]}]}`
	var e apiError
	if resp := g.do("PUT", "/admin/v1/providers/here", admin, missing, &e); resp.StatusCode != http.StatusBadRequest || !strings.Contains(e.Error.Message, "missing.gguf") {
		t.Fatalf("a missing file: %d %+v", resp.StatusCode, e)
	}
	if resp := g.do("GET", "/admin/v1/providers/here", admin, nil, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the refused provider was stored: %d", resp.StatusCode)
	}

	path := filepath.Join(t.TempDir(), "tiny.gguf")
	spec := model.Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2, Vocab: 400, Context: 512, Seed: 11}
	if err := model.WriteRandom(path, spec); err != nil {
		t.Fatal(err)
	}
	good := `{"kind": "local", "offers": [{"model": "m", "path": "` + path + `", "serves": ["chat"]}]}`
	if resp := g.do("PUT", "/admin/v1/providers/here", admin, good, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("a good provider: %d", resp.StatusCode)
	}
	if err := g.main.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)

	g = startGridIn(t, data, config)
	if !strings.Contains(g.logs.String(), "provider not loaded") {
		t.Errorf("no error logged for the provider that did not load: %s", g.logs.String())
	}
	if resp := g.do("DELETE", "/admin/v1/providers/here", admin, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("remove the broken provider: %d", resp.StatusCode)
	}
}
