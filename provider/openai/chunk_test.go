package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

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

// decodeUsage reads the fields of aigrid.Usage one by one: one more field
// must be read there too.
func TestDecodeUsageFields(t *testing.T) {
	if n := reflect.TypeFor[aigrid.Usage]().NumField(); n != 5 {
		t.Errorf("aigrid.Usage has %d fields; decodeUsage reads 5", n)
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
