package api

import (
	"encoding/json"
	"strconv"

	"aigrid"
)

// appendChunkHead appends a chunk's JSON up to its choices: the envelope,
// the same for every chunk of a stream, which the stream writer writes once.
func appendChunkHead(dst []byte, id, object string, created int64, model string) []byte {
	dst = append(dst, `{"id":`...)
	dst = aigrid.AppendJSONString(dst, id)
	dst = append(dst, `,"object":`...)
	dst = aigrid.AppendJSONString(dst, object)
	dst = append(dst, `,"created":`...)
	dst = strconv.AppendInt(dst, created, 10)
	dst = append(dst, `,"model":`...)
	dst = aigrid.AppendJSONString(dst, model)
	return append(dst, `,"choices":`...)
}

// appendChunkRest appends the rest of c's JSON after appendChunkHead's,
// byte for byte what encoding/json writes, but without reflection or
// allocation for the fields every streamed chunk has. The rare parts (tool
// calls, logprobs) go through encoding/json. Raw choices are copied as they
// are: they read as what encoding/json would write of them decoded (see
// aigrid.RawChoices).
func appendChunkRest(dst []byte, c *aigrid.ChatChunk) ([]byte, error) {
	if c.Raw.JSON != nil {
		dst = append(dst, c.Raw.JSON...)
	} else {
		var err error
		if dst, err = aigrid.AppendJSONArray(dst, c.Choices, appendChunkChoice); err != nil {
			return dst, err
		}
	}
	if c.Usage != nil {
		dst = appendUsage(append(dst, `,"usage":`...), c.Usage)
	}
	if c.SystemFingerprint != "" {
		dst = append(dst, `,"system_fingerprint":`...)
		dst = aigrid.AppendJSONString(dst, c.SystemFingerprint)
	}
	return append(dst, '}'), nil
}

// appendUsage writes u as encoding/json does: once a stream, but reflection
// cost as much as the rest of the chunk.
func appendUsage(dst []byte, u *aigrid.Usage) []byte {
	dst = strconv.AppendInt(append(dst, `{"prompt_tokens":`...), int64(u.PromptTokens), 10)
	dst = strconv.AppendInt(append(dst, `,"completion_tokens":`...), int64(u.CompletionTokens), 10)
	dst = strconv.AppendInt(append(dst, `,"total_tokens":`...), int64(u.TotalTokens), 10)
	if d := u.PromptTokensDetails; d != nil {
		dst = strconv.AppendInt(append(dst, `,"prompt_tokens_details":{"cached_tokens":`...), int64(d.CachedTokens), 10)
		dst = append(dst, '}')
	}
	if d := u.CompletionTokensDetails; d != nil {
		dst = strconv.AppendInt(append(dst, `,"completion_tokens_details":{"reasoning_tokens":`...), int64(d.ReasoningTokens), 10)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func appendChunkChoice(dst []byte, ch *aigrid.ChunkChoice) ([]byte, error) {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(ch.Index), 10)
	dst = append(dst, `,"delta":{`...)
	d := &ch.Delta
	n := len(dst)
	if d.Role != "" {
		dst = aigrid.AppendJSONString(append(dst, `"role":`...), d.Role)
	}
	if d.Content != nil {
		dst = aigrid.AppendJSONString(append(comma(dst, n), `"content":`...), *d.Content)
	}
	if d.ReasoningContent != nil {
		dst = aigrid.AppendJSONString(append(comma(dst, n), `"reasoning_content":`...), *d.ReasoningContent)
	}
	if d.Refusal != nil {
		dst = aigrid.AppendJSONString(append(comma(dst, n), `"refusal":`...), *d.Refusal)
	}
	var err error
	if len(d.ToolCalls) > 0 {
		if dst, err = appendMarshal(append(comma(dst, n), `"tool_calls":`...), d.ToolCalls); err != nil {
			return dst, err
		}
	}
	dst = append(dst, `},"finish_reason":`...)
	if ch.FinishReason == nil {
		dst = append(dst, "null"...)
	} else {
		dst = aigrid.AppendJSONString(dst, *ch.FinishReason)
	}
	if ch.Logprobs != nil {
		dst = append(dst, `,"logprobs":`...)
		if dst, err = appendMarshal(dst, ch.Logprobs); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// comma separates a field from the ones written since the object opened at n.
func comma(dst []byte, n int) []byte {
	if len(dst) > n {
		return append(dst, ',')
	}
	return dst
}

func appendMarshal(dst []byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(dst, b...), err
}
