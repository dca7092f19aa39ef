package aigrid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ChatRequest is the canonical chat completion request. Its JSON form is the
// OpenAI Chat Completions request, which every provider protocol is converted
// to and from at the edge.
type ChatRequest struct {
	Model               string             `json:"model"`
	Messages            []Message          `json:"messages"`
	Stream              bool               `json:"stream,omitempty"`
	StreamOptions       *StreamOptions     `json:"stream_options,omitempty"`
	Temperature         *float64           `json:"temperature,omitempty"`
	TopP                *float64           `json:"top_p,omitempty"`
	N                   *int               `json:"n,omitempty"`
	MaxTokens           *int               `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int               `json:"max_completion_tokens,omitempty"`
	Stop                Stop               `json:"stop,omitempty"`
	Seed                *int64             `json:"seed,omitempty"`
	PresencePenalty     *float64           `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64           `json:"frequency_penalty,omitempty"`
	LogitBias           map[string]float64 `json:"logit_bias,omitempty"`
	ResponseFormat      *ResponseFormat    `json:"response_format,omitempty"`
	Logprobs            bool               `json:"logprobs,omitempty"`
	TopLogprobs         *int               `json:"top_logprobs,omitempty"`
	User                string             `json:"user,omitempty"`
	Tools               []Tool             `json:"tools,omitempty"`
	// ToolChoice is "none", "auto", "required" or {"type":"function","function":{"name":...}}.
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort   string          `json:"reasoning_effort,omitempty"`
}

// StreamOptions are the options of a streamed response.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// MaxOutputTokens returns the output token limit the client set, or 0 for none.
func (r *ChatRequest) MaxOutputTokens() int {
	if r.MaxCompletionTokens != nil {
		return *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		return *r.MaxTokens
	}
	return 0
}

// HasImages reports whether any message carries an image.
func (r *ChatRequest) HasImages() bool {
	for i := range r.Messages {
		if c := r.Messages[i].Content; c != nil {
			for _, p := range c.Parts {
				if p.Type == PartImageURL {
					return true
				}
			}
		}
	}
	return false
}

// WantsJSON reports whether the client asked for JSON output.
func (r *ChatRequest) WantsJSON() bool {
	return r.ResponseFormat != nil && r.ResponseFormat.Type != "text"
}

// Message roles.
const (
	RoleSystem    = "system"
	RoleDeveloper = "developer"
	RoleUser      = "user"
	RoleAssistant = "assistant"
	RoleTool      = "tool"
)

// Message is one message of a conversation, in a request or a response.
type Message struct {
	Role string `json:"role"`
	// Content is nil when the JSON holds null or nothing (an assistant turn with tool calls).
	Content          *Content   `json:"content"`
	Name             string     `json:"name,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID       string     `json:"tool_call_id,omitempty"`
	Refusal          string     `json:"refusal,omitempty"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
}

// Content is a message's content: either plain text or a list of parts.
type Content struct {
	Text  string
	Parts []ContentPart
}

// TextContent returns plain-text content.
func TextContent(s string) *Content { return &Content{Text: s} }

// String returns the text of the content, the text parts joined.
func (c *Content) String() string {
	if c == nil {
		return ""
	}
	if c.Parts == nil {
		return c.Text
	}
	var b bytes.Buffer
	for _, p := range c.Parts {
		if p.Type == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (c Content) MarshalJSON() ([]byte, error) {
	if c.Parts != nil {
		return json.Marshal(c.Parts)
	}
	// Text is quoted here rather than by a second encoder run inside the one
	// that called this: shallower and quicker. (Upstream chat requests do not
	// come here: the openai provider writes them by hand, with the same
	// AppendJSONString.)
	return AppendJSONString(make([]byte, 0, len(c.Text)+2), c.Text), nil
}

// AppendJSONArray appends xs as encoding/json writes a slice (null when
// nil), each element by appendElem: the hand-written encoders' lists.
func AppendJSONArray[T any](dst []byte, xs []T, appendElem func([]byte, *T) ([]byte, error)) ([]byte, error) {
	if xs == nil {
		return append(dst, "null"...), nil
	}
	dst = append(dst, '[')
	for i := range xs {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendElem(dst, &xs[i]); err != nil {
			return dst, err
		}
	}
	return append(dst, ']'), nil
}

// AppendJSONString appends s as encoding/json writes a string: quotes,
// backslashes and control characters escaped (\n, \r, \t, \b, \f by name),
// <, > and & as \u00XX for HTML, U+2028 and U+2029 as \u escapes, and each
// byte of invalid UTF-8 as \ufffd.
func AppendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// unescapedJSON reports whether b, between quotes, is a JSON string that
// means its own bytes: valid UTF-8 with no escape, quote or control character.
func unescapedJSON(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
	}
	return utf8.Valid(b)
}

func (c *Content) UnmarshalJSON(b []byte) error {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		var parts []ContentPart
		if err := json.Unmarshal(b, &parts); err != nil {
			return err
		}
		if parts == nil {
			parts = []ContentPart{}
		}
		*c = Content{Parts: parts}
		return nil
	}
	// A string without escapes, as most are, is its bytes between the
	// quotes: no second decoder run inside the one that called this.
	if n := len(b); n >= 2 && b[0] == '"' && b[n-1] == '"' && unescapedJSON(b[1:n-1]) {
		*c = Content{Text: string(b[1 : n-1])}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("content must be a string or an array of content parts")
	}
	*c = Content{Text: s}
	return nil
}

// Content part types.
const (
	PartText       = "text"
	PartImageURL   = "image_url"
	PartInputAudio = "input_audio"
	PartFile       = "file"
	PartRefusal    = "refusal"
)

// ContentPart is one part of a multi-part message.
type ContentPart struct {
	Type       string          `json:"type"`
	Text       string          `json:"text,omitempty"`
	ImageURL   *ImageURL       `json:"image_url,omitempty"`
	InputAudio json.RawMessage `json:"input_audio,omitempty"`
	File       json.RawMessage `json:"file,omitempty"`
	Refusal    string          `json:"refusal,omitempty"`
}

// ImageURL is an image given by URL or as a data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Stop is up to four stop sequences; JSON accepts a string or an array of strings.
type Stop []string

func (s *Stop) UnmarshalJSON(b []byte) error {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) > 0 && b[0] == '[' {
		var list []string
		if err := json.Unmarshal(b, &list); err != nil {
			return errors.New("stop must be a string or an array of strings")
		}
		*s = list
		return nil
	}
	if bytes.Equal(b, []byte("null")) {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return errors.New("stop must be a string or an array of strings")
	}
	*s = Stop{one}
	return nil
}

// ResponseFormat asks for text, any JSON object, or JSON that follows a schema.
type ResponseFormat struct {
	Type       string          `json:"type"`
	JSONSchema json.RawMessage `json:"json_schema,omitempty"`
}

// Tool is a function the model may call.
type Tool struct {
	Type     string       `json:"type"`
	Function FunctionDecl `json:"function"`
}

// FunctionDecl declares a callable function.
type FunctionDecl struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ToolCall is a call of a tool by the model. In stream deltas Index says which
// call a fragment belongs to and Arguments arrive in pieces.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function called and its JSON arguments.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Finish reasons.
const (
	FinishStop      = "stop"
	FinishLength    = "length"
	FinishToolCalls = "tool_calls"
	FinishFilter    = "content_filter"
)

// ChatResponse is a whole (non-streamed) chat completion.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
}

// Choice is one completion of a response.
type Choice struct {
	Index        int       `json:"index"`
	Message      Message   `json:"message"`
	FinishReason string    `json:"finish_reason"`
	Logprobs     *Logprobs `json:"logprobs"`
}

// ChatChunk is one event of a streamed chat completion.
type ChatChunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	// More tells the writer that the provider holds the next chunk already, so
	// that this one may go out with it rather than in a network write of its own.
	More bool `json:"-"`
	// Raw, when its JSON is set, holds the choices as the provider received
	// them, to be relayed in place of Choices (then nil).
	Raw RawChoices `json:"-"`
}

// RawChoices are a chunk's choices as an upstream wrote them, which a
// provider relays without decoding them into ChunkChoice values and the
// writer without encoding them again. The provider has checked that they
// read, as a client reads JSON, as the ChunkChoice values it would have
// decoded and encoded: a JSON array of one or more choices, valid UTF-8 on
// one line, with nothing in it that the grid would drop or write otherwise.
type RawChoices struct {
	JSON     []byte // valid until the provider reads its next chunk
	Count    int    // choices
	Finished int    // choices with a finish reason
	Output   bool   // some choice adds content or reasoning
}

// MarshalJSON writes a chunk as encoding/json writes it, with its raw
// choices, when it has them, decoded into Choices first. (The grid's stream
// writer relays them as they are.)
func (c ChatChunk) MarshalJSON() ([]byte, error) {
	type plain ChatChunk
	if c.Raw.JSON != nil {
		c.Choices = nil
		if err := json.Unmarshal(c.Raw.JSON, &c.Choices); err != nil {
			return nil, err
		}
	}
	return json.Marshal(plain(c))
}

// ChunkChoice is the part of a chunk that belongs to one choice.
type ChunkChoice struct {
	Index        int       `json:"index"`
	Delta        Delta     `json:"delta"`
	FinishReason *string   `json:"finish_reason"`
	Logprobs     *Logprobs `json:"logprobs,omitempty"`
}

// Delta is what a chunk adds to a choice's message.
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
}

// Logprobs are the log probabilities of the sampled tokens.
type Logprobs struct {
	Content []TokenLogprob `json:"content"`
}

// TokenLogprob is one sampled token, its log probability and the likeliest alternatives.
type TokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []TopLogprob `json:"top_logprobs"`
}

// TopLogprob is one alternative token.
type TopLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// Usage counts the tokens of a request.
type Usage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
	// Estimated marks a count the grid made itself, from the text, because
	// the provider gave none: the meter records it as such.
	Estimated bool `json:"-"`
}

// PromptTokensDetails breaks down the prompt tokens.
type PromptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

// CompletionTokensDetails breaks down the completion tokens.
type CompletionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

// Validate checks a request as OpenAI's API would, naming the parameter at fault.
func (r *ChatRequest) Validate() error {
	if r.Model == "" {
		return ParamErrorf("model", "you must provide a model parameter")
	}
	if len(r.Messages) == 0 {
		return ParamErrorf("messages", "messages must be a non-empty array")
	}
	for i := range r.Messages {
		if err := r.Messages[i].validate(i); err != nil {
			return err
		}
	}
	if err := checkRange("temperature", r.Temperature, 0, 2); err != nil {
		return err
	}
	if err := checkRange("top_p", r.TopP, 0, 1); err != nil {
		return err
	}
	if err := checkRange("presence_penalty", r.PresencePenalty, -2, 2); err != nil {
		return err
	}
	if err := checkRange("frequency_penalty", r.FrequencyPenalty, -2, 2); err != nil {
		return err
	}
	if r.N != nil && (*r.N < 1 || *r.N > 128) {
		return ParamErrorf("n", "n must be between 1 and 128, got %d", *r.N)
	}
	if r.MaxTokens != nil && *r.MaxTokens < 1 {
		return ParamErrorf("max_tokens", "max_tokens must be at least 1, got %d", *r.MaxTokens)
	}
	if r.MaxCompletionTokens != nil && *r.MaxCompletionTokens < 1 {
		return ParamErrorf("max_completion_tokens", "max_completion_tokens must be at least 1, got %d", *r.MaxCompletionTokens)
	}
	if len(r.Stop) > 4 {
		return ParamErrorf("stop", "stop may hold at most 4 sequences, got %d", len(r.Stop))
	}
	for k, v := range r.LogitBias {
		if v < -100 || v > 100 {
			return ParamErrorf("logit_bias", "logit_bias for token %s must be between -100 and 100", k)
		}
	}
	if r.TopLogprobs != nil {
		if *r.TopLogprobs < 0 || *r.TopLogprobs > 20 {
			return ParamErrorf("top_logprobs", "top_logprobs must be between 0 and 20, got %d", *r.TopLogprobs)
		}
		if !r.Logprobs {
			return ParamErrorf("top_logprobs", "top_logprobs requires logprobs to be true")
		}
	}
	if f := r.ResponseFormat; f != nil {
		switch f.Type {
		case "text", "json_object":
		case "json_schema":
			if len(f.JSONSchema) == 0 {
				return ParamErrorf("response_format.json_schema", "response_format of type json_schema needs a json_schema object")
			}
		default:
			return ParamErrorf("response_format.type", "response_format.type must be text, json_object or json_schema, got %q", f.Type)
		}
	}
	for i, t := range r.Tools {
		if t.Type != "function" {
			return ParamErrorf(fmt.Sprintf("tools[%d].type", i), "tools[%d].type must be \"function\", got %q", i, t.Type)
		}
		if err := ValidateFunctionName(t.Function.Name); err != nil {
			return ParamErrorf(fmt.Sprintf("tools[%d].function.name", i), "tools[%d].function.name: %v", i, err)
		}
	}
	if len(r.ToolChoice) > 0 {
		if err := r.validateToolChoice(); err != nil {
			return err
		}
	}
	if r.StreamOptions != nil && !r.Stream {
		return ParamErrorf("stream_options", "stream_options may only be set when stream is true")
	}
	return nil
}

func (r *ChatRequest) validateToolChoice() error {
	var mode string
	if json.Unmarshal(r.ToolChoice, &mode) == nil {
		switch mode {
		case "none", "auto":
			return nil
		case "required":
			if len(r.Tools) == 0 {
				return ParamErrorf("tool_choice", "tool_choice \"required\" needs tools")
			}
			return nil
		}
		return ParamErrorf("tool_choice", "tool_choice must be none, auto, required or a function, got %q", mode)
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if err := json.Unmarshal(r.ToolChoice, &named); err != nil || named.Type != "function" || named.Function.Name == "" {
		return ParamErrorf("tool_choice", "tool_choice must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}")
	}
	for _, t := range r.Tools {
		if t.Function.Name == named.Function.Name {
			return nil
		}
	}
	return ParamErrorf("tool_choice", "tool_choice names function %q, which is not among the tools", named.Function.Name)
}

func (m *Message) validate(i int) error {
	param := func(field string) string { return fmt.Sprintf("messages[%d].%s", i, field) }
	switch m.Role {
	case RoleSystem, RoleDeveloper, RoleUser:
		if m.Content == nil {
			return ParamErrorf(param("content"), "messages[%d] (%s) must have content", i, m.Role)
		}
	case RoleAssistant:
		if m.Content == nil && len(m.ToolCalls) == 0 {
			return ParamErrorf(param("content"), "messages[%d] (assistant) must have content or tool_calls", i)
		}
		for j, tc := range m.ToolCalls {
			if tc.ID == "" || tc.Function.Name == "" {
				return ParamErrorf(param(fmt.Sprintf("tool_calls[%d]", j)), "messages[%d].tool_calls[%d] needs an id and a function name", i, j)
			}
		}
	case RoleTool:
		if m.ToolCallID == "" {
			return ParamErrorf(param("tool_call_id"), "messages[%d] (tool) must have a tool_call_id", i)
		}
		if m.Content == nil {
			return ParamErrorf(param("content"), "messages[%d] (tool) must have content", i)
		}
	case "":
		return ParamErrorf(param("role"), "messages[%d] must have a role", i)
	default:
		return ParamErrorf(param("role"), "messages[%d].role %q is not one of system, developer, user, assistant, tool", i, m.Role)
	}
	if m.Content != nil {
		for j, p := range m.Content.Parts {
			switch p.Type {
			case PartText, PartRefusal, PartInputAudio, PartFile:
			case PartImageURL:
				if p.ImageURL == nil || p.ImageURL.URL == "" {
					return ParamErrorf(param(fmt.Sprintf("content[%d].image_url", j)), "messages[%d].content[%d] of type image_url needs image_url.url", i, j)
				}
			default:
				return ParamErrorf(param(fmt.Sprintf("content[%d].type", j)), "messages[%d].content[%d].type %q is not one of text, image_url, input_audio, file", i, j, p.Type)
			}
		}
	}
	return nil
}

func checkRange(param string, v *float64, lo, hi float64) error {
	if v != nil && !(*v >= lo && *v <= hi) {
		return ParamErrorf(param, "%s must be between %g and %g, got %g", param, lo, hi, *v)
	}
	return nil
}

// ValidateFunctionName checks a tool function name as OpenAI does: 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.
func ValidateFunctionName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("a function name must be 1 to 64 characters long")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return fmt.Errorf("function name %q may hold only a-z, A-Z, 0-9, '_' and '-'", name)
		}
	}
	return nil
}

// EstimateUsage is the grid's own count of a call whose provider counted
// nothing: the prompt's estimate, and about four characters a token of the
// output's completionChars, marked Estimated.
func (r *ChatRequest) EstimateUsage(completionChars int) *Usage {
	in, out := r.EstimatePromptTokens(), (completionChars+3)/4
	return &Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out, Estimated: true}
}

// CompletionChars counts the characters of the response's output (content,
// reasoning, tool calls), for EstimateUsage.
func (r *ChatResponse) CompletionChars() int {
	n := 0
	for i := range r.Choices {
		m := &r.Choices[i].Message
		n += len(m.Content.String()) + len(m.ReasoningContent)
		for _, tc := range m.ToolCalls {
			n += len(tc.Function.Name) + len(tc.Function.Arguments)
		}
	}
	return n
}

// EstimatePromptTokens guesses the prompt's size in tokens before any tokenizer
// has seen it: about four characters a token, plus a few tokens of framing per
// message. Used where a bound is needed before the provider counts exactly.
func (r *ChatRequest) EstimatePromptTokens() int {
	chars := 0
	for i := range r.Messages {
		m := &r.Messages[i]
		chars += len(m.Content.String()) + len(m.Name)
		for _, tc := range m.ToolCalls {
			chars += len(tc.Function.Name) + len(tc.Function.Arguments)
		}
	}
	for _, t := range r.Tools {
		chars += len(t.Function.Name) + len(t.Function.Description) + len(t.Function.Parameters)
	}
	return (chars+3)/4 + 4*len(r.Messages)
}
