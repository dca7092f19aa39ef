package openai

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"

	"aigrid"
)

// appendChatRequest appends r as JSON, byte for byte what encoding/json
// writes, but without reflection for the fields every request has: encoding
// it through reflection cost 3% of the gateway's CPU. The rare parts (tools,
// response format, logit bias, tool choice, content parts, tool calls) go
// through encoding/json.
func appendChatRequest(dst []byte, r *aigrid.ChatRequest) ([]byte, error) {
	dst = aigrid.AppendJSONString(append(dst, `{"model":`...), r.Model)
	dst, err := aigrid.AppendJSONArray(append(dst, `,"messages":`...), r.Messages, appendMessage)
	if err != nil {
		return dst, err
	}
	if r.Stream {
		dst = append(dst, `,"stream":true`...)
	}
	if o := r.StreamOptions; o != nil {
		dst = strconv.AppendBool(append(dst, `,"stream_options":{"include_usage":`...), o.IncludeUsage)
		dst = append(dst, '}')
	}
	if dst, err = appendFloatField(dst, `,"temperature":`, r.Temperature); err != nil {
		return dst, err
	}
	if dst, err = appendFloatField(dst, `,"top_p":`, r.TopP); err != nil {
		return dst, err
	}
	dst = appendIntField(dst, `,"n":`, r.N)
	dst = appendIntField(dst, `,"max_tokens":`, r.MaxTokens)
	dst = appendIntField(dst, `,"max_completion_tokens":`, r.MaxCompletionTokens)
	if len(r.Stop) > 0 {
		dst = append(dst, `,"stop":[`...)
		for i, s := range r.Stop {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = aigrid.AppendJSONString(dst, s)
		}
		dst = append(dst, ']')
	}
	if r.Seed != nil {
		dst = strconv.AppendInt(append(dst, `,"seed":`...), *r.Seed, 10)
	}
	if dst, err = appendFloatField(dst, `,"presence_penalty":`, r.PresencePenalty); err != nil {
		return dst, err
	}
	if dst, err = appendFloatField(dst, `,"frequency_penalty":`, r.FrequencyPenalty); err != nil {
		return dst, err
	}
	if len(r.LogitBias) > 0 {
		if dst, err = appendMarshal(append(dst, `,"logit_bias":`...), r.LogitBias); err != nil {
			return dst, err
		}
	}
	if r.ResponseFormat != nil {
		if dst, err = appendMarshal(append(dst, `,"response_format":`...), r.ResponseFormat); err != nil {
			return dst, err
		}
	}
	if r.Logprobs {
		dst = append(dst, `,"logprobs":true`...)
	}
	dst = appendIntField(dst, `,"top_logprobs":`, r.TopLogprobs)
	if r.User != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"user":`...), r.User)
	}
	if len(r.Tools) > 0 {
		if dst, err = appendMarshal(append(dst, `,"tools":`...), r.Tools); err != nil {
			return dst, err
		}
	}
	if len(r.ToolChoice) > 0 {
		if dst, err = appendMarshal(append(dst, `,"tool_choice":`...), r.ToolChoice); err != nil {
			return dst, err
		}
	}
	if r.ParallelToolCalls != nil {
		dst = strconv.AppendBool(append(dst, `,"parallel_tool_calls":`...), *r.ParallelToolCalls)
	}
	if r.ReasoningEffort != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"reasoning_effort":`...), r.ReasoningEffort)
	}
	return append(dst, '}'), nil
}

func appendMessage(dst []byte, m *aigrid.Message) ([]byte, error) {
	dst = aigrid.AppendJSONString(append(dst, `{"role":`...), m.Role)
	dst = append(dst, `,"content":`...)
	var err error
	switch c := m.Content; {
	case c == nil:
		dst = append(dst, "null"...)
	case c.Parts != nil:
		if dst, err = appendMarshal(dst, c.Parts); err != nil {
			return dst, err
		}
	default:
		dst = aigrid.AppendJSONString(dst, c.Text)
	}
	if m.Name != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"name":`...), m.Name)
	}
	if len(m.ToolCalls) > 0 {
		if dst, err = appendMarshal(append(dst, `,"tool_calls":`...), m.ToolCalls); err != nil {
			return dst, err
		}
	}
	if m.ToolCallID != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"tool_call_id":`...), m.ToolCallID)
	}
	if m.Refusal != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"refusal":`...), m.Refusal)
	}
	if m.ReasoningContent != "" {
		dst = aigrid.AppendJSONString(append(dst, `,"reasoning_content":`...), m.ReasoningContent)
	}
	return append(dst, '}'), nil
}

func appendIntField(dst []byte, key string, v *int) []byte {
	if v == nil {
		return dst
	}
	return strconv.AppendInt(append(dst, key...), int64(*v), 10)
}

var errFloat = errors.New("openai: a number of the request is not finite")

// appendFloatField writes a float as encoding/json does: the shortest form
// that reads back the same, in exponent form below 1e-6 and from 1e21, with
// a one-digit negative exponent not padded.
func appendFloatField(dst []byte, key string, v *float64) ([]byte, error) {
	if v == nil {
		return dst, nil
	}
	f := *v
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, errFloat
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(append(dst, key...), f, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1]
		dst = dst[:n-1]
	}
	return dst, nil
}

func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}
