package main

import (
	"encoding/json"
	"strings"
	"testing"

	"aigrid/internal/upstreamtest"
)

// An upstream that counts nothing: the grid counts the call itself, marks it
// estimated in the tenant's usage, and a stream that asked for usage still
// ends with a usage chunk, the count it is charged for.
func TestUsageTheUpstreamDidNotCount(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{"small-chat": {Reply: "one two three four five six seven eight", NoUsage: true}})
	g := startGrid(t, strings.Replace(billingConfig, "UPSTREAM", up.URL, 1))
	const key = "sk-clinic-a-0001"

	var whole struct {
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if r := g.do("POST", "/v1/chat/completions", key, chatBody("habari", false), &whole); r.StatusCode != 200 || whole.Usage == nil {
		t.Fatalf("non-streamed: %d %+v", r.StatusCode, whole)
	}
	stream := g.doRaw("POST", "/v1/chat/completions", key, chatBody("habari", true))
	events := strings.Split(strings.TrimSpace(stream), "\n\n")
	if len(events) < 3 || events[len(events)-1] != "data: [DONE]" {
		t.Fatalf("stream %q", stream)
	}
	var last struct {
		Choices []any
		Usage   *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(events[len(events)-2], "data: ")), &last); err != nil || last.Usage == nil || len(last.Choices) != 0 {
		t.Fatalf("the event before [DONE] is not a usage chunk: %q (%v)", events[len(events)-2], err)
	}

	var page struct {
		Data []struct {
			PromptTokens     int  `json:"prompt_tokens"`
			CompletionTokens int  `json:"completion_tokens"`
			Estimated        bool `json:"estimated"`
		}
	}
	g.do("GET", "/v1/usage", key, nil, &page)
	if len(page.Data) != 2 {
		t.Fatalf("%d calls in the usage, want 2", len(page.Data))
	}
	for i, u := range page.Data {
		if !u.Estimated || u.CompletionTokens == 0 {
			t.Errorf("call %d: %+v, want an estimated count", i, u)
		}
	}
	if page.Data[0].CompletionTokens != whole.Usage.CompletionTokens || page.Data[1].CompletionTokens != last.Usage.CompletionTokens {
		t.Errorf("charged for %+v; the client was told %+v and %+v", page.Data, whole.Usage, last.Usage)
	}
}
