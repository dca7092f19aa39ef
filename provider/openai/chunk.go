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
// chunk (id, model) rather than allocating them again. Choices that can be
// relayed as the upstream wrote them are checked and kept raw (see relay);
// the others are decoded, their rarer parts (tool calls, logprobs) through
// encoding/json.
type chunkDecoder struct {
	chunk   aigrid.ChatChunk
	choices [1]aigrid.ChunkChoice
	content [1]string
	finish  [1]string
	// Of raw choices: the bytes of text they add (chars), the members to
	// leave out (cuts), and the buffer they are copied into without them.
	chars int
	cuts  []span
	cut   [maxCuts]span
	buf   []byte
	// head is a chunk's bytes up to the value of its choices, and envelope
	// what they read as. A stream's chunks mostly repeat them (id, object,
	// created, model): a chunk that starts with the same bytes reads the
	// same up to there, and is scanned from its choices on.
	head     []byte
	envelope aigrid.ChatChunk
}

var (
	choicesKey = []byte("choices")
	errChunk   = errors.New("malformed chunk")
	// errDecode sends choices that may not be relayed raw to be decoded.
	errDecode = errors.New("choices to decode")
)

// decode parses one event's data. The chunk returned is valid until the next call.
func (d *chunkDecoder) decode(data []byte) (*aigrid.ChatChunk, error) {
	prev := d.chunk
	d.chunk = aigrid.ChatChunk{}
	s := scanner{data: data}
	c := &d.chunk
	headed := false
	field := func(key []byte) error {
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
			if !headed && c.Usage == nil {
				d.head, d.envelope = append(d.head[:0], data[:s.pos]...), *c
			}
			headed = true
			c.Raw = aigrid.RawChoices{}
			if at := s.pos; !d.relay(&s) {
				s.pos = at
				err = d.decodeChoices(&s)
			}
		case "usage":
			c.Usage, err = decodeUsage(&s)
		default:
			_, err = s.value()
		}
		return err
	}
	var err error
	if len(d.head) > 0 && bytes.HasPrefix(data, d.head) {
		d.chunk, headed = d.envelope, true
		s.pos, s.depth = len(d.head), 1
		err = s.members(choicesKey, field)
	} else {
		err = s.object(field)
	}
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

// maxCuts bounds the members left out of one chunk's raw choices: an
// OpenAI-style first chunk has two a choice (refusal and logprobs, null).
const maxCuts = 8

// span is a member of an object, from its key to the end of its value.
type span struct{ from, to int }

// relay reads the choices at s as aigrid.RawChoices, when they read, as a
// client reads JSON, as what decodeChoices and the writer's encoding would
// make of them: members the encoding leaves out (null, or an empty role) are
// cut, and anything else it would drop or spell otherwise (a missing member,
// a key it does not know or a repeated one, tool calls and logprobs, numbers
// it would round, invalid UTF-8 or surrogates it would replace) sends them
// to be decoded. It reports false, with s anywhere, in that case and when
// they are malformed, which decoding them reports.
func (d *chunkDecoder) relay(s *scanner) bool {
	raw := aigrid.RawChoices{}
	d.chars, d.cuts = 0, d.cut[:0]
	s.skipSpace()
	start := s.pos
	err := s.array(func() error {
		raw.Count++
		return d.relayChoice(s, &raw)
	})
	if err != nil || raw.Count == 0 {
		return false
	}
	// Decoding replaces invalid UTF-8; a line break between tokens would end
	// the writer's event.
	b := s.data[start:s.pos]
	if !utf8.Valid(b) || bytes.IndexByte(b, '\n') >= 0 || bytes.IndexByte(b, '\r') >= 0 {
		return false
	}
	if len(d.cuts) > 0 {
		b = d.cutMembers(s.data, start, s.pos)
	}
	raw.JSON = b
	d.chunk.Raw, d.chunk.Choices = raw, nil
	return true
}

// Members of a choice and of its delta, as bits of a set.
const (
	hasIndex = 1 << iota
	hasDelta
	hasFinish
	hasLogprobs
	hasRole
	hasContent
	hasReasoning
	hasRefusal
	hasToolCalls
)

// member adds a member to the set seen, refusing one seen before.
func member(seen *uint16, bit uint16) error {
	if *seen&bit != 0 {
		return errDecode
	}
	*seen |= bit
	return nil
}

func (d *chunkDecoder) relayChoice(s *scanner, raw *aigrid.RawChoices) error {
	var seen uint16
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "index":
			if err := member(&seen, hasIndex); err != nil {
				return err
			}
			return s.integer()
		case "delta":
			if err := member(&seen, hasDelta); err != nil {
				return err
			}
			return d.relayDelta(s, raw)
		case "finish_reason":
			if err := member(&seen, hasFinish); err != nil {
				return err
			}
			if s.null() {
				return nil
			}
			raw.Finished++
			_, err := s.text()
			return err
		case "logprobs":
			if err := member(&seen, hasLogprobs); err != nil {
				return err
			}
			return d.cutNull(s)
		}
		return errDecode
	})
	if err == nil && seen&(hasIndex|hasDelta|hasFinish) != hasIndex|hasDelta|hasFinish {
		return errDecode // the encoding writes each of them
	}
	return err
}

func (d *chunkDecoder) relayDelta(s *scanner, raw *aigrid.RawChoices) error {
	if s.peek() != '{' {
		return errDecode // null is written {}
	}
	var seen uint16
	return s.object(func(key []byte) error {
		var bit uint16
		switch string(key) {
		case "role":
			bit = hasRole
		case "content":
			bit = hasContent
		case "reasoning_content":
			bit = hasReasoning
		case "refusal":
			bit = hasRefusal
		case "tool_calls":
			bit = hasToolCalls
		default:
			return errDecode
		}
		if err := member(&seen, bit); err != nil {
			return err
		}
		at := s.keyAt
		if s.null() {
			return d.cutFrom(at, s.pos)
		}
		if bit == hasToolCalls {
			return errDecode
		}
		n, err := s.text()
		switch {
		case err != nil:
			return err
		case bit == hasRole && n == 0:
			return d.cutFrom(at, s.pos) // an empty role is left out
		case bit == hasContent || bit == hasReasoning:
			d.chars += n
			raw.Output = raw.Output || n > 0
		}
		return nil
	})
}

// cutNull cuts the member at s when its value is null; any other value is
// decoded.
func (d *chunkDecoder) cutNull(s *scanner) error {
	at := s.keyAt
	if !s.null() {
		return errDecode
	}
	return d.cutFrom(at, s.pos)
}

func (d *chunkDecoder) cutFrom(from, to int) error {
	if len(d.cuts) == cap(d.cuts) {
		return errDecode
	}
	d.cuts = append(d.cuts, span{from, to})
	return nil
}

// cutMembers copies the choices in data[start:end] without the members cut,
// and with one comma less for each.
func (d *chunkDecoder) cutMembers(data []byte, start, end int) []byte {
	out, pos := d.buf[:0], start
	for _, c := range d.cuts {
		out = append(out, data[pos:c.from]...)
		pos = c.to
		next := pos
		for data[next] == ' ' || data[next] == '\t' {
			next++
		}
		// Before the member came its object's brace or a comma; after it
		// comes a comma, dropped, or the brace, when the comma before goes.
		if data[next] == ',' {
			pos = next + 1
			continue
		}
		tail := len(out) - 1
		for out[tail] == ' ' || out[tail] == '\t' {
			tail--
		}
		if out[tail] == ',' {
			out = out[:tail]
		}
	}
	out = append(out, data[pos:end]...)
	d.buf = out
	return out
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
	keyAt int // where the key of the member being read starts
}

func (s *scanner) enter() error {
	if s.depth++; s.depth > maxDepth {
		return errChunk
	}
	return nil
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		// Every token starts above ' ': one comparison for the usual case.
		if c := s.data[s.pos]; c > ' ' || c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return
		}
		s.pos++
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
	return s.members(nil, field)
}

// members reads the members of an object and its end; with a key, it
// starts at that key's value.
func (s *scanner) members(key []byte, field func(key []byte) error) error {
	for {
		if key == nil {
			s.skipSpace()
			s.keyAt = s.pos
			var err error
			if key, err = s.rawString(); err != nil {
				return err
			}
			if s.peek() != ':' {
				return errChunk
			}
			s.pos++
		}
		if err := field(key); err != nil {
			return err
		}
		key = nil
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
		if c := s.data[i]; !plain[c] {
			switch c {
			case '"':
				s.pos = i + 1
				return s.data[start:i], nil
			case '\\':
				return s.escapedString(start)
			}
			return nil, errChunk
		}
	}
	return nil, errChunk
}

// plain holds the bytes that stand for themselves in a JSON string: not a
// quote, a backslash or a control character. (One lookup a byte where the
// string scanners' loops made three tests; a test of eight bytes at a time
// was slower, on the short strings of a chunk.)
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

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

// text reads a string and returns the length of its text, unescaped. A
// string whose escapes decoding would replace (surrogates not in pairs) is
// sent to be decoded, as is a value that is not a string.
func (s *scanner) text() (int, error) {
	if s.peek() != '"' {
		return 0, errDecode
	}
	n := 0
	for i := s.pos + 1; i < len(s.data); {
		switch c := s.data[i]; {
		case plain[c]:
			n++
			i++
			continue
		case c == '"':
			s.pos = i + 1
			return n, nil
		case c < 0x20:
			return 0, errChunk
		}
		if i+1 >= len(s.data) {
			return 0, errChunk
		}
		if e := s.data[i+1]; e != 'u' {
			if bytes.IndexByte([]byte(`"\/bfnrt`), e) < 0 {
				return 0, errChunk
			}
			n++
			i += 2
			continue
		}
		r, ok := hex4(s.data, i+2)
		if !ok {
			return 0, errChunk
		}
		i += 6
		if utf16.IsSurrogate(r) {
			r2, ok := hex4(s.data, i+2)
			if !ok || s.data[i] != '\\' || s.data[i+1] != 'u' || utf16.DecodeRune(r, r2) == utf8.RuneError {
				return 0, errDecode
			}
			i += 6
			r = utf16.DecodeRune(r, r2)
		}
		n += utf8.RuneLen(r)
	}
	return 0, errChunk
}

// integer reads a number that the encoding of an int writes as it is: a
// JSON integer in the range of int. Another value is sent to be decoded.
func (s *scanner) integer() error {
	raw, err := s.value()
	if err != nil {
		return err
	}
	if digits := bytes.TrimPrefix(raw, []byte("-")); !isInteger(raw) || len(digits) > 1 && digits[0] == '0' {
		return errDecode
	}
	if i, err := strconv.ParseInt(string(raw), 10, 64); err != nil || int64(int(i)) != i {
		return errDecode
	}
	return nil
}

// isInteger reports whether b is decimal digits, perhaps after a minus.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
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
	if len(raw) <= 18 && isInteger(raw) {
		// Cannot overflow: the usual case, without strconv's generality.
		var v int64
		for _, c := range bytes.TrimPrefix(raw, []byte("-")) {
			v = v*10 + int64(c-'0')
		}
		if raw[0] == '-' {
			v = -v
		}
		return v, nil
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
	if isInteger(b) {
		return true // the usual number, without the cost of parsing a float
	}
	switch string(b) {
	case "true", "false", "null":
		return true
	}
	_, err := strconv.ParseFloat(string(b), 64)
	return err == nil
}
