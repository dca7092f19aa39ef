package api

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"aigrid"
	"aigrid/internal/openaierr"
)

func TestDecodeChatRequestErrors(t *testing.T) {
	cases := []struct {
		name, body, param, contains string
	}{
		{"empty", ``, "", "empty"},
		{"not json", `{"model": "chat",`, "", "could not parse"},
		{"array", `[1,2]`, "", "must be a JSON object"},
		{"no model", `{"messages":[{"role":"user","content":"hi"}]}`, "model", "model"},
		{"no messages", `{"model":"chat"}`, "messages", "non-empty"},
		{"empty messages", `{"model":"chat","messages":[]}`, "messages", "non-empty"},
		{"messages wrong type", `{"model":"chat","messages":"hi"}`, "messages", "expected an array"},
		{"temperature string", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}`, "temperature", "expected a number"},
		{"temperature range", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":3}`, "temperature", "between 0 and 2"},
		{"bad role", `{"model":"chat","messages":[{"role":"robot","content":"hi"}]}`, "messages[0].role", "not one of"},
		{"missing content", `{"model":"chat","messages":[{"role":"user"}]}`, "messages[0].content", "must have content"},
		{"content number", `{"model":"chat","messages":[{"role":"user","content":5}]}`, "", "string or an array"},
		{"tool without id", `{"model":"chat","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id", "tool_call_id"},
		{"bad part", `{"model":"chat","messages":[{"role":"user","content":[{"type":"video"}]}]}`, "messages[0].content[0].type", "not one of"},
		{"image without url", `{"model":"chat","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages[0].content[0].image_url", "image_url.url"},
		{"too many stops", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"stop":["a","b","c","d","e"]}`, "stop", "at most 4"},
		{"stop number", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"stop":7}`, "", "stop must be"},
		{"top_logprobs alone", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"top_logprobs":3}`, "top_logprobs", "requires logprobs"},
		{"bad tool type", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"web","function":{"name":"f"}}]}`, "tools[0].type", "function"},
		{"tool choice unknown fn", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice", "not among"},
		{"response format", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"yaml"}}`, "response_format.type", "json_schema"},
		{"max tokens zero", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, "max_tokens", "at least 1"},
		{"stream options without stream", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`, "stream_options", "stream is true"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeChatRequest([]byte(c.body))
			if err == nil {
				t.Fatal("accepted")
			}
			e := openaierr.From(err)
			if e.Code != aigrid.EInvalid {
				t.Errorf("code %q, want invalid", e.Code)
			}
			if e.Param != c.param {
				t.Errorf("param %q, want %q", e.Param, c.param)
			}
			if !strings.Contains(e.Message, c.contains) {
				t.Errorf("message %q does not contain %q", e.Message, c.contains)
			}
		})
	}
}

func TestDecodeChatRequestFull(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "chat_full.json"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := decodeChatRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Messages[1].Content.Parts; len(got) != 2 || got[1].ImageURL.URL != "data:image/png;base64,iVBORw0KGgo=" {
		t.Errorf("multi-part content: %+v", got)
	}
	if req.Messages[2].ToolCalls[0].Function.Name != "get_weather" || req.Messages[3].ToolCallID != "call_1" {
		t.Errorf("tool call round trip: %+v", req.Messages[2:])
	}
	if req.Messages[2].Content != nil {
		t.Errorf("null content decoded as %+v", req.Messages[2].Content)
	}
	if len(req.Stop) != 1 || req.Stop[0] != "END" || *req.Seed != 42 || req.MaxOutputTokens() != 64 || !req.Logprobs || *req.TopLogprobs != 2 {
		t.Errorf("sampling fields: %+v", req)
	}
	if !req.HasImages() || !req.WantsJSON() || req.User != "patient-7" {
		t.Errorf("derived fields wrong")
	}
}

// FuzzDecodeChatRequest checks that no body makes the decoder panic, and that
// any error it returns is an application error a client may see.
func FuzzDecodeChatRequest(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model":"chat","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stop":"x"}`))
	f.Add([]byte(`{"model":"e","input":[[1,2],[3]]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := decodeChatRequest(body); err != nil && aigrid.ErrorCode(err) != aigrid.EInvalid {
			t.Fatalf("error %v has code %q", err, aigrid.ErrorCode(err))
		}
		if _, err := decodeEmbeddingRequest(body); err != nil && aigrid.ErrorCode(err) != aigrid.EInvalid {
			t.Fatalf("embedding error %v has code %q", err, aigrid.ErrorCode(err))
		}
	})
}

func TestDecodeEmbeddingRequest(t *testing.T) {
	for body, n := range map[string]int{
		`{"model":"e","input":"hello"}`:       1,
		`{"model":"e","input":["a","b","c"]}`: 3,
		`{"model":"e","input":[1,2,3]}`:       1,
		`{"model":"e","input":[[1,2],[3,4]]}`: 2,
	} {
		req, err := decodeEmbeddingRequest([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if req.Input.Len() != n {
			t.Errorf("%s: %d inputs, want %d", body, req.Input.Len(), n)
		}
	}
	for _, body := range []string{`{"model":"e"}`, `{"model":"e","input":""}`, `{"model":"e","input":[]}`, `{"model":"e","input":{}}`, `{"model":"e","input":"x","encoding_format":"hex"}`} {
		if _, err := decodeEmbeddingRequest([]byte(body)); aigrid.ErrorCode(err) != aigrid.EInvalid {
			t.Errorf("%s: got %v, want an invalid error", body, err)
		}
	}
}
