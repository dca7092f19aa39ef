package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"aigrid/internal/upstreamtest"
)

// sdkGrid is a grid in front of a local OpenAI-protocol upstream, with a tenant
// key and an official openai-go client that uses it.
type sdkGrid struct {
	*grid
	up     *upstreamtest.Server
	client openai.Client
}

const tenantKey = "sk-clinic-a-0001"

func startSDKGrid(t *testing.T) *sdkGrid {
	t.Helper()
	up := upstreamtest.New(t, "sk-upstream-secret", map[string]upstreamtest.Behaviour{
		"small-chat":  {},
		"vision-chat": {Reply: "a red rash"},
		"tool-chat":   {ToolArguments: `{"city":"Kisumu","unit":"celsius"}`},
		"embedder":    {Dimensions: 6},
		"broken":      {Status: 500, ErrorMessage: "Traceback (most recent call last): secret internals"},
		"stalling":    {StallAfter: 3},
		"slow-chat":   {Reply: "one two three four five six seven eight", ChunkDelay: 100 * time.Millisecond},
		"limited":     {Status: 429, ErrorMessage: "quota"},
		"dropping":    {Reply: "one two three four", DropAfter: 2},
		"slow-start":  {FirstByteDelay: 3 * time.Second},
	})
	t.Setenv("UP1_KEY", "sk-upstream-secret")
	g := startGrid(t, `
providers:
  - name: up1
    kind: openai
    base_url: `+up.URL+`
    api_key_env: UP1_KEY
    jurisdiction: KE
    timeouts: {idle: 1s}
    offers:
      - {model: small-chat, serves: [chat], price: {input: 0.1, output: 0.4}, context_length: 8192}
      - {model: vision-chat, serves: [vision], capabilities: [chat, vision]}
      - {model: tool-chat, serves: [tools]}
      - {model: embedder, serves: [embed], capabilities: [embeddings]}
      - {model: broken, serves: [broken]}
      - {model: stalling, serves: [stalling]}
      - {model: slow-chat, serves: [slow]}
      - {model: limited, serves: [limited]}
      - {model: dropping, serves: [dropping]}
  - name: up-impatient
    kind: openai
    base_url: `+up.URL+`
    api_key_env: UP1_KEY
    jurisdiction: KE
    timeouts: {first_byte: 300ms}
    offers:
      - {model: slow-start, serves: [slow-start]}
  - name: faraway
    kind: openai
    base_url: `+up.URL+`
    jurisdiction: US
    offers:
      - {model: small-chat, serves: [us-only]}
tenants:
  - name: clinic-a
    class: priority
    residency: [KE, TZ]
    keys:
      - `+tenantKey+`
      - {secret: sk-clinic-a-limited, models: [chat]}
`)
	client := openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey(tenantKey), option.WithMaxRetries(0))
	return &sdkGrid{grid: g, up: up, client: client}
}

func user(text string) []openai.ChatCompletionMessageParamUnion {
	return []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage(text)}
}

func TestSDKChat(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	var httpResp *http.Response
	resp, err := g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "chat", Messages: user("habari ya asubuhi"),
		Temperature: openai.Float(0.3), TopP: openai.Float(0.9), MaxTokens: openai.Int(50), Seed: openai.Int(7),
		Stop: openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"END"}}, PresencePenalty: openai.Float(0.5),
		FrequencyPenalty: openai.Float(0.1), User: openai.String("nurse-3"), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
	}, option.WithResponseInto(&httpResp), option.WithHeader("X-Request-Id", "clinic-req-42"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "You said: habari ya asubuhi" {
		t.Errorf("content %q", got)
	}
	// The client's X-Request-Id is echoed, but the call's id is the grid's own:
	// two clients may send the same X-Request-Id, and each call counts once.
	if resp.Model != "chat" || !strings.HasPrefix(resp.ID, "chatcmpl-req_") || resp.Object != "chat.completion" {
		t.Errorf("id %q model %q object %q", resp.ID, resp.Model, resp.Object)
	}
	if resp.Usage.PromptTokens != 5 || resp.Usage.CompletionTokens != 5 || resp.Usage.TotalTokens != 10 {
		t.Errorf("usage %+v", resp.Usage)
	}
	if len(resp.Choices[0].Logprobs.Content) == 0 || len(resp.Choices[0].Logprobs.Content[0].TopLogprobs) != 2 {
		t.Errorf("logprobs %+v", resp.Choices[0].Logprobs)
	}
	if httpResp.Header.Get("X-Request-Id") != "clinic-req-42" || httpResp.Header.Get("X-Aigrid-Offer") != "up1/small-chat" {
		t.Errorf("headers %v", httpResp.Header)
	}
	// What reached the upstream: its own model id and key, every sampling parameter, not the tenant's key.
	sent := g.up.Requests()[len(g.up.Requests())-1]
	if sent.Header.Get("Authorization") != "Bearer sk-upstream-secret" {
		t.Errorf("upstream saw Authorization %q", sent.Header.Get("Authorization"))
	}
	var body map[string]any
	json.Unmarshal(sent.Body, &body)
	for k, want := range map[string]any{"model": "small-chat", "temperature": 0.3, "top_p": 0.9, "max_tokens": 50.0, "seed": 7.0,
		"presence_penalty": 0.5, "frequency_penalty": 0.1, "user": "nurse-3", "logprobs": true, "top_logprobs": 2.0} {
		if body[k] != want {
			t.Errorf("upstream got %s = %v, want %v", k, body[k], want)
		}
	}
	if rf, _ := body["response_format"].(map[string]any); rf["type"] != "json_object" {
		t.Errorf("response_format %v", body["response_format"])
	}
	if stop, _ := body["stop"].([]any); len(stop) != 1 || stop[0] != "END" {
		t.Errorf("stop %v", body["stop"])
	}
}

func TestSDKStream(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	for _, includeUsage := range []bool{true, false} {
		params := openai.ChatCompletionNewParams{Model: "chat", Messages: user("count to three please")}
		if includeUsage {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		stream := g.client.Chat.Completions.NewStreaming(ctx, params)
		var acc openai.ChatCompletionAccumulator
		chunks, usageChunks := 0, 0
		for stream.Next() {
			c := stream.Current()
			acc.AddChunk(c)
			chunks++
			if c.Usage.TotalTokens > 0 {
				usageChunks++
			}
			if c.Model != "chat" || !strings.HasPrefix(c.ID, "chatcmpl-req_") {
				t.Errorf("chunk id %q model %q", c.ID, c.Model)
			}
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		if got := acc.Choices[0].Message.Content; got != "You said: count to three please" {
			t.Errorf("streamed %q", got)
		}
		if acc.Choices[0].FinishReason != "stop" || chunks < 6 {
			t.Errorf("finish %q after %d chunks", acc.Choices[0].FinishReason, chunks)
		}
		if includeUsage && (usageChunks != 1 || acc.Usage.PromptTokens != 6 || acc.Usage.CompletionTokens != 6) {
			t.Errorf("usage %+v in %d chunks", acc.Usage, usageChunks)
		}
		if !includeUsage && usageChunks != 0 {
			t.Errorf("usage sent without include_usage")
		}
	}
}

func TestSDKTools(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "tools",
		Messages: user("weather in Kisumu?"),
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
			Name: "get_weather", Description: openai.String("Current weather"),
			Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}},
		})},
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")},
	}
	resp, err := g.client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	call := resp.Choices[0].Message.ToolCalls[0]
	if resp.Choices[0].FinishReason != "tool_calls" || call.Function.Name != "get_weather" || call.Function.Arguments != `{"city":"Kisumu","unit":"celsius"}` {
		t.Errorf("tool call %+v finish %q", call, resp.Choices[0].FinishReason)
	}

	stream := g.client.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	var finished []openai.FinishedChatCompletionToolCall
	for stream.Next() {
		acc.AddChunk(stream.Current())
		if tc, ok := acc.JustFinishedToolCall(); ok {
			finished = append(finished, tc)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(finished) != 1 || finished[0].Name != "get_weather" || finished[0].Arguments != `{"city":"Kisumu","unit":"celsius"}` {
		t.Errorf("streamed tool calls %+v", finished)
	}

	// The conversation goes on with the tool's answer.
	params.Messages = append(params.Messages, resp.Choices[0].Message.ToParam(), openai.ToolMessage("31C, humid", call.ID))
	params.Model = "chat"
	params.Tools = nil
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{}
	if _, err := g.client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatal(err)
	}
	var body struct{ Messages []map[string]any }
	reqs := g.up.Requests()
	json.Unmarshal(reqs[len(reqs)-1].Body, &body)
	if n := len(body.Messages); n != 4 || body.Messages[3]["tool_call_id"] != call.ID || body.Messages[2]["tool_calls"] == nil {
		t.Errorf("upstream got messages %v", body.Messages)
	}
}

func TestSDKImagesAndEmbeddings(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	image := []openai.ChatCompletionMessageParamUnion{openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
		openai.TextContentPart("What is this?"),
		openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgo="}),
	})}
	resp, err := g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "vision", Messages: image})
	if err != nil || resp.Choices[0].Message.Content != "a red rash" {
		t.Fatalf("vision: %v %+v", err, resp)
	}
	reqs := g.up.Requests()
	if !strings.Contains(string(reqs[len(reqs)-1].Body), `"image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}`) {
		t.Errorf("image not passed on: %s", reqs[len(reqs)-1].Body)
	}
	_, err = g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "chat", Messages: image})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "accepts images") {
		t.Errorf("image to a text-only model: %v", err)
	}

	emb, err := g.client.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"mvua kubwa", "ukame"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := upstreamtest.Vector("ukame", 6)
	if len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 6 || float32(emb.Data[1].Embedding[0]) != want[0] || emb.Usage.PromptTokens != 3 || emb.Model != "embed" {
		t.Errorf("embeddings %+v", emb)
	}
}

func TestSDKModelsAndPolicy(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	page, err := g.client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	// us-only is served only in the US, outside the tenant's residency.
	if strings.Join(ids, ",") != "broken,chat,dropping,embed,limited,slow,slow-start,stalling,tools,vision" {
		t.Errorf("models %v", ids)
	}
	limited := openai.NewClient(option.WithBaseURL(g.url+"/v1"), option.WithAPIKey("sk-clinic-a-limited"), option.WithMaxRetries(0))
	page, err = limited.Models.List(ctx)
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != "chat" {
		t.Errorf("models of a limited key: %+v %v", page, err)
	}
	_, err = limited.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "tools", Messages: user("hi")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 {
		t.Errorf("limited key on another model: %v", err)
	}
	_, err = g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "us-only", Messages: user("hi")})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 403 || !strings.Contains(apiErr.Message, "residency KE, TZ") {
		t.Errorf("residency: %v", err)
	}
}

func TestSDKUpstreamFailures(t *testing.T) {
	g := startSDKGrid(t)
	ctx := context.Background()
	_, err := g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "broken", Messages: user("hi")})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || strings.Contains(apiErr.Message, "Traceback") || strings.Contains(apiErr.Message, "sk-upstream") {
		t.Errorf("upstream 500: %v", err)
	}
	_, err = g.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "limited", Messages: user("hi")})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Response.Header.Get("Retry-After") != "7" {
		t.Errorf("upstream 429: %v", err)
	}

	// A stream that stalls after its first chunks ends with an error event the SDK raises.
	stream := g.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "stalling", Messages: user("hi there")})
	n := 0
	for stream.Next() {
		n++
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "went silent") || n == 0 {
		t.Errorf("stalled stream: %d chunks, error %v", n, err)
	}

	// A connection dropped mid-stream: the chunks so far, then an error, never [DONE].
	stream = g.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "dropping", Messages: user("hi")})
	n = 0
	for stream.Next() {
		n++
	}
	if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "closed the stream early") || n != 2 {
		t.Errorf("dropped stream: %d chunks, error %v", n, err)
	}

	// An upstream slower than its first-byte timeout fails before any byte: a clean 502.
	for _, streaming := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{Model: "slow-start", Messages: user("hi")}
		if streaming {
			s := g.client.Chat.Completions.NewStreaming(ctx, params)
			for s.Next() {
			}
			err = s.Err()
		} else {
			_, err = g.client.Chat.Completions.New(ctx, params)
		}
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 502 || !strings.Contains(apiErr.Message, "first byte after 300ms") {
			t.Errorf("slow first byte (stream %v): %v", streaming, err)
		}
	}
}

// TestClientDisconnect checks that a client hanging up mid-stream ends the upstream request.
func TestClientDisconnect(t *testing.T) {
	g := startSDKGrid(t)
	ctx, cancel := context.WithCancel(context.Background())
	stream := g.client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "slow", Messages: user("tell me a long story")})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	cancel()
	stream.Close()
	select {
	case m := <-g.up.Ended():
		if m != "slow-chat" {
			t.Errorf("ended %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream request went on after the client hung up")
	}
}

// TestGracefulShutdown checks that a stream in flight when the server is told
// to stop still finishes whole, and that new requests are refused meanwhile.
func TestGracefulShutdown(t *testing.T) {
	g := startSDKGrid(t)
	stream := g.client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{Model: "slow", Messages: user("go")})
	if !stream.Next() {
		t.Fatalf("no first chunk: %v", stream.Err())
	}
	closed := make(chan error, 1)
	go func() { closed <- g.main.Close() }()
	var acc openai.ChatCompletionAccumulator
	acc.AddChunk(stream.Current())
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("the stream was cut: %v", err)
	}
	if got := acc.Choices[0].Message.Content; got != "one two three four five six seven eight" {
		t.Errorf("streamed %q", got)
	}
	if err := <-closed; err != nil {
		t.Errorf("close: %v", err)
	}
	g.main.http = nil // closed already
	if _, err := http.Get(g.url + "/healthz"); err == nil {
		t.Error("the server still answers after shutdown")
	}
}

func TestMetricsAndHealth(t *testing.T) {
	g := startSDKGrid(t)
	if _, err := g.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "chat", Messages: user("one two")}); err != nil {
		t.Fatal(err)
	}
	for path, wants := range map[string][]string{
		"/metrics": {`aigrid_tokens_total{class="priority",direction="out",provider="up1",service_model="chat"} 4`,
			"aigrid_meter_settle_seconds_count 1", "aigrid_meter_journal_group_size_count 1"},
		"/healthz": {`"ok"`},
		"/readyz":  {`"ready"`},
	} {
		resp, err := http.Get(g.url + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range wants {
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("%s: %d, missing %s", path, resp.StatusCode, want)
			}
		}
	}
	if logs := g.logs.String(); strings.Contains(logs, "one two") || !strings.Contains(logs, `"request_id"`) {
		t.Errorf("logs hold the prompt or no request id:\n%s", logs)
	}
}

func asAPIError(err error, target **openai.Error) bool { return errors.As(err, target) }
