package openai

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"aigrid"
)

// The fast decoder must read what encoding/json reads from the chunks that
// OpenAI-compatible servers send.
func TestChunkDecoderMatchesEncodingJSON(t *testing.T) {
	chunks := []string{
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","choices":[{"index":0,"delta":{"content":"Habari \"rafiki\"\n\u00e9\u4e2d\ud83d\ude00 \\ tab\t"},"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","choices":[{"index":0,"delta":{"reasoning_content":"think"},"logprobs":{"content":[{"token":"a","logprob":-0.5,"bytes":[97],"top_logprobs":[]}]},"finish_reason":null}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
		`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1732000000,"model":"qwen","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":3}}}`,
		`{"id":"chatcmpl-1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":null,"total_tokens":21,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":4,"audio_tokens":0},"cost":{"usd":0.1}}}`,
		` { "id" : "x" , "choices" : [ { "index" : 1 , "delta" : { "content" : null , "role" : null } , "finish_reason" : "length" } , {"index":0,"delta":{"content":"two"}} ] , "extra" : {"a":[1,2,{"b":null}]}, "usage": null } `,
	}
	var d chunkDecoder
	for _, raw := range chunks {
		var want aigrid.ChatChunk
		if err := json.Unmarshal([]byte(raw), &want); err != nil {
			t.Fatal(err)
		}
		got, err := d.decode([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(&want)
		if string(g) != string(w) {
			t.Errorf("decoded\n  %s\nencoding/json reads\n  %s", g, w)
		}
	}
}

// decodeUsage reads the JSON fields of aigrid.Usage one by one: one more
// must be read there too.
func TestDecodeUsageFields(t *testing.T) {
	typ, n := reflect.TypeFor[aigrid.Usage](), 0
	for i := range typ.NumField() {
		if typ.Field(i).Tag.Get("json") != "-" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("aigrid.Usage has %d JSON fields; decodeUsage reads 5", n)
	}
}

func TestChunkDecoderRefuses(t *testing.T) {
	var d chunkDecoder
	for _, raw := range []string{``, `{`, `{"id":}`, `{"id":"a"`, `{"choices":[{]}`, `{"id":"a"} x`, `{"created":"x"}`, `{"a":tru}`,
		`{"a":"` + "\x01" + `"}`, `{"a":"\q"}`, `{"a":` + strings.Repeat("[", 1000) + strings.Repeat("]", 1000) + `}`} {
		if _, err := d.decode([]byte(raw)); err == nil {
			t.Errorf("%q accepted", raw)
		}
	}
}

// FuzzChunkDecoder checks that no input panics the decoder, and that any
// chunk encoding/json reads, written back in canonical form, the decoder
// reads the same. (encoding/json also matches keys case-insensitively, which
// no upstream relies on.)
func FuzzChunkDecoder(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}`))
	f.Add([]byte(`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"a":"\ud800\u0041","b":[1e5,-0.5,true,false,null]}`))
	f.Add([]byte(`{"usage":{"prompt_tokens":2,"total_tokens":null,"prompt_tokens_details":{"cached_tokens":1},"completion_tokens_details":null}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d chunkDecoder
		d.decode(raw)
		var want aigrid.ChatChunk
		if json.Unmarshal(raw, &want) != nil {
			return
		}
		canonical, _ := json.Marshal(&want)
		got, err := d.decode(canonical)
		if err != nil {
			t.Fatalf("%s: %v", canonical, err)
		}
		g, _ := json.Marshal(got)
		if string(g) != string(canonical) {
			t.Errorf("decoded\n  %s\nfrom\n  %s", g, canonical)
		}
	})
}

// Choices are relayed raw when they read as what decoding and encoding them
// would write, with the members the encoding leaves out cut; otherwise they
// are decoded.
func TestRelayChoices(t *testing.T) {
	for _, c := range []struct{ in, raw string }{
		{`[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]`, `[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]`},
		// OpenAI's first chunk, and its usual ones.
		{`[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`,
			`[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]`},
		{`[{"index":0,"delta":{"content":" \u00e9\ud83d\ude00\"\/<"},"logprobs":null,"finish_reason":null}]`,
			`[{"index":0,"delta":{"content":" \u00e9\ud83d\ude00\"\/<"},"finish_reason":null}]`},
		{`[{"logprobs":null,"index":0,"delta":{"role":null,"content":null,"tool_calls":null},"finish_reason":"stop"}]`,
			`[{"index":0,"delta":{},"finish_reason":"stop"}]`},
		{`[{"index":0,"delta":{"role":""},"finish_reason":null,"logprobs":null},{"index":1,"delta":{"reasoning_content":"r"},"finish_reason":"length"}]`,
			`[{"index":0,"delta":{},"finish_reason":null},{"index":1,"delta":{"reasoning_content":"r"},"finish_reason":"length"}]`},
		{` [ { "index" : 0 , "logprobs" : null , "delta" : { "refusal" : null , "content" : "a" } , "finish_reason" : null } ] `,
			`[ { "index" : 0 ,  "delta" : {  "content" : "a" } , "finish_reason" : null } ]`},
		// Decoded.
		{`[]`, ``},
		{`null`, ``},
		{`[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":"stop","stop_reason":null}]`, ``},
		{`[{"index":0,"delta":{"content":"hi"}}]`, ``},
		{`[{"delta":{"content":"hi"},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":null,"finish_reason":null}]`, ``},
		{`[{"index":1.0,"delta":{},"finish_reason":null}]`, ``},
		{`[{"index":01,"delta":{},"finish_reason":null}]`, ``},
		{`[{"index":0,"index":0,"delta":{},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{"content":"a","content":null},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{"reasoning":"r"},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{"tool_calls":[]},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{},"logprobs":{"content":[]},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{"content":"\ud83d"},"finish_reason":null}]`, ``},
		{`[{"index":0,"delta":{"content":"\udc00\ud83d"},"finish_reason":null}]`, ``},
		{"[{\"index\":0,\"delta\":{\"content\":\"\xff\"},\"finish_reason\":null}]", ``},
		{"[{\"index\":0,\n\"delta\":{},\"finish_reason\":null}]", ``},
		{"[{\"index\":0,\r\"delta\":{},\"finish_reason\":null}]", ``},
		{`[{"index":0,"delta":{},"finish_reason":null,"logprobs":null},{"index":1,"delta":{"role":null,"content":null,"refusal":null},"logprobs":null,"finish_reason":null},` +
			`{"index":2,"delta":{"role":null,"content":null,"refusal":null},"logprobs":null,"finish_reason":null}]`, ``},
	} {
		var d chunkDecoder
		got, err := d.decode([]byte(`{"id":"c","choices":` + c.in + `,"model":"m"}`))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got.Raw.JSON) != c.raw || got.Model != "m" || got.Raw.JSON != nil && got.Choices != nil {
			t.Errorf("%s\n relayed %q, choices %+v\n    want %q", c.in, got.Raw.JSON, got.Choices, c.raw)
		}
	}
}

// Choices relayed raw must read, as a client reads JSON, as the ones the
// decoder would have made, encoded (as encoding/json writes them: the
// writer's encoding is tested to write the same), and tell what those tell:
// how many choices, how many finished, whether they add output, how much
// text. Choices the encoding writes are relayed raw, byte for byte.
func FuzzRelayChoices(f *testing.F) {
	for _, s := range []string{
		`[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]`,
		`[{"index":0,"delta":{"content":"Habari \"rafiki\"\n\u00e9\u4e2d\ud83d\ude00 \\ tab\t<&>\u2028"},"finish_reason":null}]`,
		`[{"logprobs":null,"index":0,"delta":{"role":null,"content":null,"tool_calls":null},"finish_reason":"stop"}]`,
		`[{"index":3,"delta":{"reasoning_content":"think","refusal":"no"},"finish_reason":"length"},{"index":-0,"delta":{},"finish_reason":null}]`,
		` [ { "index" : 0 , "logprobs" : null , "delta" : { "refusal" : null , "content" : "a" } , "finish_reason" : null } ] `,
		`[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]},"finish_reason":null}]`,
		`[{"index":0,"delta":{"content":"\ud83d\u0041"},"finish_reason":null}]`,
		`[{"index":9223372036854775807,"delta":{"content":"a","content":null},"finish_reason":null}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		chunk := append(append([]byte(`{"id":"c","choices":`), in...), '}')
		var d chunkDecoder
		got, err := d.decode(chunk)
		if err != nil || got.Raw.JSON == nil {
			return
		}
		raw := got.Raw
		// The same choices, decoded.
		var ref chunkDecoder
		s := scanner{data: in, depth: 1}
		if err := ref.decodeChoices(&s); err != nil {
			t.Fatalf("%s relayed raw, but decoding it fails: %v", in, err)
		}
		want, err := json.Marshal(ref.chunk.Choices)
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(raw.JSON, &g); err != nil {
			t.Fatalf("relayed %s from %s: %v", raw.JSON, in, err)
		}
		json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("relayed\n  %s\ndecoded and encoded\n  %s\nfrom\n  %s", raw.JSON, want, in)
		}
		if !utf8.Valid(raw.JSON) || bytes.ContainsAny(raw.JSON, "\r\n") {
			t.Fatalf("relayed %q, which is no line of UTF-8", raw.JSON)
		}
		finished, output, chars := 0, false, 0
		for i := range ref.chunk.Choices {
			c := &ref.chunk.Choices[i]
			if c.FinishReason != nil {
				finished++
			}
			output = output || c.Delta.Content != nil && *c.Delta.Content != "" || c.Delta.ReasoningContent != nil && *c.Delta.ReasoningContent != ""
			chars += deltaChars(&c.Delta)
		}
		if raw.Count != len(ref.chunk.Choices) || raw.Finished != finished || raw.Output != output || d.chars != chars {
			t.Errorf("%s: relayed %+v with %d characters; decoded %d choices, %d finished, output %v, %d characters",
				in, raw, d.chars, len(ref.chunk.Choices), finished, output, chars)
		}
		// The encoding's own form is relayed as it is.
		var again chunkDecoder
		c, err := again.decode(append(append([]byte(`{"choices":`), want...), '}'))
		if err != nil || !bytes.Equal(c.Raw.JSON, want) {
			t.Errorf("the encoding's form of %s\n  %s\nrelayed as\n  %s (%v)", in, want, c.Raw.JSON, err)
		}
	})
}

// BenchmarkChunkDecode decodes a chunk of text as bench/gateway's mock sends
// it, whose choices are relayed raw:
//
//	go test -run X -bench ChunkDecode ./provider/openai
func BenchmarkChunkDecode(b *testing.B) {
	data := []byte(`{"id":"chatcmpl-abc123","object":"chat.completion.chunk","created":1732000000,"model":"qwen2.5-7b-instruct","choices":[{"index":0,"delta":{"content":"word12 "},"finish_reason":null}]}`)
	var d chunkDecoder
	b.ReportAllocs()
	for b.Loop() {
		if c, err := d.decode(data); err != nil || c.Raw.JSON == nil {
			b.Fatal(err)
		}
	}
}

// A decoder that read one chunk reads the next as a fresh one does: it skips
// the bytes the chunks share up to the choices, not what they mean.
func FuzzChunkDecoderAfter(f *testing.F) {
	head := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":`
	f.Add([]byte(head+`[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`), []byte(head+`[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1}}`))
	f.Add([]byte(`{"id":"c","choices":[],"model":"m"}`), []byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}]}`))
	f.Add([]byte(head+`[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`), []byte(`{}`))
	f.Add([]byte(`{"usage":{"total_tokens":2},"choices":[]}`), []byte(`{"usage":{"total_tokens":2},"choices":null}`))
	f.Add([]byte(`{"usage":null,"id":"a","choices":[]}`), []byte(`{"usage":null,"id":"a","choices":[`))
	f.Add([]byte(head+`[]}`), []byte(head+`[] , "choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}], "id":"d" } `))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var d, fresh chunkDecoder
		d.decode(a)
		got, err := d.decode(b)
		want, werr := fresh.decode(b)
		if (err == nil) != (werr == nil) {
			t.Fatalf("after %s, %s reads with error %v; fresh, %v", a, b, err, werr)
		}
		if err != nil {
			return
		}
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		gr, wr := got.Raw, want.Raw
		if !bytes.Equal(g, w) || !bytes.Equal(gr.JSON, wr.JSON) || gr.Count != wr.Count || gr.Finished != wr.Finished ||
			gr.Output != wr.Output || gr.JSON != nil && d.chars != fresh.chars {
			t.Errorf("after %s, %s reads\n  %s %q\nfresh\n  %s %q", a, b, g, got.Raw.JSON, w, want.Raw.JSON)
		}
	})
}
