package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"aigrid"
)

func strp(s string) *string { return &s }

func chunkCases() []*aigrid.ChatChunk {
	stop := "stop"
	return []*aigrid.ChatChunk{
		{ID: "chatcmpl-1", Object: "chat.completion.chunk", Created: 1732400000, Model: "chat",
			Choices: []aigrid.ChunkChoice{{Delta: aigrid.Delta{Role: "assistant", Content: strp("")}}}},
		{ID: "x", Object: "o", Model: "m", Choices: []aigrid.ChunkChoice{}},
		{ID: "x", Object: "o", Model: "m"},
		{ID: "é\"\\<>&\u2028\u2029\x00\x1f\t\n\r\b\f\x7f", Created: -5, Model: "bad\xff\xfeutf8",
			Choices: []aigrid.ChunkChoice{{Index: 3, FinishReason: &stop,
				Delta: aigrid.Delta{Content: strp("日本語 🌍 </script>"), ReasoningContent: strp("think"), Refusal: strp("no")}}}},
		{ID: "t", Choices: []aigrid.ChunkChoice{
			{Delta: aigrid.Delta{ToolCalls: []aigrid.ToolCall{{Index: new(int), ID: "call_1", Type: "function",
				Function: aigrid.FunctionCall{Name: "get_weather", Arguments: `{"city":"Nairobi"}`}}}}},
			{Index: 1, Delta: aigrid.Delta{Refusal: strp("r")}, Logprobs: &aigrid.Logprobs{Content: []aigrid.TokenLogprob{
				{Token: "a", Logprob: -0.25, Bytes: []int{97}, TopLogprobs: []aigrid.TopLogprob{{Token: "b", Logprob: -1.5}}}}}},
		}},
		{ID: "u", Choices: []aigrid.ChunkChoice{}, Usage: &aigrid.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15},
			SystemFingerprint: "fp_1"},
		{ID: "d", Choices: []aigrid.ChunkChoice{}, Usage: &aigrid.Usage{PromptTokens: -1, CompletionTokens: 1 << 40, TotalTokens: 0,
			PromptTokensDetails: &aigrid.PromptTokensDetails{CachedTokens: 7}, CompletionTokensDetails: &aigrid.CompletionTokensDetails{}}},
	}
}

// appendChunk appends a whole chunk as the stream writer does: its
// envelope, then the rest.
func appendChunk(dst []byte, c *aigrid.ChatChunk) ([]byte, error) {
	return appendChunkRest(appendChunkHead(dst, c.ID, c.Object, c.Created, c.Model), c)
}

// The hand-written encoder must write exactly what encoding/json writes.
func TestAppendChunkMatchesEncodingJSON(t *testing.T) {
	for i, c := range chunkCases() {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendChunk(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("case %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

// appendUsage writes the JSON fields of aigrid.Usage one by one: one more
// must be written there too.
func TestAppendUsageFields(t *testing.T) {
	typ, n := reflect.TypeFor[aigrid.Usage](), 0
	for i := range typ.NumField() {
		if typ.Field(i).Tag.Get("json") != "-" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("aigrid.Usage has %d JSON fields; appendUsage writes 5", n)
	}
}

func BenchmarkAppendChunk(b *testing.B) {
	c := chunkCases()[0]
	c.Choices[0].Delta.Content = strp(" the")
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = appendChunk(buf[:0], c)
	}
}

// Raw choices are copied as they are, in the place of the choices encoded.
func TestAppendChunkRaw(t *testing.T) {
	for _, c := range chunkCases() {
		if len(c.Choices) == 0 || c.Choices[0].Logprobs != nil || len(c.Choices[0].Delta.ToolCalls) > 0 {
			continue
		}
		want, err := appendChunk(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		choices, _ := json.Marshal(c.Choices)
		c.Choices, c.Raw = nil, aigrid.RawChoices{JSON: choices, Count: 1}
		got, err := appendChunk(nil, c)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("raw:\n got %s\nwant %s", got, want)
		}
	}
}
