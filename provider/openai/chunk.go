package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"aigrid"
)

// chunkDecoder reads the chunks of one stream into the canonical type. It is
// the hot path of every streamed completion, so it reads the fields of a
// chunk directly instead of through reflection, reuses the chunk between
// events (emit may not keep it), and keeps the strings that repeat in every
// chunk (id, model) rather than allocating them again. The rarer parts
// (tool calls, logprobs, usage) go through encoding/json.
type chunkDecoder struct {
	chunk   aigrid.ChatChunk
	choices [1]aigrid.ChunkChoice
	content [1]string
	finish  [1]string
}

var errChunk = errors.New("malformed chunk")

// decode parses one event's data. The chunk returned is valid until the next call.
func (d *chunkDecoder) decode(data []byte) (*aigrid.ChatChunk, error) {
	prev := d.chunk
	d.chunk = aigrid.ChatChunk{}
	s := scanner{data: data}
	c := &d.chunk
	err := s.object(func(key []byte) error {
		var err error
		switch string(key) {
		case "id":
			c.ID, err = s.internString(prev.ID)
		case "object":
			c.Object, err = s.internString(prev.Object)
		case "model":
			c.Model, err = s.internString(prev.Model)
		case "system_fingerprint":
			c.SystemFingerprint, err = s.internString(prev.SystemFingerprint)
		case "created":
			c.Created, err = s.int()
		case "choices":
			err = d.decodeChoices(&s)
		case "usage":
			c.Usage, err = decodeUsage(&s)
		default:
			_, err = s.value()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if s.skipSpace(); s.pos != len(s.data) {
		return nil, errChunk
	}
	return c, nil
}

func (d *chunkDecoder) decodeChoices(s *scanner) error {
	c := &d.chunk
	c.Choices = d.choices[:0]
	if s.null() {
		c.Choices = nil
		return nil
	}
	return s.array(func() error {
		n := len(c.Choices)
		if n < len(d.choices) {
			d.choices[n] = aigrid.ChunkChoice{}
			c.Choices = c.Choices[:n+1]
		} else {
			c.Choices = append(c.Choices, aigrid.ChunkChoice{})
		}
		ch := &c.Choices[n]
		return s.object(func(key []byte) error {
			var err error
			switch string(key) {
			case "index":
				var i int64
				i, err = s.int()
				ch.Index = int(i)
			case "delta":
				err = d.decodeDelta(s, n, &ch.Delta)
			case "finish_reason":
				if !s.null() {
					var f string
					if f, err = s.string(); err == nil {
						if n < len(d.finish) {
							d.finish[n] = f
							ch.FinishReason = &d.finish[n]
						} else {
							ch.FinishReason = heapString(f)
						}
					}
				}
			case "logprobs":
				var raw []byte
				if raw, err = s.value(); err == nil && !isNull(raw) {
					ch.Logprobs = new(aigrid.Logprobs)
					err = json.Unmarshal(raw, ch.Logprobs)
				}
			default:
				_, err = s.value()
			}
			return err
		})
	})
}

func (d *chunkDecoder) decodeDelta(s *scanner, n int, delta *aigrid.Delta) error {
	if s.null() {
		return nil
	}
	return s.object(func(key []byte) error {
		var err error
		optional := func() (*string, error) {
			if s.null() {
				return nil, nil
			}
			v, err := s.string()
			return heapString(v), err
		}
		switch string(key) {
		case "role":
			if !s.null() {
				delta.Role, err = s.internString(aigrid.RoleAssistant)
			}
		case "content":
			if !s.null() {
				var v string
				if v, err = s.string(); err == nil {
					if n < len(d.content) {
						d.content[n] = v
						delta.Content = &d.content[n]
					} else {
						delta.Content = heapString(v)
					}
				}
			}
		case "reasoning_content":
			delta.ReasoningContent, err = optional()
		case "refusal":
			delta.Refusal, err = optional()
		case "tool_calls":
			var raw []byte
			if raw, err = s.value(); err == nil && !isNull(raw) {
				err = json.Unmarshal(raw, &delta.ToolCalls)
			}
		default:
			_, err = s.value()
		}
		return err
	})
}

// decodeUsage reads a stream's count of tokens, as encoding/json would into
// an aigrid.Usage: once a stream, but by hand, as reflection cost more than
// the rest of the chunk's decoding.
func decodeUsage(s *scanner) (*aigrid.Usage, error) {
	if s.null() {
		return nil, nil
	}
	u := new(aigrid.Usage)
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "prompt_tokens":
			return s.count(&u.PromptTokens)
		case "completion_tokens":
			return s.count(&u.CompletionTokens)
		case "total_tokens":
			return s.count(&u.TotalTokens)
		case "prompt_tokens_details":
			if s.null() {
				u.PromptTokensDetails = nil
				return nil
			}
			if u.PromptTokensDetails == nil {
				u.PromptTokensDetails = new(aigrid.PromptTokensDetails)
			}
			return s.counts("cached_tokens", &u.PromptTokensDetails.CachedTokens)
		case "completion_tokens_details":
			if s.null() {
				u.CompletionTokensDetails = nil
				return nil
			}
			if u.CompletionTokensDetails == nil {
				u.CompletionTokensDetails = new(aigrid.CompletionTokensDetails)
			}
			return s.counts("reasoning_tokens", &u.CompletionTokensDetails.ReasoningTokens)
		}
		_, err := s.value()
		return err
	})
	return u, err
}

// count reads a number of tokens into dst; null leaves dst as it is.
func (s *scanner) count(dst *int) error {
	if s.null() {
		return nil
	}
	v, err := s.int()
	*dst = int(v)
	return err
}

// counts reads an object of which one field, name, is a count.
func (s *scanner) counts(name string, dst *int) error {
	return s.object(func(key []byte) error {
		if string(key) == name {
			return s.count(dst)
		}
		_, err := s.value()
		return err
	})
}

// heapString returns a pointer to a copy of v; taking &v directly would move
// v to the heap on every path, not only on this rare one.
func heapString(v string) *string { return &v }

func isNull(raw []byte) bool { return bytes.Equal(raw, []byte("null")) }

// maxDepth bounds the nesting of a chunk, so that a hostile stream cannot
// recurse the scanner without end.
const maxDepth = 256

// scanner reads JSON values from a byte slice.
type scanner struct {
	data  []byte
	pos   int
	depth int
}

func (s *scanner) enter() error {
	if s.depth++; s.depth > maxDepth {
		return errChunk
	}
	return nil
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	s.skipSpace()
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// null consumes a null literal if one comes next.
func (s *scanner) null() bool {
	if s.peek() == 'n' && bytes.HasPrefix(s.data[s.pos:], []byte("null")) {
		s.pos += 4
		return true
	}
	return false
}

// object calls field for each key, with the scanner at the key's value.
func (s *scanner) object(field func(key []byte) error) error {
	if s.peek() != '{' {
		return errChunk
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	s.pos++
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		key, err := s.rawString()
		if err != nil {
			return err
		}
		if s.peek() != ':' {
			return errChunk
		}
		s.pos++
		if err := field(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return errChunk
		}
	}
}

// array calls elem for each element, with the scanner at the element.
func (s *scanner) array(elem func() error) error {
	if s.peek() != '[' {
		return errChunk
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer func() { s.depth-- }()
	s.pos++
	if s.peek() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return errChunk
		}
	}
}

// rawString returns the bytes of a string without escapes, or, when it has
// escapes, the unescaped bytes in a new slice.
func (s *scanner) rawString() ([]byte, error) {
	if s.peek() != '"' {
		return nil, errChunk
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			s.pos = i + 1
			return s.data[start:i], nil
		case c == '\\':
			return s.escapedString(start)
		case c < 0x20:
			return nil, errChunk
		}
	}
	return nil, errChunk
}

func (s *scanner) escapedString(start int) ([]byte, error) {
	out := make([]byte, 0, 64)
	for i := start; i < len(s.data); {
		c := s.data[i]
		switch {
		case c == '"':
			s.pos = i + 1
			return out, nil
		case c < 0x20:
			return nil, errChunk
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		if i+1 >= len(s.data) {
			return nil, errChunk
		}
		switch e := s.data[i+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s.data, i+2)
			if !ok {
				return nil, errChunk
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(s.data, i+2); ok && i+1 < len(s.data) && s.data[i] == '\\' && s.data[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						i += 6
						out = utf8.AppendRune(out, dec)
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return nil, errChunk
		}
		i += 2
	}
	return nil, errChunk
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 16)
	return rune(v), err == nil
}

// string reads a string, with invalid UTF-8 replaced as encoding/json does.
func (s *scanner) string() (string, error) {
	raw, err := s.rawString()
	if err != nil {
		return "", err
	}
	if !utf8.Valid(raw) {
		return string(bytes.ToValidUTF8(raw, []byte("\uFFFD"))), nil
	}
	return string(raw), nil
}

// internString reads a string, returning prev itself when equal, so that the
// values every chunk repeats cost no allocation.
func (s *scanner) internString(prev string) (string, error) {
	raw, err := s.rawString()
	if err != nil {
		return "", err
	}
	if string(raw) == prev {
		return prev, nil
	}
	if !utf8.Valid(raw) {
		return string(bytes.ToValidUTF8(raw, []byte("\uFFFD"))), nil
	}
	return string(raw), nil
}

func (s *scanner) int() (int64, error) {
	raw, err := s.value()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		// A float such as 1.7e9 is accepted as encoding/json would not, but
		// upstreams do send them; keep its integer part.
		f, ferr := strconv.ParseFloat(string(raw), 64)
		if ferr != nil {
			return 0, errChunk
		}
		return int64(f), nil
	}
	return v, nil
}

// value skips one value of any kind and returns its bytes.
func (s *scanner) value() ([]byte, error) {
	s.skipSpace()
	start := s.pos
	if s.pos >= len(s.data) {
		return nil, errChunk
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		if _, err := s.rawString(); err != nil {
			return nil, err
		}
	case c == '{':
		if err := s.object(func([]byte) error { _, err := s.value(); return err }); err != nil {
			return nil, err
		}
	case c == '[':
		if err := s.array(func() error { _, err := s.value(); return err }); err != nil {
			return nil, err
		}
	default:
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\r' || c == '\t' {
				break
			}
			s.pos++
		}
		lit := s.data[start:s.pos]
		if len(lit) == 0 || !validLiteral(lit) {
			return nil, errChunk
		}
	}
	return s.data[start:s.pos], nil
}

func validLiteral(b []byte) bool {
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	_, err := strconv.ParseFloat(string(b), 64)
	return err == nil
}
