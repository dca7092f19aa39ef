package api

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"aigrid"
)

// appendChunk appends c as JSON, byte for byte what encoding/json writes, but
// without reflection or allocation for the fields every streamed chunk has.
// The rare parts (tool calls, logprobs, usage) go through encoding/json.
func appendChunk(dst []byte, c *aigrid.ChatChunk) ([]byte, error) {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, c.ID)
	dst = append(dst, `,"object":`...)
	dst = appendString(dst, c.Object)
	dst = append(dst, `,"created":`...)
	dst = strconv.AppendInt(dst, c.Created, 10)
	dst = append(dst, `,"model":`...)
	dst = appendString(dst, c.Model)
	dst = append(dst, `,"choices":`...)
	if c.Choices == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i := range c.Choices {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendChunkChoice(dst, &c.Choices[i]); err != nil {
				return dst, err
			}
		}
		dst = append(dst, ']')
	}
	var err error
	if c.Usage != nil {
		dst = append(dst, `,"usage":`...)
		if dst, err = appendMarshal(dst, c.Usage); err != nil {
			return dst, err
		}
	}
	if c.SystemFingerprint != "" {
		dst = append(dst, `,"system_fingerprint":`...)
		dst = appendString(dst, c.SystemFingerprint)
	}
	return append(dst, '}'), nil
}

func appendChunkChoice(dst []byte, ch *aigrid.ChunkChoice) ([]byte, error) {
	dst = append(dst, `{"index":`...)
	dst = strconv.AppendInt(dst, int64(ch.Index), 10)
	dst = append(dst, `,"delta":{`...)
	d := &ch.Delta
	n := len(dst)
	if d.Role != "" {
		dst = appendString(append(dst, `"role":`...), d.Role)
	}
	if d.Content != nil {
		dst = appendString(append(comma(dst, n), `"content":`...), *d.Content)
	}
	if d.ReasoningContent != nil {
		dst = appendString(append(comma(dst, n), `"reasoning_content":`...), *d.ReasoningContent)
	}
	if d.Refusal != nil {
		dst = appendString(append(comma(dst, n), `"refusal":`...), *d.Refusal)
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
		dst = appendString(dst, *ch.FinishReason)
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

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping on: <, > and
// & as \u003c..., U+2028 and U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
