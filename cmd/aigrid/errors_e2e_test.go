package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestBadInput drives the real server with requests a careless or hostile
// client sends, and checks each gets the right status and an OpenAI error body.
func TestBadInput(t *testing.T) {
	g := startGrid(t, `
server: {max_body_bytes: 4096}
providers:
  - name: up1
    kind: openai
    base_url: http://127.0.0.1:9/v1
    offers:
      - {model: small-chat, serves: [chat]}
tenants:
  - name: clinic-a
    keys: [sk-clinic-a-1]
  - name: school-b
    disabled: true
    keys: [sk-school-b-1]
`)
	chat := `{"model":"chat","messages":[{"role":"user","content":"hi"}]}`
	cases := []struct {
		name, method, path, key, body, contentType string
		status                                     int
		code, contains                             string
	}{
		{"no key", "POST", "/v1/chat/completions", "", chat, "", 401, "invalid_api_key", "didn't provide an API key"},
		{"wrong key", "POST", "/v1/chat/completions", "sk-nope", chat, "", 401, "invalid_api_key", "Incorrect API key"},
		{"disabled tenant", "POST", "/v1/chat/completions", "sk-school-b-1", chat, "", 403, "forbidden", "disabled"},
		{"admin key on v1", "POST", "/v1/chat/completions", g.adminKey, chat, "", 403, "forbidden", "admin key"},
		{"tenant key on admin", "GET", "/admin/v1/tenants", "sk-clinic-a-1", "", "", 403, "forbidden", "admin key"},
		{"malformed json", "POST", "/v1/chat/completions", "sk-clinic-a-1", `{"model":`, "", 400, "invalid", "could not parse"},
		{"wrong type", "POST", "/v1/chat/completions", "sk-clinic-a-1", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}`, "", 400, "invalid", "max_tokens"},
		{"missing messages", "POST", "/v1/chat/completions", "sk-clinic-a-1", `{"model":"chat"}`, "", 400, "invalid", "messages"},
		{"unknown model", "POST", "/v1/chat/completions", "sk-clinic-a-1", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, "", 404, "model_not_found", "gpt-9"},
		{"oversized", "POST", "/v1/chat/completions", "sk-clinic-a-1", `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 5000) + `"}]}`, "", 413, "too_large", "4 KiB"},
		{"form body", "POST", "/v1/chat/completions", "sk-clinic-a-1", "model=chat", "application/x-www-form-urlencoded", 415, "unsupported_media_type", "application/json"},
		{"wrong method", "GET", "/v1/chat/completions", "sk-clinic-a-1", "", "", 405, "method_not_allowed", "POST"},
		{"unknown path", "GET", "/v1/nothing", "sk-clinic-a-1", "", "", 404, "not_found", "/v1/nothing"},
		{"unreachable upstream", "POST", "/v1/chat/completions", "sk-clinic-a-1", chat, "", 502, "upstream", "up1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, g.url+c.path, strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if c.key != "" {
				req.Header.Set("Authorization", "Bearer "+c.key)
			}
			if c.contentType != "" {
				req.Header.Set("Content-Type", c.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var e apiError
			decodeBody(t, resp, &e)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d (%+v)", resp.StatusCode, c.status, e.Error)
			}
			if e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.contains) {
				t.Errorf("error %+v, want code %q and a message with %q", e.Error, c.code, c.contains)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if strings.Contains(e.Error.Message, "sk-clinic") {
				t.Error("the message repeats the client's key")
			}
		})
	}
}
