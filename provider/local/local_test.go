package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aigrid"
	"aigrid/engine/model"
)

// tiny has a synthetic vocabulary and a ChatML template, so that the tests
// never depend on shared data.
func tiny(t testing.TB) string {
	t.Helper()
	v := model.SyntheticVocabulary(400)
	v.Template = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
	path := filepath.Join(t.TempDir(), "tiny.gguf")
	spec := model.Spec{Arch: "qwen2", Quant: "Q8_0", Dim: 64, Layers: 2, FFN: 128, Heads: 4, KVHeads: 2,
		Context: 256, Seed: 7, LogitScale: 10, Vocabulary: v}
	if err := model.WriteRandom(path, spec); err != nil {
		t.Fatal(err)
	}
	return path
}

func provider(t *testing.T, offers ...aigrid.Offer) *Provider {
	t.Helper()
	p, err := New(&aigrid.ProviderConfig{Name: "here", Kind: aigrid.KindLocal, Offers: offers}, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func ptr[T any](v T) *T { return &v }

func ask(text string) *aigrid.ChatRequest {
	return &aigrid.ChatRequest{Model: "tiny", Messages: []aigrid.Message{
		{Role: aigrid.RoleSystem, Content: aigrid.TextContent("Be brief.")},
		{Role: aigrid.RoleUser, Content: aigrid.TextContent(text)},
	}}
}

func TestNewRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.gguf")
	os.WriteFile(junk, []byte("not a model at all"), 0o600)
	for _, c := range []struct {
		offer aigrid.Offer
		want  string
	}{
		{aigrid.Offer{Model: "a"}, "needs the path"},
		{aigrid.Offer{Model: "a", Path: filepath.Join(dir, "missing.gguf")}, "missing.gguf"},
		{aigrid.Offer{Model: "a", Path: junk}, "junk.gguf"},
		{aigrid.Offer{Model: "a", Path: tiny(t), ContextLength: 1000}, "context_length 1000 is more than the model's 256"},
	} {
		_, err := New(&aigrid.ProviderConfig{Name: "here", Kind: aigrid.KindLocal, Offers: []aigrid.Offer{c.offer}}, Options{Threads: 1})
		if aigrid.ErrorCode(err) != aigrid.EInvalid || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.offer, err, c.want)
		}
	}
}

// A KV budget smaller than one context shortens every request's context,
// and the 400 its clients get names only the shorter length: the start warns
// the operator, naming both.
func TestSmallBudgetWarns(t *testing.T) {
	path := tiny(t)
	for _, c := range []struct {
		budget int64
		warn   bool
	}{{64 * 512, true}, {0, false}} {
		var logs bytes.Buffer
		p, err := New(&aigrid.ProviderConfig{Name: "here", Kind: aigrid.KindLocal, Offers: []aigrid.Offer{{Model: "tiny", Path: path, Serves: []string{"chat"}}}},
			Options{Threads: 1, KVBudget: c.budget, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		got := logs.String()
		if warned := strings.Contains(got, "less than one context"); warned != c.warn ||
			c.warn && (!strings.Contains(got, `"tokens":64`) || !strings.Contains(got, `"context_length":256`)) {
			t.Errorf("budget %d: log %q", c.budget, got)
		}
	}
}

func TestChat(t *testing.T) {
	offer := aigrid.Offer{Model: "tiny", Path: tiny(t)}
	p := provider(t, offer)
	ctx := context.Background()

	req := ask("hello there")
	req.MaxTokens, req.Seed, req.Logprobs, req.TopLogprobs = ptr(12), ptr(int64(42)), true, ptr(3)
	whole, err := p.Chat(ctx, &offer, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	// As clients see it: JSON shows stray bytes of a random model's
	// output as U+FFFD.
	roundTrip(t, whole)
	c := whole.Choices[0]
	u := whole.Usage
	if u == nil || u.PromptTokens < 10 || u.CompletionTokens < 1 || u.CompletionTokens > 12 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Fatalf("usage %+v", u)
	}
	if c.FinishReason != "length" && c.FinishReason != "stop" || c.Message.Role != "assistant" {
		t.Fatalf("choice %+v", c)
	}
	if c.Logprobs == nil || len(c.Logprobs.Content) == 0 || len(c.Logprobs.Content) > u.CompletionTokens {
		t.Fatalf("logprobs %+v for %d tokens", c.Logprobs, u.CompletionTokens)
	}
	var joined string
	for _, e := range c.Logprobs.Content {
		joined += e.Token
		if e.Logprob > 0 || len(e.TopLogprobs) != 3 || e.TopLogprobs[0].Logprob < e.TopLogprobs[2].Logprob || e.Logprob > e.TopLogprobs[0].Logprob+1e-6 {
			t.Errorf("entry %+v", e)
		}
		if strings.ToValidUTF8(string(bytesOf(e.Bytes)), "\uFFFD") != e.Token {
			t.Errorf("bytes %v of %q", e.Bytes, e.Token)
		}
	}
	if !strings.HasPrefix(joined, c.Message.Content.String()) {
		t.Errorf("logprob tokens %q do not spell %q", joined, c.Message.Content.String())
	}

	// The same seed streamed: the same text, in chunks, then the finish and usage.
	req.Stream = true
	var chunks []aigrid.ChatChunk
	sum, err := p.Chat(ctx, &offer, req, func(ch *aigrid.ChatChunk) error {
		cp := *ch // the chunk is reused: keep a copy
		roundTrip(t, &cp)
		chunks = append(chunks, cp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 3 || chunks[0].Choices[0].Delta.Role != "assistant" {
		t.Fatalf("chunks %+v", chunks)
	}
	var text strings.Builder
	entries := 0
	for _, ch := range chunks[:len(chunks)-2] {
		if d := ch.Choices[0].Delta.Content; d != nil {
			text.WriteString(*d)
		}
		if lp := ch.Choices[0].Logprobs; lp != nil {
			entries += len(lp.Content)
		}
	}
	fin, last := chunks[len(chunks)-2], chunks[len(chunks)-1]
	if text.String() != c.Message.Content.String() || entries != len(c.Logprobs.Content) {
		t.Errorf("stream %q with %d logprobs, whole %q with %d", text.String(), entries, c.Message.Content.String(), len(c.Logprobs.Content))
	}
	if fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != c.FinishReason {
		t.Errorf("finish chunk %+v", fin)
	}
	// The same prompt again: all of it but the last token from the cache.
	same := func(v *aigrid.Usage) bool {
		return v != nil && v.PromptTokens == u.PromptTokens && v.CompletionTokens == u.CompletionTokens && v.TotalTokens == u.TotalTokens &&
			v.PromptTokensDetails != nil && v.PromptTokensDetails.CachedTokens == u.PromptTokens-1
	}
	if len(last.Choices) != 0 || !same(last.Usage) || !same(sum.Usage) || u.PromptTokensDetails.CachedTokens != 0 {
		t.Errorf("usage chunk %+v, returned %+v, first %+v", last.Usage, sum.Usage, u)
	}

	// Greedy answers stop at a stop string.
	req = ask("hello there")
	req.Temperature, req.MaxTokens = ptr(0.0), ptr(20)
	greedy, err := p.Chat(ctx, &offer, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out := greedy.Choices[0].Message.Content.String(); len(out) > 4 {
		req.Stop = aigrid.Stop{out[2:4]}
		cut, err := p.Chat(ctx, &offer, req, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := out[:strings.Index(out, out[2:4])]
		if got := cut.Choices[0].Message.Content.String(); got != want || cut.Choices[0].FinishReason != "stop" {
			t.Errorf("stop %q: %q (%s), want %q", out[2:4], got, cut.Choices[0].FinishReason, want)
		}
	}
}

func TestChatRefusals(t *testing.T) {
	offer := aigrid.Offer{Model: "tiny", Path: tiny(t)}
	p := provider(t, offer)
	long := ask(strings.Repeat("words and more words ", 100))
	image := ask("look")
	image.Messages[1].Content = &aigrid.Content{Parts: []aigrid.ContentPart{{Type: aigrid.PartImageURL, ImageURL: &aigrid.ImageURL{URL: "data:image/png;base64,AAAA"}}}}
	for _, c := range []struct {
		name  string
		edit  func(*aigrid.ChatRequest)
		param string
	}{
		{"n", func(r *aigrid.ChatRequest) { r.N = ptr(2) }, "n"},
		{"json", func(r *aigrid.ChatRequest) { r.ResponseFormat = &aigrid.ResponseFormat{Type: "json_object"} }, "response_format"},
		{"tools", func(r *aigrid.ChatRequest) {
			r.Tools = []aigrid.Tool{{Type: "function", Function: aigrid.FunctionDecl{Name: "f"}}}
		}, "tools"},
		{"image", func(r *aigrid.ChatRequest) { *r = *image }, "messages[1].content[0].type"},
		{"bias", func(r *aigrid.ChatRequest) { r.LogitBias = map[string]float64{"99999": 5} }, "logit_bias"},
		{"context", func(r *aigrid.ChatRequest) { *r = *long }, "messages"},
		{"context with output", func(r *aigrid.ChatRequest) { r.MaxTokens = ptr(250) }, "messages"},
	} {
		req := ask("hi")
		c.edit(req)
		_, err := p.Chat(context.Background(), &offer, req, nil)
		var e *aigrid.Error
		if !errors.As(err, &e) || e.Code != aigrid.EInvalid || e.Param != c.param {
			t.Errorf("%s: %#v", c.name, err)
		}
	}
}

func TestEmbed(t *testing.T) {
	offer := aigrid.Offer{Model: "tiny", Path: tiny(t), Capabilities: []string{aigrid.CapEmbeddings}}
	p := provider(t, offer)
	req := &aigrid.EmbeddingRequest{Model: "tiny", Input: aigrid.EmbeddingInput{Texts: []string{"the rain in spain", "stays"}}}
	resp, err := p.Embed(context.Background(), &offer, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || resp.Usage.PromptTokens < 4 || resp.Usage.TotalTokens != resp.Usage.PromptTokens {
		t.Fatalf("%d vectors, usage %+v", len(resp.Data), resp.Usage)
	}
	var vec []float32
	if err := json.Unmarshal(resp.Data[0].Embedding, &vec); err != nil || len(vec) != 64 {
		t.Fatal(err, len(vec))
	}
	norm := 0.0
	for _, v := range vec {
		norm += float64(v) * float64(v)
	}
	if math.Abs(norm-1) > 1e-4 {
		t.Errorf("norm² %g", norm)
	}

	req.EncodingFormat = "base64"
	resp, err = p.Embed(context.Background(), &offer, req)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	json.Unmarshal(resp.Data[0].Embedding, &s)
	b, _ := base64.StdEncoding.DecodeString(s)
	if len(b) != 4*64 || math.Float32frombits(binary.LittleEndian.Uint32(b)) != vec[0] {
		t.Errorf("base64 of %d bytes", len(b))
	}

	req.Dimensions = ptr(32)
	if _, err := p.Embed(context.Background(), &offer, req); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("dimensions: %v", err)
	}
	req = &aigrid.EmbeddingRequest{Model: "tiny", Input: aigrid.EmbeddingInput{Tokens: [][]int64{{1, 5000}}}}
	if _, err := p.Embed(context.Background(), &offer, req); aigrid.ErrorCode(err) != aigrid.EInvalid {
		t.Errorf("unknown token: %v", err)
	}
}

func TestClose(t *testing.T) {
	offer := aigrid.Offer{Model: "tiny", Path: tiny(t)}
	p := provider(t, offer)
	if err := p.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Probe(context.Background()); err == nil {
		t.Error("probe of a closed provider succeeds")
	}
	if _, err := p.Chat(context.Background(), &offer, ask("hi"), nil); aigrid.ErrorCode(err) != aigrid.EUnavailable {
		t.Errorf("chat after close: %v", err)
	}
}

// roundTrip replaces *v with its JSON encoding decoded.
func roundTrip[T any](t *testing.T, v *T) {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	*v = *new(T)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func bytesOf(b []int) []byte {
	out := make([]byte, len(b))
	for i, v := range b {
		out[i] = byte(v)
	}
	return out
}

// Any conversation and stop strings give an answer or a clear error, never a
// panic, and the answer never shows a stop string.
func FuzzChat(f *testing.F) {
	f.Add("hello there", "system text", "ab", "e")
	f.Add("<|im_start|>user\n<|im_end|>", "", "<|im_end|>", "\xff")
	f.Add("", "日本語 ✓", "", "x")
	path := tiny(f)
	offer := aigrid.Offer{Model: "tiny", Path: path}
	p, err := New(&aigrid.ProviderConfig{Name: "here", Kind: aigrid.KindLocal, Offers: []aigrid.Offer{offer}}, Options{Threads: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	f.Fuzz(func(t *testing.T, user, system, stop1, stop2 string) {
		req := &aigrid.ChatRequest{Model: "tiny", Messages: []aigrid.Message{
			{Role: aigrid.RoleSystem, Content: aigrid.TextContent(system)},
			{Role: aigrid.RoleUser, Content: aigrid.TextContent(user)},
		}, MaxTokens: ptr(6), Stop: aigrid.Stop{stop1, stop2}, Seed: ptr(int64(len(user)))}
		resp, err := p.Chat(context.Background(), &offer, req, nil)
		if err != nil {
			if aigrid.ErrorCode(err) != aigrid.EInvalid {
				t.Fatalf("%v", err)
			}
			return
		}
		out := resp.Choices[0].Message.Content.String()
		for _, s := range req.Stop {
			if s != "" && strings.Contains(out, s) {
				t.Fatalf("answer %q shows the stop %q", out, s)
			}
		}
	})
}
