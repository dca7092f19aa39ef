package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"aigrid/internal/upstreamtest"
)

// TestDispatchEndToEnd runs merit order, failover and brownout through the
// real server and the official SDK.
func TestDispatchEndToEnd(t *testing.T) {
	up := upstreamtest.New(t, "", map[string]upstreamtest.Behaviour{
		"dear":  {Reply: "dear answer"},
		"big":   {Reply: "one two three four five", ChunkDelay: 150 * time.Millisecond},
		"small": {Reply: "small answer"},
	})
	g := startGrid(t, `
dispatch: {queue_timeout: 300ms}
providers:
  - name: cheap-but-down
    base_url: http://127.0.0.1:9/v1
    offers:
      - {model: cheap, serves: [chat], price: {input: 0.01, output: 0.02}}
  - name: dear
    base_url: `+up.URL+`
    offers:
      - {model: dear, serves: [chat], price: {input: 1, output: 2}}
      - {model: big, serves: [big], max_concurrency: 1, price: {input: 1, output: 2}}
      - {model: small, serves: [big-small], price: {input: 0.1, output: 0.2}}
service_models:
  - {name: big, fallback: big-small}
tenants:
  - name: school
    brownout: true
    keys: [sk-school-0001]
  - name: clinic
    keys: [sk-clinic-0001]
`)
	ctx := context.Background()
	school := openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey("sk-school-0001"), option.WithMaxRetries(0))
	clinic := openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey("sk-clinic-0001"), option.WithMaxRetries(0))

	// The cheapest offer is tried first; it is down, so the call fails over before any byte.
	var resp *http.Response
	c, err := clinic.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: user("hi")}, option.WithResponseInto(&resp))
	if err != nil || c.Choices[0].Message.Content != "dear answer" || resp.Header.Get("X-Aigrid-Offer") != "dear/dear" {
		t.Fatalf("failover: %v %v", err, resp.Header)
	}
	out := g.mustCLI(t, "dispatch", "chat")
	if !strings.Contains(out, "1     cheap-but-down/cheap") || !strings.Contains(out, "2     dear/dear") {
		t.Errorf("merit order:\n%s", out)
	}

	// "big" has one slot; hold it with a slow stream.
	stream := clinic.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "big", Messages: user("long")})
	if !stream.Next() {
		t.Fatal(stream.Err())
	}
	defer stream.Close()
	// The school accepts brownout: served by the fallback at once, and told so.
	c, err = school.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "big", Messages: user("hi")}, option.WithResponseInto(&resp))
	if err != nil || c.Model != "big-small" || c.Choices[0].Message.Content != "small answer" ||
		resp.Header.Get("X-Aigrid-Offer") != "dear/small; brownout-from=big" {
		t.Errorf("brownout: %v %+v %v", err, c, resp.Header)
	}
	// The clinic does not: it waits for the slot, past the queue timeout.
	_, err = clinic.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "big", Messages: user("hi")})
	var apiErr *openai.Error
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 503 || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Errorf("no brownout: %v", err)
	}

	if out := g.mustCLI(t, "service-model", "list"); !strings.Contains(out, "big            big-small") {
		t.Errorf("service-model list:\n%s", out)
	}
	g.mustCLI(t, "service-model", "remove", "big")
	_, err = school.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "big", Messages: user("hi")})
	if !asAPIError(err, &apiErr) || apiErr.StatusCode != 503 {
		t.Errorf("brownout after the fallback was removed: %v", err)
	}
	// A misspelt fallback or model is refused, as the config file refuses
	// it, and so is a set that names no fallback (it cleared the one there).
	for _, args := range [][]string{{"big", "--fallback", "big-smal"}, {"bgi", "--fallback", "big-small"}, {"big"}} {
		if out, err := g.cli(t, append([]string{"service-model", "set"}, args...)...); err == nil {
			t.Errorf("service-model set %v: %q", args, out)
		}
	}
	var e apiError
	if resp := g.do("PUT", "/admin/v1/service-models/big", g.adminKey, `{"fallback": "big-smal"}`, &e); resp.StatusCode != http.StatusBadRequest ||
		e.Error.Param == nil || *e.Error.Param != "fallback" || !strings.Contains(e.Error.Message, `"big-smal"`) {
		t.Errorf("misspelt fallback: %d %+v", resp.StatusCode, e)
	}
	if out := g.mustCLI(t, "service-model", "list"); strings.Contains(out, "big-smal ") || strings.Contains(out, "bgi") {
		t.Errorf("a refused fallback was stored:\n%s", out)
	}
	g.mustCLI(t, "service-model", "set", "big", "--fallback", "big-small")
	if _, err := school.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "big", Messages: user("hi")}); err != nil {
		t.Errorf("brownout after the fallback was set again: %v", err)
	}
}
