package openai

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"

	"aigrid"
)

var requestSeeds = []string{
	`{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
	`{"model":"m","messages":[{"role":"system","content":"be <brief> & \"kind\"\n\u2028"},{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:x","detail":"low"}}],"name":"ann"},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}],"refusal":"no","reasoning_content":"hmm"},{"role":"tool","content":"42","tool_call_id":"c1"}],` +
		`"temperature":0.7,"top_p":1e-7,"n":2,"max_tokens":100,"max_completion_tokens":90,"stop":["\n","END"],"seed":-3,"presence_penalty":-2,"frequency_penalty":1e21,` +
		`"logit_bias":{"50256":-100,"1":2.5},"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},"logprobs":true,"top_logprobs":3,"user":"u",` +
		`"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{}}}}],"tool_choice":{"type":"function","function":{"name":"f"}},"parallel_tool_calls":false,"reasoning_effort":"low"}`,
	`{"model":"","messages":[],"stop":"x","temperature":0,"tool_choice":"auto","logit_bias":{}}`,
	`{"messages":null,"temperature":123456789.123,"top_p":0.000001,"frequency_penalty":-1.5e-9}`,
}

// The hand-written encoder writes exactly what encoding/json writes.
func TestAppendChatRequestMatchesEncodingJSON(t *testing.T) {
	for _, raw := range requestSeeds {
		var r aigrid.ChatRequest
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		want, _ := json.Marshal(&r)
		got, err := appendChatRequest(nil, &r)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("got %s (%v)\nwant %s", got, err, want)
		}
	}
	nan := math.NaN()
	if _, err := appendChatRequest(nil, &aigrid.ChatRequest{Temperature: &nan}); err == nil {
		t.Error("NaN encoded")
	}
}

// appendChatRequest writes the fields of aigrid.ChatRequest and
// aigrid.Message one by one: one more field must be written there too.
func TestAppendChatRequestFields(t *testing.T) {
	if n := reflect.TypeFor[aigrid.ChatRequest]().NumField(); n != 22 {
		t.Errorf("aigrid.ChatRequest has %d fields; appendChatRequest writes 22", n)
	}
	if n := reflect.TypeFor[aigrid.Message]().NumField(); n != 7 {
		t.Errorf("aigrid.Message has %d fields; appendMessage writes 7", n)
	}
}

// FuzzAppendChatRequest checks the encoder against encoding/json on any
// request encoding/json reads.
func FuzzAppendChatRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r aigrid.ChatRequest
		if json.Unmarshal(raw, &r) != nil {
			return
		}
		want, werr := json.Marshal(&r)
		got, err := appendChatRequest(nil, &r)
		if (err != nil) != (werr != nil) || err == nil && !bytes.Equal(got, want) {
			t.Errorf("got %s (%v)\nwant %s (%v)", got, err, want, werr)
		}
	})
}

func BenchmarkAppendChatRequest(b *testing.B) {
	var r aigrid.ChatRequest
	json.Unmarshal([]byte(requestSeeds[0]), &r)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 512)
		for b.Loop() {
			buf, _ = appendChatRequest(buf[:0], &r)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			json.Marshal(&r)
		}
	})
}
